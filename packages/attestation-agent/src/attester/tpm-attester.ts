import { fitReportData, TPM_REPORT_DATA_BYTES } from '@keyhold/protocol';
import { collectTpmEvidence, readEvidencePcrs } from '../evidence/tpm-evidence.js';
import type { TpmDevice, TpmKey } from '../tpm/device.js';
import type { Attester, EvidenceRequest } from '../kbs-client/kbs-client.js';

/**
 * Adds Keyhold's optional fields beside Trustee's in the `tpm` evidence (EK and AK publics,
 * credential-activation answers, event logs). Trustee's own fields are never changed.
 */
export interface TpmEvidenceContributor {
  readonly name: string;
  /** Members for the `/auth` request's extra-params. */
  requestExtraParams?(): Promise<Record<string, unknown>>;
  /** Extra evidence fields, given the challenge's extra-params. */
  evidenceFields?(challengeExtra: Record<string, unknown>): Promise<Record<string, unknown>>;
  /** Extra evidence fields read after the quote (logs the kernel appends to before extending, e.g. IMA). */
  evidenceFieldsAfterQuote?(challengeExtra: Record<string, unknown>): Promise<Record<string, unknown>>;
}

/** Trustee `tpm` attester: quotes SHA-256 PCRs 0-23 with the runtime-data digest as qualifying data. */
export class TpmAttester implements Attester {
  readonly tee = 'tpm';
  readonly #tpm: TpmDevice;
  readonly #ak: TpmKey;
  readonly #contributors: readonly TpmEvidenceContributor[];
  #pcrsReadEarlier: Promise<Uint8Array[]> | undefined;

  constructor(tpm: TpmDevice, ak: TpmKey, contributors: readonly TpmEvidenceContributor[] = []) {
    this.#tpm = tpm;
    this.#ak = ak;
    this.#contributors = contributors;
  }

  async requestExtraParams(): Promise<Record<string, unknown>> {
    const out: Record<string, unknown> = {};
    for (const c of this.#contributors) if (c.requestExtraParams !== undefined) Object.assign(out, await c.requestExtraParams());
    // The TPM reads the PCRs while the KBS answers /auth; the quote's pcrDigest check still decides
    // whether those values are the ones reported.
    const early = readEvidencePcrs(this.#tpm);
    early.catch(() => undefined);
    this.#pcrsReadEarlier = early;
    return out;
  }

  async evidence(req: EvidenceRequest): Promise<{ primary: unknown }> {
    const extra: Record<string, unknown> = {};
    // Contributors run first: e.g. credential activation must not race the quote's PCR reads.
    for (const c of this.#contributors) if (c.evidenceFields !== undefined) Object.assign(extra, await c.evidenceFields(req.challengeExtra));
    const qualifyingData = fitReportData(req.reportData, TPM_REPORT_DATA_BYTES);
    const pcrsReadEarlier = this.#pcrsReadEarlier;
    this.#pcrsReadEarlier = undefined;
    const evidence = await collectTpmEvidence(this.#tpm, this.#ak, qualifyingData, pcrsReadEarlier !== undefined ? { pcrsReadEarlier } : {});
    for (const c of this.#contributors) if (c.evidenceFieldsAfterQuote !== undefined) Object.assign(extra, await c.evidenceFieldsAfterQuote(req.challengeExtra));
    // A TPM-resident tee key: its certification by the AK, with the quote's qualifying data.
    if (req.teeKey?.residencyEvidence !== undefined) Object.assign(extra, await req.teeKey.residencyEvidence(qualifyingData));
    // Trustee's fields last, so no contributor can overwrite them.
    return { primary: { ...extra, ...evidence } };
  }
}
