/**
 * Build a node certificate from a PKCS#10 request (issue 13, SPIRE x509pop compatible).
 *
 * Guarantees, in order:
 *  - the request parses as one PKCS#10 CertificationRequest of bounded size (else BAD_REQUEST);
 *  - its public key is EC P-256 / P-384 or RSA 2048..4096 (else BAD_REQUEST);
 *  - its self-signature verifies with that key, so the requester holds the private key (else BAD_REQUEST);
 *  - the SHA-256 of its DER SubjectPublicKeyInfo equals the digest the attestation bound
 *    (`keyhold.node-key` in the token; else POLICY_DENY);
 *  - the certificate is built from scratch: only the request's public key is used. Requested
 *    subject, SANs and extensions are ignored (never copied), so a node cannot ask for another
 *    identity, a CA bit or other usages. It carries: subject `CN=<node id hex>, OU=<tpm|ak>,
 *    O=keyhold`, the node's SPIFFE ID as its only URI SAN, keyUsage digitalSignature (critical),
 *    extKeyUsage clientAuth, basicConstraints CA:FALSE (critical), SKI/AKI, a random 128-bit
 *    serial, validity [now − 1 min, now + ttl] cut at the CA's own notAfter.
 * It does not check the token, the node's state or the binding's presence: the route does.
 */
import { createHash, createPublicKey } from 'node:crypto';
import { KbsError } from '../errors.js';
import { randomSerial, X509_CRYPTO, type NodeCa } from './node-ca-provider.js';
import {
  AuthorityKeyIdentifierExtension,
  BasicConstraintsExtension,
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  Pkcs10CertificateRequest,
  PemConverter,
  SubjectAlternativeNameExtension,
  SubjectKeyIdentifierExtension,
  X509CertificateGenerator,
} from './x509.js';

/** Bound on a request (a P-384 or RSA-4096 request is well under 2 KiB). */
export const MAX_CSR_BYTES = 16 * 1024;

