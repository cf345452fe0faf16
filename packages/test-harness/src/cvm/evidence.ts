import type { SyntheticVcek } from './amd-chain.js';
import { buildHclReport, hclReportData, hclVariableData } from './hcl-report.js';
import { buildSnpReport, type SnpReportFields } from './snp-report.js';

/** A vTPM quote as Azure's attesters package it. */
export interface VtpmQuoteParts {
  /** TPMS_ATTEST. */
  readonly message: Uint8Array;
  /** Raw RSASSA signature (the TPMT_SIGNATURE's buffer). */
  readonly signature: Uint8Array;
  /** SHA-256 PCR0..23. */
  readonly pcrs: readonly Uint8Array[];
}

/** Padded URL-safe base64 (serde_with `Base64<UrlSafe>`), as guest-components writes it. */
export const b64urlPadded = (b: Uint8Array): string => Buffer.from(b).toString('base64').replaceAll('+', '-').replaceAll('/', '_');
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const bytes = (b: Uint8Array): number[] => [...b];

/** Trustee's az-snp-vtpm / az-tdx-vtpm evidence JSON (v0: byte arrays and a PEM VCEK; v1/v2: hex and base64url). */
export function azVtpmEvidence(o: {
  tee: 'az-snp-vtpm' | 'az-tdx-vtpm';
  version: 0 | 1 | 2;
  quote: VtpmQuoteParts;
  hclReport: Uint8Array;
  vcek?: { der: Uint8Array; pem: string };
  tdQuote?: Uint8Array;
}): Record<string, unknown> {
  if (o.version === 0) {
    const q = { signature: bytes(o.quote.signature), message: bytes(o.quote.message), pcrs: o.quote.pcrs.map(bytes) };
    return o.tee === 'az-snp-vtpm'
      ? { quote: q, report: bytes(o.hclReport), vcek: o.vcek?.pem }
      : { tpm_quote: q, hcl_report: bytes(o.hclReport), td_quote: bytes(o.tdQuote ?? new Uint8Array(0)) };
  }
  const tpm_quote = { signature: hex(o.quote.signature), message: hex(o.quote.message), pcrs: o.quote.pcrs.map(hex) };
  return o.tee === 'az-snp-vtpm'
    ? { version: o.version, tpm_quote, hcl_report: b64urlPadded(o.hclReport), vcek: b64urlPadded(o.vcek?.der ?? new Uint8Array(0)) }
    : { version: o.version, tpm_quote, hcl_report: b64urlPadded(o.hclReport), td_quote: b64urlPadded(o.tdQuote ?? new Uint8Array(0)) };
}

export interface SnpHclOptions {
  readonly vcek: SyntheticVcek;
  /** The vTPM AK (DER SPKI, RSA) that the variable data publishes. */
  readonly akSpkiDer: Uint8Array;
  /** HCL user-data (v2 evidence carries the report data here). */
  readonly userData?: Uint8Array;
  /** Override SNP report fields (VMPL, TCB, chip id, report data, ...). */
  readonly report?: Partial<SnpReportFields>;
  /** Variable data to publish (default built from `akSpkiDer` and `userData`). */
  readonly variableData?: Uint8Array;
  /** Pad the HCL report to this size (Azure: 2600; swtpm NV indices hold at most 2048 bytes). */
  readonly padTo?: number;
}

/** A synthetic HCL report: variable data publishing the AK, bound into an SNP report signed by the VCEK. */
export function synthesizeSnpHclReport(o: SnpHclOptions): { hclReport: Uint8Array; snpReport: Uint8Array; variableData: Uint8Array } {
  const variableData = o.variableData ?? hclVariableData({ akSpkiDer: o.akSpkiDer, ...(o.userData !== undefined ? { userData: o.userData } : {}) });
  const snpReport = buildSnpReport(
    {
      reportData: hclReportData(variableData),
      reportedTcb: o.vcek.tcb,
      chipId: o.vcek.hwId.length === 64 ? o.vcek.hwId : Uint8Array.from([...o.vcek.hwId, ...new Uint8Array(56)]),
      turin: o.vcek.productName.startsWith('Turin'),
      ...o.report,
    },
    o.vcek.privateKey,
  );
  return { hclReport: buildHclReport({ type: 'snp', hardwareReport: snpReport, variableData, ...(o.padTo !== undefined ? { padTo: o.padTo } : {}) }), snpReport, variableData };
}
