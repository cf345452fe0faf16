import { CvmError } from '../errors.js';
import { LeReader } from '../internal/le-reader.js';
import { SNP_REPORT_BYTES } from '../hcl/decode.js';

/**
 * The SEV-SNP ATTESTATION_REPORT (AMD SEV Secure Nested Paging Firmware ABI Specification,
 * publication 56860, Table "ATTESTATION_REPORT Structure"), 1184 bytes, little-endian. The
 * signature covers bytes 0x000..0x29F; R and S are 72-byte little-endian fields of which a P-384
 * signature uses the low 48 bytes.
 */
export const SNP_SIGNED_BYTES = 0x2a0;
/** SIGNATURE_ALGO 1: ECDSA P-384 with SHA-384. */
export const SNP_SIG_ALGO_ECDSA_P384_SHA384 = 1;
const SNP_MIN_VERSION = 2;
const SNP_MAX_VERSION = 5;

/** TCB_VERSION, decoded per processor family (Turin moved the fields and added FMC). */
export interface SnpTcbVersion {
  readonly raw: bigint;
  readonly bootloader: number;
  readonly tee: number;
  readonly snp: number;
  readonly microcode: number;
  /** Turin and later only. */
  readonly fmc?: number;
}

/** A decoded SNP report. **Unverified** until `verifySnpReport` checked its signature. */
export interface UnverifiedSnpReport {
  readonly version: number;
  readonly guestSvn: number;
  readonly policy: bigint;
  readonly familyId: Uint8Array;
  readonly imageId: Uint8Array;
  readonly vmpl: number;
  readonly signatureAlgo: number;
  readonly currentTcbRaw: bigint;
  readonly platformInfo: bigint;
  /** bit 0 AUTHOR_KEY_EN, bit 1 MASK_CHIP_KEY, bits 2-4 SIGNING_KEY (0 VCEK, 1 VLEK, 7 none). */
  readonly flags: number;
  readonly reportData: Uint8Array;
  readonly measurement: Uint8Array;
  readonly hostData: Uint8Array;
  readonly idKeyDigest: Uint8Array;
  readonly authorKeyDigest: Uint8Array;
  readonly reportId: Uint8Array;
  readonly reportIdMa: Uint8Array;
  readonly reportedTcbRaw: bigint;
  /** CPUID family/model/stepping (report version 3 and later; zero before). */
  readonly cpuid: { readonly family: number; readonly model: number; readonly stepping: number };
  readonly chipId: Uint8Array;
  readonly committedTcbRaw: bigint;
  readonly currentVersion: string;
  readonly committedVersion: string;
  readonly launchTcbRaw: bigint;
  /** Bytes 0x000..0x29F: what the signature covers. */
  readonly signedBytes: Uint8Array;
  /** r and s, big-endian, 48 bytes each (IEEE P1363 order r ‖ s). */
  readonly signatureP1363: Uint8Array;
}

/** Decode a TCB_VERSION for the processor generation (`turin` uses the Turin layout). */
export function decodeSnpTcb(raw: bigint, turinLayout: boolean): SnpTcbVersion {
  const byte = (i: number): number => Number((raw >> BigInt(8 * i)) & 0xffn);
  if (turinLayout) return { raw, fmc: byte(0), bootloader: byte(1), tee: byte(2), snp: byte(3), microcode: byte(7) };
  return { raw, bootloader: byte(0), tee: byte(1), snp: byte(6), microcode: byte(7) };
}

function leToBe48(field: Uint8Array): Uint8Array | undefined {
  // The upper 24 bytes of each 72-byte field must be zero for a P-384 value.
  for (let i = 48; i < field.length; i++) if (field[i] !== 0) return undefined;
  return Uint8Array.from(field.subarray(0, 48)).reverse();
}

/**
 * Decode an SEV-SNP attestation report. Checks its size, version range and signature algorithm;
 * verifies nothing cryptographic.
 *
 * @throws CvmError `SNP_REPORT_MALFORMED`.
 */
