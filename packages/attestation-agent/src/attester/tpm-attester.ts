import { fitReportData, TPM_REPORT_DATA_BYTES } from '@keyhold/protocol';
import { collectTpmEvidence } from '../evidence/tpm-evidence.js';
import type { TpmDevice, TpmKey } from '../tpm/device.js';
import type { Attester, EvidenceRequest } from '../kbs-client/kbs-client.js';

/** Trustee `tpm` attester: quotes SHA-256 PCRs 0-23 with the runtime-data digest as qualifying data. */
export class TpmAttester implements Attester {
  readonly tee = 'tpm';
  readonly #tpm: TpmDevice;
  readonly #ak: TpmKey;

  constructor(tpm: TpmDevice, ak: TpmKey) {
    this.#tpm = tpm;
    this.#ak = ak;
  }

  async evidence(req: EvidenceRequest): Promise<{ primary: unknown }> {
    const evidence = await collectTpmEvidence(this.#tpm, this.#ak, fitReportData(req.reportData, TPM_REPORT_DATA_BYTES));
    return { primary: evidence };
  }
}
