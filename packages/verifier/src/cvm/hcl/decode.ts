import { CvmError } from '../errors.js';
import { LeReader } from '../internal/le-reader.js';

/**
 * The HCL report: what Azure's paravisor (the "host compatibility layer") writes into the vTPM's
 * NV index 0x01400001. Layout (little-endian; kinvolk/azure-cvm-tooling `az-cvm-vtpm/src/hcl`,
 * Azure confidential-computing-cvm-guest-attestation):
 *
 * | offset | size | field |
 * | --- | --- | --- |
 * | 0 | 32 | attestation header: signature `HCLA`, version, report_size, request_type, status, reserved[3] |
 * | 32 | 1184 | hardware report: an SEV-SNP ATTESTATION_REPORT (1184 bytes) or a TDX TDREPORT (1024 bytes, zero padded) |
 * | 1216 | 20 | IGVM request data: data_size, version, report_type (2 SNP, 4 TDX), report_data_hash_type (1 SHA-256, 2 SHA-384, 3 SHA-512), variable_data_size |
 * | 1236 | n | variable data: JSON `{"keys":[{"kid":"HCLAkPub",...},...],"vm-configuration":{...},"user-data":"<hex>"}` |
 *
 * The header and request data are not signed by anything; the hardware report is (by the CPU),
 * and it binds the variable data through its report_data. Nothing here is verified.
 */
export const HCL_HEADER_BYTES = 32;
export const HCL_HW_REPORT_AREA_BYTES = 1184;
export const SNP_REPORT_BYTES = 1184;
export const TD_REPORT_BYTES = 1024;
const IGVM_REQUEST_HEADER_BYTES = 20;
const HCL_MIN_BYTES = HCL_HEADER_BYTES + HCL_HW_REPORT_AREA_BYTES + IGVM_REQUEST_HEADER_BYTES;
/** Largest HCL report accepted (Azure's is 2600 bytes; the NV index holds at most a few KiB). */
export const MAX_HCL_REPORT_BYTES = 16 * 1024;
/** `HCLA` read as a little-endian u32. */
const HCL_SIGNATURE = 0x414c4348;
const REPORT_TYPE_SNP = 2;
const REPORT_TYPE_TDX = 4;
const HASH_TYPE_SHA256 = 1;
const KNOWN_OTHER_HASH_TYPES: ReadonlySet<number> = new Set([2, 3]);

export type HclReportType = 'snp' | 'tdx';

/** A decoded HCL report. **Unverified.** */
export interface UnverifiedHclReport {
  readonly reportType: HclReportType;
  /** The hardware report: 1184 bytes (SNP) or 1024 bytes (TDX TDREPORT). */
  readonly hardwareReport: Uint8Array;
  /** The variable data's hash algorithm (only SHA-256 is accepted, as by Trustee). */
  readonly hashAlgorithm: 'sha256';
  /** The variable data bytes exactly as hashed into the hardware report. */
  readonly variableData: Uint8Array;
}

/**
 * Decode an HCL report. Checks lengths, the `HCLA` signature, the report type and the hash type;
 * verifies nothing cryptographic.
 *
 * @throws CvmError `HCL_REPORT_MALFORMED`, `HCL_HASH_UNSUPPORTED`.
 */
export function decodeUnverifiedHclReport(bytes: Uint8Array): UnverifiedHclReport {
  // SECURITY: bounds the work done on hostile input and rejects reports too short to hold a
  // hardware report and request header (Azure HCL report layout above).
  if (bytes.byteLength < HCL_MIN_BYTES || bytes.byteLength > MAX_HCL_REPORT_BYTES) {
    throw new CvmError('HCL_REPORT_MALFORMED', `HCL report has ${bytes.byteLength} bytes; expected ${HCL_MIN_BYTES}..${MAX_HCL_REPORT_BYTES}`);
  }
  const r = new LeReader(bytes, 'HCL_REPORT_MALFORMED', 'HCL report');
  const signature = r.u32('header.signature');
  // SECURITY: stops other NV contents (or a different paravisor structure) from being read as an
  // HCL report (IGVM attestation header signature "HCLA").
  if (signature !== HCL_SIGNATURE) throw new CvmError('HCL_REPORT_MALFORMED', 'HCL report header signature is not "HCLA"');
  r.skip(HCL_HEADER_BYTES - 4, 'header');
  const hwArea = r.bytes(HCL_HW_REPORT_AREA_BYTES, 'hardware report');
  r.u32('request.data_size');
  r.u32('request.version');
  const reportType = r.u32('request.report_type');
  const hashType = r.u32('request.report_data_hash_type');
  const varSize = r.u32('request.variable_data_size');
  // SECURITY: the report type decides how the hardware report is parsed; an unknown type must not
  // be parsed as either (type confusion).
  if (reportType !== REPORT_TYPE_SNP && reportType !== REPORT_TYPE_TDX) {
    throw new CvmError('HCL_REPORT_MALFORMED', `HCL report type ${reportType} is neither SEV-SNP (2) nor TDX (4)`);
  }
  // SECURITY: only SHA-256 binds the variable data as Trustee and azure-cvm-tooling check it; another
  // hash would be compared against a report_data prefix of another length (fail closed).
  if (hashType !== HASH_TYPE_SHA256) {
    if (KNOWN_OTHER_HASH_TYPES.has(hashType)) throw new CvmError('HCL_HASH_UNSUPPORTED', `HCL variable data hash type ${hashType} is not SHA-256`);
    throw new CvmError('HCL_REPORT_MALFORMED', `HCL variable data hash type ${hashType} is unknown`);
  }
  const variableData = r.bytes(varSize, 'variable data');
  return {
    reportType: reportType === REPORT_TYPE_SNP ? 'snp' : 'tdx',
    hardwareReport: reportType === REPORT_TYPE_SNP ? hwArea : hwArea.subarray(0, TD_REPORT_BYTES),
    hashAlgorithm: 'sha256',
    variableData,
  };
}