export function decodeUnverifiedSnpReport(bytes: Uint8Array): UnverifiedSnpReport {
  // SECURITY: the report is a fixed-size structure; any other size is not one (ABI spec).
  if (bytes.byteLength !== SNP_REPORT_BYTES) {
    throw new CvmError('SNP_REPORT_MALFORMED', `SNP report has ${bytes.byteLength} bytes, expected ${SNP_REPORT_BYTES}`);
  }
  const r = new LeReader(bytes, 'SNP_REPORT_MALFORMED', 'SNP report');
  const version = r.u32('VERSION');
  // SECURITY: stops a structure of an unknown (future or bogus) layout from being read with this one.
  if (version < SNP_MIN_VERSION || version > SNP_MAX_VERSION) {
    throw new CvmError('SNP_REPORT_MALFORMED', `SNP report version ${version} is not supported (${SNP_MIN_VERSION}..${SNP_MAX_VERSION})`);
  }
  const guestSvn = r.u32('GUEST_SVN');
  const policy = r.u64('POLICY');
  const familyId = r.bytes(16, 'FAMILY_ID');
  const imageId = r.bytes(16, 'IMAGE_ID');
  const vmpl = r.u32('VMPL');
  const signatureAlgo = r.u32('SIGNATURE_ALGO');
  // SECURITY: only ECDSA P-384/SHA-384 is defined; another value would mean verifying the signature
  // under an algorithm the signer did not use (algorithm confusion).
  if (signatureAlgo !== SNP_SIG_ALGO_ECDSA_P384_SHA384) {
    throw new CvmError('SNP_REPORT_MALFORMED', `SNP report signature algorithm ${signatureAlgo} is not ECDSA P-384 SHA-384`);
  }
  const currentTcbRaw = r.u64('CURRENT_TCB');
  const platformInfo = r.u64('PLATFORM_INFO');
  const flags = r.u32('flags');
  r.skip(4, 'reserved');
  const reportData = r.bytes(64, 'REPORT_DATA');
  const measurement = r.bytes(48, 'MEASUREMENT');
  const hostData = r.bytes(32, 'HOST_DATA');
  const idKeyDigest = r.bytes(48, 'ID_KEY_DIGEST');
  const authorKeyDigest = r.bytes(48, 'AUTHOR_KEY_DIGEST');
  const reportId = r.bytes(32, 'REPORT_ID');
  const reportIdMa = r.bytes(32, 'REPORT_ID_MA');
  const reportedTcbRaw = r.u64('REPORTED_TCB');
  const family = r.u8('CPUID_FAM_ID');
  const model = r.u8('CPUID_MOD_ID');
  const stepping = r.u8('CPUID_STEP');
  r.skip(21, 'reserved');
  const chipId = r.bytes(64, 'CHIP_ID');
  const committedTcbRaw = r.u64('COMMITTED_TCB');
  const cur = r.bytes(4, 'CURRENT_BUILD/MINOR/MAJOR');
  const com = r.bytes(4, 'COMMITTED_BUILD/MINOR/MAJOR');
  const launchTcbRaw = r.u64('LAUNCH_TCB');
  r.skip(SNP_SIGNED_BYTES - r.offset, 'reserved');
  const sigR = leToBe48(r.bytes(72, 'SIGNATURE.R'));
  const sigS = leToBe48(r.bytes(72, 'SIGNATURE.S'));
  // SECURITY: a P-384 signature component wider than 48 bytes is not a valid encoding; rejecting it
  // keeps one signature one byte string (signature malleability).
  if (sigR === undefined || sigS === undefined) throw new CvmError('SNP_REPORT_MALFORMED', 'SNP report signature is not a P-384 (r, s) pair');
  const signatureP1363 = new Uint8Array(96);
  signatureP1363.set(sigR, 0);
  signatureP1363.set(sigS, 48);
  const v = (b: Uint8Array): string => `${b[2]}.${b[1]}.${b[0]}`;
  return {
    version,
    guestSvn,
    policy,
    familyId,
    imageId,
    vmpl,
    signatureAlgo,
    currentTcbRaw,
    platformInfo,
    flags,
    reportData,
    measurement,
    hostData,
    idKeyDigest,
    authorKeyDigest,
    reportId,
    reportIdMa,
    reportedTcbRaw,
    cpuid: version >= 3 ? { family, model, stepping } : { family: 0, model: 0, stepping: 0 },
    chipId,
    committedTcbRaw,
    currentVersion: v(cur),
    committedVersion: v(com),
    launchTcbRaw,
    signedBytes: bytes.subarray(0, SNP_SIGNED_BYTES),
    signatureP1363,
  };
}
