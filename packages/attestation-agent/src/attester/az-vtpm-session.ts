import type { AgentConfig } from '../config.js';
import { AgentError } from '../errors.js';
import { loadOrCreateAk, type LoadedAk } from '../tpm/ak-store.js';
import type { TpmDevice } from '../tpm/device.js';
import { AZURE_VTPM_AK_HANDLE, AzVtpmAttester, detectCvmTee, type CvmTee } from './az-vtpm-attester.js';
import { FileVcekSource, ImdsTdQuoteSource, ImdsVcekSource } from './cvm-platform.js';
import type { TpmEvidenceContributor } from './tpm-attester.js';

/** What a node session needs for Azure vTPM evidence: the paravisor's AK and the attester. */
export interface AzVtpmSessionParts {
  readonly tee: CvmTee;
  readonly ak: LoadedAk;
  attester(contributors: readonly TpmEvidenceContributor[]): AzVtpmAttester;
}

/**
 * For `--tee az-snp-vtpm|az-tdx-vtpm` (or `auto` on an Azure CVM): load the AK the HCL report
 * publishes — persistent 0x81000003 unless --ak-handle says otherwise; it is never created, since a
 * new key would not be the one the hardware report vouches for — and build the attester with the
 * VCEK / TD quote sources (Azure IMDS, or --vcek-file). Undefined for `tpm` evidence.
 */
export async function azVtpmSessionParts(tpm: TpmDevice, config: AgentConfig): Promise<AzVtpmSessionParts | undefined> {
  const tee = config.tee === 'auto' ? await detectCvmTee(tpm) : config.tee === 'tpm' ? undefined : config.tee;
  if (tee === undefined) return undefined;
  const ak = await loadOrCreateAk(tpm, { alg: 'rsa', persistentHandle: config.akHandleSet ? config.akHandle : AZURE_VTPM_AK_HANDLE, persist: false });
  if (ak.ak.alg !== 'rsa') {
    await ak.release().catch(() => undefined);
    throw new AgentError('CONFIG_INVALID', `${tee} needs the RSA vTPM AK; the key at the AK handle is ${ak.ak.alg}`);
  }
  const platform =
    tee === 'az-snp-vtpm'
      ? { vcek: config.vcekFile !== undefined ? new FileVcekSource(config.vcekFile) : new ImdsVcekSource(config.timeoutMs) }
      : { tdQuote: new ImdsTdQuoteSource(config.timeoutMs) };
  return { tee, ak, attester: (contributors) => new AzVtpmAttester({ tee, tpm, ak: ak.ak, ...platform, contributors }) };
}
