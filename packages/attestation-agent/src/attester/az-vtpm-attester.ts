import { createHash, timingSafeEqual } from 'node:crypto';
import { AgentError, TpmError } from '../errors.js';
import type { Attester, EvidenceRequest } from '../kbs-client/kbs-client.js';
import type { TpmDevice, TpmKey } from '../tpm/device.js';
import { TPM_ALG } from '../tpm/internal/tpm-alg.js';
import { decodeUnverifiedQuoteAttest, parseTpmtSignature } from '../tpm/quote-format.js';
import type { TdQuoteSource, VcekSource } from './cvm-platform.js';
import type { TpmEvidenceContributor } from './tpm-attester.js';

/** The NV index Azure's paravisor writes the HCL report into (az-cvm-vtpm `VTPM_HCL_REPORT_NV_INDEX`). */
export const AZURE_HCL_REPORT_NV_INDEX = 0x01400001;
/** The persistent handle of Azure's vTPM AK, the key the HCL report publishes (`VTPM_AK_HANDLE`). */
export const AZURE_VTPM_AK_HANDLE = 0x81000003;
/** Trustee evidence version this attester writes (guest-components writes 1; v2 needs NV writes). */
const EVIDENCE_VERSION = 1;
const ALL_PCRS = Array.from({ length: 24 }, (_, i) => i);
const ATTEMPTS = 2;
/** HCL report layout: `HCLA` header (32), hardware report area (1184), IGVM request data (report type at +8). */
const HW_REPORT_OFFSET = 32;
const TD_REPORT_BYTES = 1024;
const REPORT_TYPE_OFFSET = 32 + 1184 + 8;

export type CvmTee = 'az-snp-vtpm' | 'az-tdx-vtpm';

/** The kind of hardware report in an HCL report (its unsigned header; the KBS verifies the rest). */
export function hclReportTee(hcl: Uint8Array): CvmTee | undefined {
  if (hcl.length < REPORT_TYPE_OFFSET + 4 || Buffer.from(hcl.subarray(0, 4)).toString('latin1') !== 'HCLA') return undefined;
  const type = Buffer.from(hcl.buffer, hcl.byteOffset, hcl.byteLength).readUInt32LE(REPORT_TYPE_OFFSET);
  return type === 2 ? 'az-snp-vtpm' : type === 4 ? 'az-tdx-vtpm' : undefined;
}

/** `--tee auto`: an HCL report in the vTPM's NV means an Azure CVM (guest-components detects it the same way). */
export async function detectCvmTee(tpm: TpmDevice): Promise<CvmTee | undefined> {
  try {
    return hclReportTee(await tpm.readNv(AZURE_HCL_REPORT_NV_INDEX));
  } catch (err) {
    if (err instanceof AgentError && err.code === 'TPM_NV_NOT_FOUND') return undefined;
    throw err;
  }
}

/** Padded URL-safe base64 (serde_with `Base64<UrlSafe>`, what Trustee decodes). */
const b64url = (b: Uint8Array): string => Buffer.from(b).toString('base64').replaceAll('+', '-').replaceAll('/', '_');
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

export interface AzVtpmAttesterOptions {
  readonly tee: CvmTee;
  readonly tpm: TpmDevice;
  /** The vTPM AK (RSA, the one the HCL report publishes; Azure: persistent 0x81000003). */
  readonly ak: TpmKey;
  /** az-snp-vtpm: the VCEK (Azure IMDS, or a file). */
  readonly vcek?: VcekSource;
  /** az-tdx-vtpm: the TD quote service (Azure IMDS). */
  readonly tdQuote?: TdQuoteSource;
  /** Keyhold's optional evidence fields (event log, IMA log). */
  readonly contributors?: readonly TpmEvidenceContributor[];
}

/**
 * Trustee `az-snp-vtpm` / `az-tdx-vtpm` attester (guest-components `attester/src/az_{snp,tdx}_vtpm`):
 * reads the HCL report from NV 0x01400001, quotes SHA-256 PCRs 0-23 with the whole runtime-data
 * digest as qualifying data, and adds the VCEK (SNP) or the TD quote for the HCL's TD report (TDX).
 * Evidence version 1: `{version, tpm_quote {signature, message, pcrs} (hex), hcl_report, vcek | td_quote}`.
 */
