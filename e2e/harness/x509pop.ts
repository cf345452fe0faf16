/**
 * SPIRE's x509pop node attestation, both halves, written from SPIRE's own code
 * (spiffe/spire pkg/common/plugin/x509pop/x509pop.go and pkg/server/plugin/nodeattestor/x509pop),
 * so an e2e test can check that the files keyhold-agent writes (key.pem, cert.pem, bundle.pem)
 * would attest a SPIRE agent:
 * - attestation data: `{"certificates":[<DER, base64 as Go encodes []byte>...]}`, leaf first;
 * - the server verifies the chain to its `ca_bundle_path` roots, requires keyUsage digitalSignature,
 *   and sends `{"rsa_signature":null,"ecdsa_signature":{"nonce":<32 random bytes>}}` for an EC key;
 * - the agent answers `{"rsa_signature":null,"ecdsa_signature":{"nonce":<its 32 bytes>,"r":..,"s":..}}`
 *   where (r, s) is ECDSA over combined = SHA-256(challenge nonce ‖ response nonce) — Go's
 *   ecdsa.Sign(rand, key, combined) signs that digest as is, which is what node's
 *   sign('sha256', challenge ‖ response) computes; r and s as Go's big.Int.Bytes() (no leading zeros);
 *   RSA keys answer `rsa_signature` with RSA-PSS/SHA-256 over the same digest;
 * - the server checks both nonces are 32 bytes and the signature, then names the agent
 *   `spiffe://<td>/spire/agent/x509pop/<SHA-1 of the leaf DER>` (default agent_path_template
 *   `/{{ .PluginName }}/{{ .Fingerprint }}`).
 */
import 'reflect-metadata';
import { createHash, createPrivateKey, randomBytes, sign, verify, X509Certificate as NodeX509, type KeyObject } from 'node:crypto';
import { KeyUsageFlags, KeyUsagesExtension, X509Certificate } from '@peculiar/x509';

const NONCE_LEN = 32;

export interface X509popChallenge {
  rsa_signature: { nonce: string } | null;
  ecdsa_signature: { nonce: string } | null;
}
export interface X509popResponse {
  rsa_signature: { nonce: string; signature: string } | null;
  ecdsa_signature: { nonce: string; r: string; s: string } | null;
}

/** The agent plugin's attestation data from the three files SPIRE's agent config names. */
export function attestationData(certificatePem: string, intermediatesPem: string): { certificates: string[] } {
  const blocks = (pem: string) => [...pem.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)].map((m) => new NodeX509(m[0]).raw.toString('base64'));
  return { certificates: [...blocks(certificatePem), ...blocks(intermediatesPem)] };
}

/** Server: check the chain to `trustBundlePem` and the key usage, then make the challenge. */
export function serverChallenge(data: { certificates: string[] }, trustBundlePem: string): { leaf: NodeX509; challenge: X509popChallenge } {
  const [leafB64, ...rest] = data.certificates;
  if (leafB64 === undefined) throw new Error('x509pop: no certificate to attest');
  const leaf = new NodeX509(Buffer.from(leafB64, 'base64'));
  const roots = [...trustBundlePem.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)].map((m) => new NodeX509(m[0]));
  const pool = [...rest.map((b) => new NodeX509(Buffer.from(b, 'base64'))), ...roots];
  // Walk issuer links to a root of the bundle (the chains here are short; Go's Verify does the general case).
  let cur = leaf;
  for (let depth = 0; ; depth++) {
    if (depth > 8) throw new Error('x509pop: certificate verification failed: chain too long');
    if (roots.some((r) => r.raw.equals(cur.raw)) && depth > 0) break;
    const issuer = pool.find((c) => cur.checkIssued(c) && cur.verify(c.publicKey));
    // A self-signed certificate that is not one of the roots ends the chain untrusted.
    if (issuer === undefined || issuer.raw.equals(cur.raw)) throw new Error('x509pop: certificate verification failed: no trusted issuer');
    if (roots.some((r) => r.raw.equals(issuer.raw))) break;
    cur = issuer;
  }
  const now = Date.now();
  if (now < Date.parse(leaf.validFrom) || now > Date.parse(leaf.validTo)) throw new Error('x509pop: certificate verification failed: expired or not yet valid');
  const usage = new X509Certificate(leaf.raw).getExtension(KeyUsagesExtension);
  if (usage === null || (usage.usages & KeyUsageFlags.digitalSignature) === 0) throw new Error('x509pop: certificate not intended for digital signature use');
  const nonce = randomBytes(NONCE_LEN).toString('base64');
  return leaf.publicKey.asymmetricKeyType === 'rsa' ? { leaf, challenge: { rsa_signature: { nonce }, ecdsa_signature: null } } : { leaf, challenge: { rsa_signature: null, ecdsa_signature: { nonce } } };
}