export interface IssuedNodeCertificate {
  readonly pem: string;
  readonly serial: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/** Parse and check a request; returns it once its signature verified and its key is the bound one. */
export async function verifyNodeCsr(csr: string | Uint8Array, boundSpkiSha256: string): Promise<Pkcs10CertificateRequest> {
  const size = typeof csr === 'string' ? Buffer.byteLength(csr) : csr.length;
  // SECURITY: bounded before parsing (ASN.1 parsing cost and memory; resource exhaustion).
  if (size === 0 || size > MAX_CSR_BYTES) throw new KbsError('BAD_REQUEST', `the certificate request must be 1..${MAX_CSR_BYTES} bytes`);
  let req: Pkcs10CertificateRequest;
  try {
    let der: ArrayBuffer | Uint8Array = typeof csr === 'string' ? new Uint8Array(0) : csr;
    if (typeof csr === 'string') {
      const blocks = PemConverter.decodeWithHeaders(csr);
      // SECURITY: exactly one CERTIFICATE REQUEST block, so a bundle cannot smuggle a second request
      // past the checks (the one verified must be the one certified).
      if (blocks.length !== 1 || !/^(NEW )?CERTIFICATE REQUEST$/.test(blocks[0]!.type)) throw new Error('not one PEM CERTIFICATE REQUEST');
      der = new Uint8Array(blocks[0]!.rawData);
    }
    req = new Pkcs10CertificateRequest(der);
  } catch (cause) {
    throw new KbsError('BAD_REQUEST', 'the body is not a PKCS#10 certificate request (PEM or DER)', { cause });
  }
  checkKeyType(req);
  let ok = false;
  try {
    ok = await req.verify(X509_CRYPTO);
  } catch {
    ok = false;
  }
  // SECURITY: the request must be signed by its own key: proof of possession, so nobody gets a
  // certificate for a key they do not hold (RFC 2986 §3; x509pop then challenges the same key).
  if (!ok) throw new KbsError('BAD_REQUEST', 'the certificate request signature does not verify');
  const spkiSha256 = createHash('sha256').update(new Uint8Array(req.publicKey.rawData)).digest('hex');
  // SECURITY: only the key the TPM quote covered (its SPKI digest in the attestation's additional
  // evidence, copied into the token) is certified; a stolen token cannot certify another key.
  if (spkiSha256 !== boundSpkiSha256) throw new KbsError('POLICY_DENY', 'the certificate request key is not the key bound into this attestation (keyhold.node-key)');
  return req;
}

function checkKeyType(req: Pkcs10CertificateRequest): void {
  const alg = req.publicKey.algorithm as { name?: string; namedCurve?: string; modulusLength?: number; publicExponent?: Uint8Array };
  const name = alg.name?.toUpperCase();
  if (name === 'ECDSA' || name === 'ECDH' || name === 'EC') {
    // SECURITY: only curves SPIRE and every TLS stack accept; anything else is refused (weak or exotic keys).
    if (alg.namedCurve === 'P-256' || alg.namedCurve === 'P-384') return;
  } else if (name === 'RSASSA-PKCS1-V1_5' || name === 'RSA-PSS' || name === 'RSA') {
    const bits = rsaModulusBits(req);
    // SECURITY: RSA below 2048 bits is refused (factorable keys); above 4096 bounds verification cost.
    if (bits >= 2048 && bits <= 4096) return;
  }
  throw new KbsError('BAD_REQUEST', 'the certificate request key must be EC P-256 / P-384 or RSA 2048..4096');
}

function rsaModulusBits(req: Pkcs10CertificateRequest): number {
  try {
    const der = Buffer.from(req.publicKey.rawData);
    return createPublicKey({ key: der, format: 'der', type: 'spki' }).asymmetricKeyDetails?.modulusLength ?? 0;
  } catch {
    return 0;
  }
}

/** Serial and validity of the next certificate (recorded on the node before it is signed). */
export function planNodeCertificate(ca: NodeCa, now: Date, ttlMs: number): { readonly serial: string; readonly notBefore: Date; readonly notAfter: Date } {
  // A certificate never outlives the CA that signs it.
  return { serial: randomSerial(), notBefore: new Date(now.getTime() - 60_000), notAfter: new Date(Math.min(now.getTime() + ttlMs, ca.certificate.notAfter.getTime())) };
}

/** Sign a node certificate for a request that `verifyNodeCsr` accepted. */
export async function issueNodeCertificate(
  ca: NodeCa,
  req: Pkcs10CertificateRequest,
  input: { readonly nodeId: string; readonly spiffeId: string; readonly plan: ReturnType<typeof planNodeCertificate> },
): Promise<IssuedNodeCertificate> {
  const { serial, notBefore, notAfter } = input.plan;
  const ak = input.nodeId.startsWith('ak:');
  const cn = ak ? input.nodeId.slice(3) : input.nodeId;
  // SECURITY: the subject is built from the node id (hex only, validated by the caller), never from
  // the request, so no distinguished-name syntax can be injected (RFC 4514).
  if (!/^[0-9a-f]{64}$/.test(cn)) throw new TypeError('issueNodeCertificate: node id must be 64 hex (or ak: + 64 hex)');
  const cert = await X509CertificateGenerator.create(
    {
      serialNumber: serial,
      subject: `CN=${cn}, OU=${ak ? 'ak' : 'tpm'}, O=keyhold`,
      issuer: ca.certificate.subjectName,
      notBefore,
      notAfter,
      publicKey: req.publicKey,
      signingKey: ca.signingKey,
      signingAlgorithm: ca.signingAlgorithm,
      extensions: [
        new BasicConstraintsExtension(false, undefined, true),
        new KeyUsagesExtension(KeyUsageFlags.digitalSignature, true),
        new ExtendedKeyUsageExtension([ExtendedKeyUsage.clientAuth], false),
        new SubjectAlternativeNameExtension([{ type: 'url', value: input.spiffeId }], false),
        await SubjectKeyIdentifierExtension.create(req.publicKey, false, X509_CRYPTO),
        await AuthorityKeyIdentifierExtension.create(ca.certificate.publicKey, false, X509_CRYPTO),
      ],
    },
    X509_CRYPTO,
  );
  return { pem: `${cert.toString('pem')}\n`, serial, notBefore, notAfter };
}