export class AzVtpmAttester implements Attester {
  readonly tee: CvmTee;
  readonly #o: AzVtpmAttesterOptions;

  constructor(o: AzVtpmAttesterOptions) {
    if (o.tee === 'az-snp-vtpm' && o.vcek === undefined) throw new TypeError('az-snp-vtpm needs a VCEK source');
    if (o.tee === 'az-tdx-vtpm' && o.tdQuote === undefined) throw new TypeError('az-tdx-vtpm needs a TD quote source');
    if (o.ak.alg !== 'rsa') throw new TypeError('the Azure vTPM AK is RSA (RSASSA-SHA256)');
    this.tee = o.tee;
    this.#o = o;
  }

  async evidence(req: EvidenceRequest): Promise<{ primary: unknown }> {
    const extra: Record<string, unknown> = {};
    for (const c of this.#o.contributors ?? []) if (c.evidenceFields !== undefined) Object.assign(extra, await c.evidenceFields(req.challengeExtra));
    const hcl = await this.#o.tpm.readNv(AZURE_HCL_REPORT_NV_INDEX);
    const kind = hclReportTee(hcl);
    // SECURITY: refuse to send a report of the other vendor (or none) as this tee's evidence; the KBS would refuse it anyway.
    if (kind !== this.tee) throw new TpmError('TPM_BAD_RESPONSE', `NV 0x${AZURE_HCL_REPORT_NV_INDEX.toString(16)} does not hold an HCL report for ${this.tee}`);
    const quote = await this.#quote(req.reportData);
    const platform =
      this.tee === 'az-snp-vtpm'
        ? { vcek: b64url(await (this.#o.vcek as VcekSource).vcekDer()) }
        : { td_quote: b64url(await (this.#o.tdQuote as TdQuoteSource).tdQuote(hcl.subarray(HW_REPORT_OFFSET, HW_REPORT_OFFSET + TD_REPORT_BYTES))) };
    for (const c of this.#o.contributors ?? []) if (c.evidenceFieldsAfterQuote !== undefined) Object.assign(extra, await c.evidenceFieldsAfterQuote(req.challengeExtra));
    // Trustee's fields last, so no contributor can overwrite them.
    return { primary: { ...extra, version: EVIDENCE_VERSION, tpm_quote: quote, hcl_report: b64url(hcl), ...platform } };
  }

  /** Quote PCRs 0-23; the PCR values returned are the ones the quote covers (retried once if an extend raced it). */
  async #quote(reportData: Uint8Array): Promise<{ signature: string; message: string; pcrs: string[] }> {
    if (reportData.length === 0 || reportData.length > 64) throw new TypeError('report data must be 1..64 bytes');
    const { tpm, ak } = this.#o;
    for (let attempt = 1; ; attempt++) {
      const pcrs = await tpm.readPcrs('sha256', ALL_PCRS);
      const q = await tpm.quote(ak, 'sha256', ALL_PCRS, reportData);
      const attest = decodeUnverifiedQuoteAttest(q.message);
      const sig = parseTpmtSignature(q.signature);
      // SECURITY: Trustee's az-*-vtpm verifiers take a raw RSASSA-SHA256 signature over SHA-256 PCRs 0-23; anything else would not verify.
      if (sig.sigAlg !== 'rsassa' || sig.hashAlg !== TPM_ALG.SHA256) throw new TpmError('TPM_BAD_RESPONSE', 'the vTPM AK did not sign with RSASSA-SHA256');
      const sel = attest.pcrSelections;
      if (sel.length !== 1 || sel[0]!.hashAlg !== TPM_ALG.SHA256 || sel[0]!.indices.join() !== ALL_PCRS.join()) throw new TpmError('TPM_BAD_RESPONSE', 'quote does not cover SHA-256 PCRs 0-23');
      // SECURITY: the quote must carry this request's report data, or it could be replayed.
      if (!sameBytes(attest.extraData, reportData)) throw new TpmError('TPM_BAD_RESPONSE', 'quote extraData is not the report data');
      const h = createHash('sha256');
      for (const v of pcrs) h.update(v);
      if (sameBytes(h.digest(), attest.pcrDigest)) return { signature: hex(sig.sig), message: hex(q.message), pcrs: pcrs.map(hex) };
      if (attempt >= ATTEMPTS) throw new TpmError('TPM_PCR_CHANGED', 'PCRs changed while quoting, twice');
    }
  }
}
