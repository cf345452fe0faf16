/**
 * The KBS's answer to `POST /kbs/v0/node-certificate`, checked before anything is written where
 * SPIRE reads it. The answer is `{"certificate": PEM leaf, "chain": PEM node CA (+ intermediates),
 * "serial", "notBefore", "notAfter", "spiffeId"}`.
 *
 * Guarantees of {@link decodeIssuedCertificate}:
 * - the leaf is one X.509 certificate for THIS node key (its SPKI digest is the key's);
 * - it carries keyUsage digitalSignature (SPIRE's x509pop refuses a challenge otherwise);
 * - the chain holds 1..8 certificates and the leaf's signature verifies under the first one;
 * - it is valid now, give or take a minute of clock skew, and valid for at least that minute.
 * It does not check the chain up to a root: that is the relying party's (SPIRE server's) job with
 * its `ca_bundle_path`.
 */
import { webcrypto } from 'node:crypto';
import { KeyUsageFlags, KeyUsagesExtension, PemConverter, X509Certificate } from './x509.js';
import { AgentError } from '../errors.js';
import { certificateFacts, type CertificateFacts } from './cert-files.js';

export interface IssuedCertificate {
  /** The leaf, PEM (one certificate). */
  readonly certificatePem: string;
  /** The node CA chain, PEM, leaf's issuer first. */
  readonly chainPem: string;
  readonly facts: CertificateFacts;
  readonly spiffeId: string | undefined;
}

const MAX_CHAIN_CERTIFICATES = 8;
const CLOCK_SKEW_MS = 60_000;
type X509Crypto = NonNullable<Parameters<X509Certificate['verify']>[1]>;

function invalid(message: string, cause?: unknown): AgentError {
  return new AgentError('NODE_CERT_INVALID', message, cause !== undefined ? { cause } : undefined);
}

function pemBlocks(text: string, what: string): X509Certificate[] {
  let ders: ArrayBuffer[];
  try {
    ders = PemConverter.decode(text);
  } catch (err) {
    throw invalid(`${what} is not PEM`, err);
  }
  try {
    return ders.map((d) => new X509Certificate(d));
  } catch (err) {
    throw invalid(`${what} holds something that is not an X.509 certificate`, err);
  }
}

/** Check the KBS's answer for the key whose SPKI digest is `keySpkiSha256`; throws NODE_CERT_INVALID. */
export async function decodeIssuedCertificate(answer: unknown, keySpkiSha256: string, nowMs: number): Promise<IssuedCertificate> {
  if (answer === null || typeof answer !== 'object') throw invalid('the node-certificate answer is not a JSON object');
  const a = answer as Record<string, unknown>;
  // SECURITY: each member is type- and size-checked before parsing (a hostile or broken KBS answer
  // must not reach the certificate parser unbounded, nor be written where SPIRE reads it).
  if (typeof a['certificate'] !== 'string' || a['certificate'].length > 64 * 1024) throw invalid('the answer has no certificate');
  if (typeof a['chain'] !== 'string' || a['chain'].length > 128 * 1024) throw invalid('the answer has no chain');
  const spiffeId = typeof a['spiffeId'] === 'string' && /^spiffe:\/\/[\x21-\x7e]{1,2000}$/.test(a['spiffeId']) ? a['spiffeId'] : undefined;

  const leaves = pemBlocks(a['certificate'], 'certificate');
  // SECURITY: exactly one certificate, so cert.pem names one identity (a chain goes to bundle.pem).
  if (leaves.length !== 1) throw invalid(`the certificate member holds ${leaves.length} certificates, not 1`);
  const chain = pemBlocks(a['chain'], 'chain');
  if (chain.length < 1 || chain.length > MAX_CHAIN_CERTIFICATES) throw invalid(`the chain holds ${chain.length} certificates (1..${MAX_CHAIN_CERTIFICATES} expected)`);
  const leaf = leaves[0] as X509Certificate;
  const certificatePem = leaf.toString('pem');
  const facts = certificateFacts(certificatePem);

  // SECURITY: the certificate must be for the key bound into this node's attestation: one for any
  // other key would give SPIRE an identity the node cannot prove, or someone else's (mix-up).
  if (facts.spkiSha256 !== keySpkiSha256) throw invalid('the certificate is not for this node key');
  const usage = leaf.getExtension(KeyUsagesExtension);
  // SECURITY: SPIRE's x509pop challenges only keys certified for digitalSignature (pkg/common/plugin/x509pop).
  if (usage === null || (usage.usages & KeyUsageFlags.digitalSignature) === 0) throw invalid('the certificate lacks keyUsage digitalSignature');
  // SECURITY: the leaf must be signed by the chain's first certificate, or bundle.pem would not cover it.
  let signed = false;
  try {
    signed = await leaf.verify({ publicKey: chain[0] as X509Certificate, signatureOnly: true }, webcrypto as unknown as X509Crypto);
  } catch (err) {
    throw invalid('the certificate signature cannot be checked against the chain', err);
  }
  if (!signed) throw invalid('the certificate is not signed by the first certificate of the chain');
  // SECURITY: an expired or not-yet-valid certificate is not installed (it would fail at SPIRE anyway, later and less clearly).
  if (facts.notBeforeMs > nowMs + CLOCK_SKEW_MS || facts.notAfterMs <= nowMs + CLOCK_SKEW_MS) throw invalid('the certificate is not valid now');
  return { certificatePem, chainPem: chain.map((c) => c.toString('pem')).join('\n') + '\n', facts, spiffeId };
}
