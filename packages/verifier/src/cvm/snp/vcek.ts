import { X509Certificate as NodeX509Certificate } from 'node:crypto';
import { CvmError } from '../errors.js';
import { certificateExtensions, DER_IA5_STRING, DER_OCTET_STRING, derContents, derSmallUint } from '../internal/der-value.js';

/** Largest VCEK accepted (AMD's are about 1.3 KiB DER). */
export const MAX_VCEK_BYTES = 4096;

/** AMD's VCEK extensions (AMD "Versioned Chip Endorsement Key (VCEK) Certificate and KDS Interface Specification", 57230). */
const OID = {
  productName: '1.3.6.1.4.1.3704.1.2',
  blSpl: '1.3.6.1.4.1.3704.1.3.1',
  teeSpl: '1.3.6.1.4.1.3704.1.3.2',
  snpSpl: '1.3.6.1.4.1.3704.1.3.3',
  ucodeSpl: '1.3.6.1.4.1.3704.1.3.8',
  fmcSpl: '1.3.6.1.4.1.3704.1.3.9',
  hwId: '1.3.6.1.4.1.3704.1.4',
} as const;

/**
 * VCEKs decoded before, by their DER: a KBS sees the same few chips again and again, and decoding
 * costs about a millisecond. Only what the bytes say is cached (no verification result, which
 * depends on the time and the anchors); bounded, oldest evicted.
 */
const decoded = new Map<string, UnverifiedVcek>();
const MAX_CACHED = 256;

/** A decoded VCEK. **Unverified** until its chain and the report signature were checked. */
export interface UnverifiedVcek {
  readonly der: Uint8Array;
  /** node:crypto view (signature verification, validity). */
  readonly node: NodeX509Certificate;
  /** e.g. `Milan-B0`, `Genoa-B1`, `Turin-C0`. */
  readonly productName: string;
  /** The TCB the VCEK was derived for. */
  readonly tcb: { readonly bootloader: number; readonly tee: number; readonly snp: number; readonly microcode: number; readonly fmc?: number };
  /** The chip's hardware id (64 bytes; 8 bytes on Turin). */
  readonly hwId: Uint8Array;
}

/**
 * Decode a VCEK (DER): an X.509 certificate with an EC P-384 key and AMD's product-name, TCB and
 * hardware-id extensions.
 *
 * @throws CvmError `SNP_VCEK_MALFORMED`.
 */
export function decodeUnverifiedVcek(der: Uint8Array): UnverifiedVcek {
  // SECURITY: bounds the work done on a hostile certificate before ASN.1 parsing.
  if (der.byteLength === 0 || der.byteLength > MAX_VCEK_BYTES) {
    throw new CvmError('SNP_VCEK_MALFORMED', `VCEK has ${der.byteLength} bytes, expected 1..${MAX_VCEK_BYTES}`);
  }
  const cacheKey = Buffer.from(der).toString('base64');
  const cached = decoded.get(cacheKey);
  if (cached !== undefined) return cached;
  let node: NodeX509Certificate;
  try {
    node = new NodeX509Certificate(der);
  } catch (cause) {
    // SECURITY: stops undecodable certificates from reaching signature checks.
    throw new CvmError('SNP_VCEK_MALFORMED', 'VCEK is not a DER X.509 certificate', { cause });
  }
  const extensions = certificateExtensions(der);
  // SECURITY: the extension walker and node:crypto must agree on exactly these bytes (no trailing
  // data, well-formed extensions, no repeated OID), so both read the same certificate.
  if (!node.raw.equals(Buffer.from(der)) || extensions === undefined) {
    throw new CvmError('SNP_VCEK_MALFORMED', 'VCEK has trailing data or malformed extensions');
  }
  const details = node.publicKey.asymmetricKeyDetails;
  // SECURITY: SNP reports are signed with ECDSA P-384; a VCEK with another key cannot verify one
  // (ABI spec SIGNATURE_ALGO 1) and is not an AMD VCEK.
  if (node.publicKey.asymmetricKeyType !== 'ec' || details?.namedCurve !== 'secp384r1') {
    throw new CvmError('SNP_VCEK_MALFORMED', 'VCEK key is not EC P-384');
  }
  const ext = (oid: string): Uint8Array | undefined => extensions.get(oid);
  const spl = (oid: string, name: string): number => {
    const raw = ext(oid);
    const v = raw === undefined ? undefined : derSmallUint(raw);
    // SECURITY: the TCB components are compared with the report's; a missing or malformed one
    // must not default to a value that matches (VCEK spec: each SPL is an INTEGER).
    if (v === undefined || v > 255) throw new CvmError('SNP_VCEK_MALFORMED', `VCEK ${name} extension is missing or malformed`);
    return v;
  };
  const productRaw = ext(OID.productName);
  const product = productRaw === undefined ? undefined : derContents(productRaw, DER_IA5_STRING);
  // SECURITY: the product name selects the processor generation (TCB layout, trust anchors); it must be present.
  if (product === undefined || product.length === 0 || product.length > 64 || !/^[\x20-\x7e]+$/.test(Buffer.from(product).toString('latin1'))) {
    throw new CvmError('SNP_VCEK_MALFORMED', 'VCEK product name extension is missing or malformed');
  }
  const hwRaw = ext(OID.hwId);
  // AMD's VCEKs carry the id as the raw extension value; accept a DER OCTET STRING around it too.
  const hwId = hwRaw === undefined ? undefined : hwRaw.length === 64 || hwRaw.length === 8 ? hwRaw : derContents(hwRaw, DER_OCTET_STRING);
  // SECURITY: the hardware id ties the VCEK to one chip (VCEK spec hwID: 64 bytes; 8 on Turin).
  if (hwId === undefined || (hwId.length !== 64 && hwId.length !== 8)) throw new CvmError('SNP_VCEK_MALFORMED', 'VCEK hardware id extension is missing or malformed');
  const productName = Buffer.from(product).toString('latin1');
  const turin = productName.startsWith('Turin');
  const tcb = {
    bootloader: spl(OID.blSpl, 'blSPL'),
    tee: spl(OID.teeSpl, 'teeSPL'),
    snp: spl(OID.snpSpl, 'snpSPL'),
    microcode: spl(OID.ucodeSpl, 'ucodeSPL'),
    ...(turin ? { fmc: spl(OID.fmcSpl, 'fmcSPL') } : {}),
  };
  const vcek = Object.freeze({ der: Uint8Array.from(der), node, productName, tcb: Object.freeze(tcb), hwId: Uint8Array.from(hwId) });
  if (decoded.size >= MAX_CACHED) decoded.delete(decoded.keys().next().value as string);
  decoded.set(cacheKey, vcek);
  return vcek;
}
