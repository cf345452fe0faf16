import { CvmError } from '../errors.js';
import { LeReader } from '../internal/le-reader.js';

/**
 * Intel TDX DCAP quote, version 4 (Intel "TDX DCAP Quote Generation Library and Quote Verification
 * Library" data structures, appendix A.3), little-endian:
 * header (48) ‖ TD quote body (584) ‖ u32 signature data length ‖ ECDSA quote signature data:
 * signature (64, r‖s big-endian) ‖ attestation key (64, P-256 x‖y) ‖ certification data
 * (type 6 "QE report": QE report (384) ‖ QE report signature (64) ‖ u16 auth data size ‖ auth data ‖
 * certification data type 5: the PCK certificate chain, PEM).
 */
export const TDX_QUOTE_VERSION = 4;
export const ATT_KEY_TYPE_ECDSA_P256 = 2;
export const TEE_TYPE_TDX = 0x81;
const HEADER_BYTES = 48;
const BODY_BYTES = 584;
const QE_REPORT_BYTES = 384;
const CERT_TYPE_QE_REPORT = 6;
const CERT_TYPE_PCK_CHAIN = 5;
/** Largest PCK chain accepted (three certificates in PEM are about 3.7 KiB). */
const MAX_PCK_CHAIN_BYTES = 16 * 1024;

/** TD quote body (TDREPORT's TDINFO and TEE_TCB_INFO fields the QE copies). */
export interface TdQuoteBody {
  readonly teeTcbSvn: Uint8Array;
  readonly mrSeam: Uint8Array;
  readonly mrSignerSeam: Uint8Array;
  readonly seamAttributes: Uint8Array;
  readonly tdAttributes: Uint8Array;
  readonly xfam: Uint8Array;
  readonly mrTd: Uint8Array;
  readonly mrConfigId: Uint8Array;
  readonly mrOwner: Uint8Array;
  readonly mrOwnerConfig: Uint8Array;
  readonly rtmrs: readonly Uint8Array[];
  readonly reportData: Uint8Array;
}

/** An SGX REPORT body (the QE's report). */
export interface SgxReportBody {
  readonly bytes: Uint8Array;
  readonly cpuSvn: Uint8Array;
  readonly miscSelect: number;
  readonly attributes: Uint8Array;
  readonly mrEnclave: Uint8Array;
  readonly mrSigner: Uint8Array;
  readonly isvProdId: number;
  readonly isvSvn: number;
  readonly reportData: Uint8Array;
}

/** A decoded TD quote. **Unverified.** */
export interface UnverifiedTdQuote {
  readonly header: { readonly version: number; readonly attKeyType: number; readonly teeType: number; readonly qeVendorId: Uint8Array; readonly userData: Uint8Array };
  readonly body: TdQuoteBody;
  /** header ‖ body: what the attestation key signed. */
  readonly signedBytes: Uint8Array;
  readonly signatureP1363: Uint8Array;
  /** Raw P-256 point x ‖ y. */
  readonly attestationKey: Uint8Array;
  readonly qeReport: SgxReportBody;
  readonly qeReportSignatureP1363: Uint8Array;
  readonly qeAuthData: Uint8Array;
  /** The PCK certificate chain as carried (PEM text, leaf first). */
  readonly pckChainPem: string;
}

function decodeSgxReport(bytes: Uint8Array): SgxReportBody {
  const r = new LeReader(bytes, 'TDX_QUOTE_MALFORMED', 'QE report');
  const cpuSvn = r.bytes(16, 'CPUSVN');
  const miscSelect = r.u32('MISCSELECT');
  r.skip(28, 'reserved');
  const attributes = r.bytes(16, 'ATTRIBUTES');
  const mrEnclave = r.bytes(32, 'MRENCLAVE');
  r.skip(32, 'reserved');
  const mrSigner = r.bytes(32, 'MRSIGNER');
  r.skip(96, 'reserved');
  const isvProdId = r.u16('ISVPRODID');
  const isvSvn = r.u16('ISVSVN');
  r.skip(60, 'reserved');
  const reportData = r.bytes(64, 'REPORTDATA');
  return { bytes, cpuSvn, miscSelect, attributes, mrEnclave, mrSigner, isvProdId, isvSvn, reportData };
}

/**
 * Decode a TDX quote v4 with QE-report certification data. Checks version, key type, TEE type,
 * every length, and that only zero padding follows the quote; verifies nothing cryptographic.
 *
 * @throws CvmError `TDX_QUOTE_MALFORMED`.
 */
