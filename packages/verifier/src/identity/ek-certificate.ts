/**
 * EK certificate checks (TCG EK Credential Profile for TPM Family 2.0).
 *
 * verifyEkCertificate guarantees, when it resolves:
 *  1. the certificate decodes, is an end-entity certificate and fits the size limit;
 *  2. it chains, signature by signature, to a certificate in the caller's CA store, and every
 *     certificate on that path is inside its validity period at `now`, every issuer is a CA
 *     allowed to sign certificates, and no critical extension goes unprocessed (the critical
 *     SubjectAltName of EK certificates is understood);
 *  3. its public key is the EK public key the TPM used (compared as canonical DER SPKI), so a
 *     genuine certificate cannot vouch for a software key.
 * It does NOT check revocation, nor that the TPM actually holds the EK private key: that is
 * what credential activation (makeCredential + TPM2_ActivateCredential) proves.
 * It does no I/O: the CA certificates and the current time are passed in.
 */
import { createHash } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { SubjectPublicKeyInfo, AlgorithmIdentifier } from '@peculiar/asn1-x509';
import { IdentityError } from './errors.js';
import { validateCertificatePath } from './ek-certificate-path.js';
import { canonicalSpkiDer } from './spki.js';
import { Name, SubjectAlternativeNameExtension, X509Certificate } from './internal/x509.js';

/** EK certificates are ~1-2 KiB; NV indices hold at most a few KiB. */
export const MAX_EK_CERT_BYTES = 16 * 1024;

const OID_TPM_MANUFACTURER = '2.23.133.2.1';
const OID_TPM_MODEL = '2.23.133.2.2';
const OID_TPM_VERSION = '2.23.133.2.3';
const OID_RSA_ENCRYPTION = '1.2.840.113549.1.1.1';
const OID_RSAES_OAEP = '1.2.840.113549.1.1.7';

declare const verifiedBrand: unique symbol;

/** Fields of an EK certificate as decoded, before any trust decision. */
export interface UnverifiedEkCertificate {
  /** Canonical DER SPKI of the certified EK public key. */
  readonly ekPublicSpkiDer: Uint8Array;
  /** Hex SHA-256 of ekPublicSpkiDer: the node identity. */
  readonly ekHash: string;
  readonly subject: string;
  readonly issuer: string;
  readonly serialNumber: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** From the SubjectAltName directoryName (TCG EK Credential Profile §3.2.9), e.g. "id:49465800". */
  readonly tpmManufacturer?: string;
  readonly tpmModel?: string;
  readonly tpmVersion?: string;
}

/** Only verifyEkCertificate constructs this. */
export interface VerifiedEkCertificate extends UnverifiedEkCertificate {
  /** Subjects from the EK certificate's issuer up to the trust anchor. */
  readonly issuerPath: readonly string[];
  readonly [verifiedBrand]: true;
}

export interface VerifyEkCertificateInput {
  /** DER EK certificate (strip NV padding first with stripEkCertPadding). */
  readonly ekCertDer: Uint8Array;
  /** The owner's CA store: roots and intermediates, each one a trust anchor. */
  readonly caCerts: readonly X509Certificate[];
  /** DER SPKI of the EK public key the TPM used (e.g. tpmPublicToSpkiDer of its TPM2B_PUBLIC). */
  readonly ekPublicSpkiDer: Uint8Array;
  readonly now: Date;
}

/** Length of the DER element at the start of `bytes` (header + content), or undefined. */
function derLength(bytes: Uint8Array): number | undefined {
  if (bytes.length < 2 || bytes[0] !== 0x30) return undefined;
  const first = bytes[1] as number;
  if (first < 0x80) return 2 + first;
  const n = first & 0x7f;
  if (n === 0 || n > 3 || bytes.length < 2 + n) return undefined;
  let len = 0;
  for (let i = 0; i < n; i++) len = len * 256 + (bytes[2 + i] as number);
  return 2 + n + len;
}

/**
 * Drop trailing bytes after the certificate's DER SEQUENCE (some TPMs pad NV indices with 0x00
 * or 0xFF). The bytes dropped are outside the signed structure, so nothing trusted is lost.
 */
export function stripEkCertPadding(bytes: Uint8Array): Uint8Array {
  const total = derLength(bytes);
  // SECURITY: the declared DER length must fit in the bytes read from NV; a longer claim is a
  // truncated or forged certificate, never padding (X.690 §8.1.3).
  if (total === undefined || total > bytes.length || total > MAX_EK_CERT_BYTES) {
    throw new IdentityError('EK_CERT_MALFORMED', 'EK certificate DER header is invalid');
  }
  return bytes.subarray(0, total);
}