function combine(challengeB64: string, responseNonce: Buffer): Buffer {
  const c = Buffer.from(challengeB64, 'base64');
  if (c.length !== NONCE_LEN) throw new Error('x509pop: invalid challenge nonce');
  if (responseNonce.length !== NONCE_LEN) throw new Error('x509pop: invalid response nonce');
  return Buffer.concat([c, responseNonce]);
}

/** Agent: answer the challenge with the private key (PEM, as `private_key_path`). */
export function agentResponse(privateKeyPem: string | KeyObject, challenge: X509popChallenge): X509popResponse {
  const key = typeof privateKeyPem === 'string' ? createPrivateKey(privateKeyPem) : privateKeyPem;
  const nonce = randomBytes(NONCE_LEN);
  if (key.asymmetricKeyType === 'rsa') {
    if (challenge.rsa_signature === null) throw new Error('x509pop: expecting RSA challenge');
    const signature = sign('sha256', combine(challenge.rsa_signature.nonce, nonce), { key, padding: 6 /* RSA_PKCS1_PSS_PADDING */, saltLength: -2 /* max, as Go's PSSSaltLengthAuto on signing */ });
    return { rsa_signature: { nonce: nonce.toString('base64'), signature: signature.toString('base64') }, ecdsa_signature: null };
  }
  if (challenge.ecdsa_signature === null) throw new Error('x509pop: expecting ECDSA challenge');
  const sig = sign('sha256', combine(challenge.ecdsa_signature.nonce, nonce), { key, dsaEncoding: 'ieee-p1363' });
  const half = sig.length / 2;
  const minimal = (b: Buffer) => b.subarray(b.findIndex((x) => x !== 0)); // big.Int.Bytes()
  return { rsa_signature: null, ecdsa_signature: { nonce: nonce.toString('base64'), r: minimal(sig.subarray(0, half)).toString('base64'), s: minimal(sig.subarray(half)).toString('base64') } };
}

/** Server: verify the answer with the leaf's public key; throws as SPIRE refuses. */
export function serverVerify(leaf: NodeX509, challenge: X509popChallenge, response: X509popResponse): void {
  const pub = leaf.publicKey;
  if (pub.asymmetricKeyType === 'rsa') {
    if (challenge.rsa_signature === null || response.rsa_signature === null) throw new Error('x509pop: expecting RSA response');
    const data = combine(challenge.rsa_signature.nonce, Buffer.from(response.rsa_signature.nonce, 'base64'));
    if (!verify('sha256', data, { key: pub, padding: 6, saltLength: -2 /* auto */ }, Buffer.from(response.rsa_signature.signature, 'base64'))) throw new Error('x509pop: RSA signature verify failed');
    return;
  }
  if (challenge.ecdsa_signature === null || response.ecdsa_signature === null) throw new Error('x509pop: expecting ECDSA response');
  const data = combine(challenge.ecdsa_signature.nonce, Buffer.from(response.ecdsa_signature.nonce, 'base64'));
  const size = pub.asymmetricKeyDetails?.namedCurve === 'secp384r1' ? 48 : 32;
  const pad = (b64: string) => {
    const b = Buffer.from(b64, 'base64');
    if (b.length > size) throw new Error('x509pop: ECDSA signature verify failed');
    return Buffer.concat([Buffer.alloc(size - b.length), b]);
  };
  const sig = Buffer.concat([pad(response.ecdsa_signature.r), pad(response.ecdsa_signature.s)]);
  if (!verify('sha256', data, { key: pub, dsaEncoding: 'ieee-p1363' }, sig)) throw new Error('x509pop: ECDSA signature verify failed');
}

/** The agent SPIFFE ID SPIRE assigns with the default template: SHA-1 fingerprint of the leaf DER. */
export function defaultAgentId(trustDomain: string, leaf: NodeX509): string {
  return `spiffe://${trustDomain}/spire/agent/x509pop/${createHash('sha1').update(leaf.raw).digest('hex')}`;
}