export function decodeUnverifiedTdQuote(bytes: Uint8Array): UnverifiedTdQuote {
  const r = new LeReader(bytes, 'TDX_QUOTE_MALFORMED', 'TD quote');
  const version = r.u16('header.version');
  const attKeyType = r.u16('header.att_key_type');
  const teeType = r.u32('header.tee_type');
  // SECURITY: only the v4 TDX layout with an ECDSA P-256 attestation key is parsed here; another
  // version, key type or an SGX quote would be read with the wrong layout (type confusion).
  if (version !== TDX_QUOTE_VERSION || attKeyType !== ATT_KEY_TYPE_ECDSA_P256 || teeType !== TEE_TYPE_TDX) {
    throw new CvmError('TDX_QUOTE_MALFORMED', `quote version ${version}, key type ${attKeyType}, TEE type 0x${teeType.toString(16)} is not a TDX v4 ECDSA-P256 quote`);
  }
  r.skip(4, 'header.reserved');
  const qeVendorId = r.bytes(16, 'header.qe_vendor_id');
  const userData = r.bytes(20, 'header.user_data');
  const b = new LeReader(r.bytes(BODY_BYTES, 'body'), 'TDX_QUOTE_MALFORMED', 'TD quote body');
  const body: TdQuoteBody = {
    teeTcbSvn: b.bytes(16, 'TEE_TCB_SVN'),
    mrSeam: b.bytes(48, 'MRSEAM'),
    mrSignerSeam: b.bytes(48, 'MRSIGNERSEAM'),
    seamAttributes: b.bytes(8, 'SEAMATTRIBUTES'),
    tdAttributes: b.bytes(8, 'TDATTRIBUTES'),
    xfam: b.bytes(8, 'XFAM'),
    mrTd: b.bytes(48, 'MRTD'),
    mrConfigId: b.bytes(48, 'MRCONFIGID'),
    mrOwner: b.bytes(48, 'MROWNER'),
    mrOwnerConfig: b.bytes(48, 'MROWNERCONFIG'),
    rtmrs: [b.bytes(48, 'RTMR0'), b.bytes(48, 'RTMR1'), b.bytes(48, 'RTMR2'), b.bytes(48, 'RTMR3')],
    reportData: b.bytes(64, 'REPORTDATA'),
  };
  const sigDataLen = r.u32('signature_data_len');
  const s = new LeReader(r.bytes(sigDataLen, 'signature data'), 'TDX_QUOTE_MALFORMED', 'TD quote signature data');
  const signatureP1363 = s.bytes(64, 'signature');
  const attestationKey = s.bytes(64, 'attestation key');
  const certType = s.u16('certification data type');
  const certSize = s.u32('certification data size');
  // SECURITY: v4 quotes carry the QE report as certification data; anything else has no QE
  // binding of the attestation key to check.
  if (certType !== CERT_TYPE_QE_REPORT) throw new CvmError('TDX_QUOTE_MALFORMED', `certification data type ${certType} is not a QE report (6)`);
  const c = new LeReader(s.bytes(certSize, 'certification data'), 'TDX_QUOTE_MALFORMED', 'QE report certification data');
  const qeReport = decodeSgxReport(c.bytes(QE_REPORT_BYTES, 'QE report'));
  const qeReportSignatureP1363 = c.bytes(64, 'QE report signature');
  const qeAuthData = c.bytes(c.u16('QE auth data size'), 'QE auth data');
  const pckType = c.u16('PCK certification data type');
  const pckSize = c.u32('PCK certification data size');
  // SECURITY: the PCK chain is what ties the QE to an Intel platform; other certification types
  // (encrypted PPID, ...) cannot be verified offline.
  if (pckType !== CERT_TYPE_PCK_CHAIN) throw new CvmError('TDX_QUOTE_MALFORMED', `QE certification data type ${pckType} is not a PCK chain (5)`);
  // SECURITY: bounds the PEM text handed to certificate parsing.
  if (pckSize > MAX_PCK_CHAIN_BYTES) throw new CvmError('TDX_QUOTE_MALFORMED', `PCK chain of ${pckSize} bytes exceeds ${MAX_PCK_CHAIN_BYTES}`);
  const pck = c.bytes(pckSize, 'PCK certificate chain');
  const pckChainPem = Buffer.from(pck).toString('latin1').replace(/\0+$/, '');
  for (const [reader, what] of [[c, 'QE report certification data'], [s, 'signature data']] as const) {
    // SECURITY: declared sizes must account for every byte, so no unsigned data hides inside them.
    if (reader.remaining !== 0) throw new CvmError('TDX_QUOTE_MALFORMED', `${what} has ${reader.remaining} unaccounted bytes`);
  }
  const rest = r.bytes(r.remaining, 'padding');
  // SECURITY: only zero padding may follow the quote (Azure pads); other trailing bytes are not
  // covered by any signature and are refused rather than ignored.
  if (rest.some((x) => x !== 0)) throw new CvmError('TDX_QUOTE_MALFORMED', 'non-zero bytes follow the quote');
  return {
    header: { version, attKeyType, teeType, qeVendorId, userData },
    body,
    signedBytes: bytes.subarray(0, HEADER_BYTES + BODY_BYTES),
    signatureP1363,
    attestationKey,
    qeReport,
    qeReportSignatureP1363,
    qeAuthData,
    pckChainPem,
  };
}