/** SPKI of a certificate, with the RSAES-OAEP algorithm identifier some EK certs use mapped to rsaEncryption. */
function certSpki(cert: X509Certificate): Uint8Array {
  const raw = new Uint8Array(cert.publicKey.rawData);
  const spki = AsnConvert.parse(raw, SubjectPublicKeyInfo);
  if (spki.algorithm.algorithm === OID_RSAES_OAEP) {
    // The key is a plain RSAPublicKey; only the algorithm label differs (TCG EK Credential Profile §3.2.7).
    spki.algorithm = new AlgorithmIdentifier({ algorithm: OID_RSA_ENCRYPTION, parameters: new Uint8Array([0x05, 0x00]).buffer });
    return canonicalSpkiDer(new Uint8Array(AsnConvert.serialize(spki)));
  }
  return canonicalSpkiDer(raw);
}

function parseCert(der: Uint8Array): X509Certificate {
  // SECURITY: bound the input before ASN.1 parsing so a hostile blob cannot drive the parser (DoS).
  if (der.length > MAX_EK_CERT_BYTES) throw new IdentityError('EK_CERT_MALFORMED', 'EK certificate is too large');
  // SECURITY: exactly one DER element, no trailing bytes: ambiguity about what was signed is refused.
  if (derLength(der) !== der.length) throw new IdentityError('EK_CERT_MALFORMED', 'EK certificate is not a single DER element');
  try {
    return new X509Certificate(new Uint8Array(der));
  } catch (err) {
    throw new IdentityError('EK_CERT_MALFORMED', 'EK certificate cannot be decoded', { cause: err });
  }
}

function tpmInfo(cert: X509Certificate): Pick<UnverifiedEkCertificate, 'tpmManufacturer' | 'tpmModel' | 'tpmVersion'> {
  let san: SubjectAlternativeNameExtension | null;
  try {
    san = cert.getExtension(SubjectAlternativeNameExtension);
  } catch (err) {
    throw new IdentityError('EK_CERT_MALFORMED', 'EK certificate SubjectAltName cannot be decoded', { cause: err });
  }
  const out: { tpmManufacturer?: string; tpmModel?: string; tpmVersion?: string } = {};
  for (const gn of san?.names.items ?? []) {
    if (gn.type !== 'dn') continue;
    const name = new Name(gn.value);
    out.tpmManufacturer ??= name.getField(OID_TPM_MANUFACTURER)[0];
    out.tpmModel ??= name.getField(OID_TPM_MODEL)[0];
    out.tpmVersion ??= name.getField(OID_TPM_VERSION)[0];
  }
  return Object.fromEntries(Object.entries(out).filter(([, v]) => v !== undefined));
}

function decode(cert: X509Certificate): UnverifiedEkCertificate {
  let ekPublicSpkiDer: Uint8Array;
  try {
    ekPublicSpkiDer = certSpki(cert);
  } catch (err) {
    throw new IdentityError('EK_CERT_MALFORMED', 'EK certificate public key cannot be decoded', { cause: err });
  }
  return {
    ekPublicSpkiDer,
    ekHash: createHash('sha256').update(ekPublicSpkiDer).digest('hex'),
    subject: cert.subject,
    issuer: cert.issuer,
    serialNumber: cert.serialNumber,
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    ...tpmInfo(cert),
  };
}

/** Decode an EK certificate without any trust decision (for `keyhold ek-hash --ek-cert`, logs). */
export function decodeUnverifiedEkCertificate(der: Uint8Array): UnverifiedEkCertificate {
  return decode(parseCert(der));
}

/** See the module comment for what this guarantees and what it does not. */
export async function verifyEkCertificate(input: VerifyEkCertificateInput): Promise<VerifiedEkCertificate> {
  if (!Array.isArray(input.caCerts) || !input.caCerts.every((c) => c instanceof X509Certificate)) {
    throw new TypeError('caCerts must be an array of X509Certificate');
  }
  const cert = parseCert(input.ekCertDer);
  const decoded = decode(cert);
  const path = await validateCertificatePath(cert, input.caCerts, input.now);
  const expected = canonicalSpkiDer(input.ekPublicSpkiDer);
  // SECURITY: the certificate must certify *this* EK; otherwise a genuine certificate copied from
  // any TPM would vouch for a software key (SPIRE tpm plugin advisory; TCG EK Credential Profile §2.1).
  if (!Buffer.from(expected).equals(Buffer.from(decoded.ekPublicSpkiDer))) {
    throw new IdentityError('EK_CERT_KEY_MISMATCH', 'EK certificate does not certify the presented EK public key');
  }
  return { ...decoded, issuerPath: path.slice(1).map((c) => c.subject) } as unknown as VerifiedEkCertificate;
}
