import { CvmError } from '../errors.js';
import { DER_ENUMERATED, DER_OCTET_STRING, DER_OID, DER_SEQUENCE, decodeOid, derSmallUint, readTlv } from '../internal/der-value.js';

/** Intel SGX PCK certificate extension (Intel "SGX PCK Certificate and CRL Profile"). */
export const SGX_EXTENSIONS_OID = '1.2.840.113741.1.13.1';
const OID_TCB = '1.2.840.113741.1.13.1.2';
const OID_PCESVN = '1.2.840.113741.1.13.1.2.17';
const OID_CPUSVN = '1.2.840.113741.1.13.1.2.18';
const OID_PCEID = '1.2.840.113741.1.13.1.3';
const OID_FMSPC = '1.2.840.113741.1.13.1.4';
const OID_SGX_TYPE = '1.2.840.113741.1.13.1.5';

/** What a PCK certificate says about its platform (decoded from a verified certificate). */
export interface PckPlatform {
  /** 16 SGX TCB component SVNs. */
  readonly sgxTcbComponents: readonly number[];
  readonly pceSvn: number;
  readonly cpuSvn: Uint8Array;
  /** 2 bytes, hex upper-case as in TCB info. */
  readonly pceId: string;
  /** 6 bytes, hex upper-case as in TCB info. */
  readonly fmspc: string;
  readonly sgxType: number;
}

/**
 * The (OID, DER value) pairs of a SEQUENCE OF SEQUENCE { OID, value }.
 * SECURITY: every TLV must be well formed, nested exactly inside its parent and fill it, so no byte
 * of the (CA-signed) extension is read two ways (Intel SGX PCK Certificate Profile, DER).
 */
function pairs(der: Uint8Array): Map<string, Uint8Array> {
  const fail = (): never => {
    throw new CvmError('TDX_PCK_UNTRUSTED', 'PCK certificate SGX extension is malformed');
  };
  const outer = readTlv(der);
  if (outer === undefined || outer.tag !== DER_SEQUENCE || outer.start + outer.length !== der.length) return fail();
  const out = new Map<string, Uint8Array>();
  let off = outer.start;
  while (off < der.length) {
    const item = readTlv(der, off) ?? fail();
    if (item.tag !== DER_SEQUENCE) fail();
    const oid = readTlv(der, item.start) ?? fail();
    if (oid.tag !== DER_OID) fail();
    const valueStart = oid.start + oid.length;
    const value = readTlv(der, valueStart) ?? fail();
    if (value.start + value.length !== item.start + item.length) fail();
    const key = decodeOid(der.subarray(oid.start, oid.start + oid.length));
    // SECURITY: a repeated OID would let two parsers read different values (parser differential).
    if (key === '' || out.has(key)) fail();
    out.set(key, der.subarray(valueStart, value.start + value.length));
    off = item.start + item.length;
  }
  return out;
}

function octets(v: Uint8Array | undefined, length: number, what: string): Uint8Array {
  const tlv = v === undefined ? undefined : readTlv(v);
  // SECURITY: fixed-size identifiers of the wrong size cannot be compared meaningfully.
  if (v === undefined || tlv === undefined || tlv.tag !== DER_OCTET_STRING || tlv.length !== length || tlv.start + tlv.length !== v.length) {
    throw new CvmError('TDX_PCK_UNTRUSTED', `PCK certificate ${what} is missing or malformed`);
  }
  return v.subarray(tlv.start);
}

function svn(v: Uint8Array | undefined, what: string): number {
  const n = v === undefined ? undefined : derSmallUint(v);
  // SECURITY: a missing SVN must not default to a value that passes a TCB comparison.
  if (n === undefined || n > 0xffff) throw new CvmError('TDX_PCK_UNTRUSTED', `PCK certificate ${what} is missing or malformed`);
  return n;
}

/**
 * Decode the SGX extension of a PCK certificate (the extension's DER value).
 *
 * @throws CvmError `TDX_PCK_UNTRUSTED`.
 */
export function decodePckPlatform(extensionValue: Uint8Array): PckPlatform {
  const top = pairs(extensionValue);
  const tcbDer = top.get(OID_TCB);
  // SECURITY: without the TCB the platform's SVNs are unknown; never default them.
  if (tcbDer === undefined) throw new CvmError('TDX_PCK_UNTRUSTED', 'PCK certificate has no TCB');
  const tcb = pairs(tcbDer);
  const sgxTcbComponents = Array.from({ length: 16 }, (_, i) => svn(tcb.get(`${OID_TCB}.${i + 1}`), `TCB component ${i + 1}`));
  const typeDer = top.get(OID_SGX_TYPE);
  const typeTlv = typeDer === undefined ? undefined : readTlv(typeDer);
  const sgxType = typeTlv !== undefined && typeTlv.tag === DER_ENUMERATED && typeTlv.length === 1 ? (typeDer as Uint8Array)[typeTlv.start] as number : -1;
  return {
    sgxTcbComponents,
    pceSvn: svn(tcb.get(OID_PCESVN), 'PCESVN'),
    cpuSvn: octets(tcb.get(OID_CPUSVN), 16, 'CPUSVN'),
    pceId: Buffer.from(octets(top.get(OID_PCEID), 2, 'PCE-ID')).toString('hex').toUpperCase(),
    fmspc: Buffer.from(octets(top.get(OID_FMSPC), 6, 'FMSPC')).toString('hex').toUpperCase(),
    sgxType,
  };
}
