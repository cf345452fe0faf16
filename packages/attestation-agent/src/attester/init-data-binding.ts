import { expectedInitDataPcr8, tpmInitDataDigest } from '@keyhold/protocol';
import { AgentError } from '../errors.js';
import { bindInitData, INIT_DATA_PCR } from '../evidence/tpm-evidence.js';
import type { TpmDevice } from '../tpm/device.js';

const ZERO = new Uint8Array(32);

/**
 * Extend the init-data digest into PCR8 once per TPM reset, as guest-components does at start: when
 * PCR8 already holds exactly this binding nothing is done, so running the agent again is harmless.
 * PCR8 holding anything else means other init-data was bound since reset: that is an error, since
 * the KBS could never match it.
 */
export async function ensureInitDataBound(tpm: TpmDevice, initDataDigest: Uint8Array): Promise<'extended' | 'already-bound'> {
  const d32 = tpmInitDataDigest(initDataDigest);
  const [pcr8] = await tpm.readPcrs('sha256', [INIT_DATA_PCR]);
  const want = expectedInitDataPcr8(d32);
  if (pcr8 !== undefined && Buffer.from(pcr8).equals(Buffer.from(want))) return 'already-bound';
  if (pcr8 === undefined || !Buffer.from(pcr8).equals(Buffer.from(ZERO))) {
    throw new AgentError('INIT_DATA_CONFLICT', 'PCR8 already holds another measurement since the last TPM reset; cannot bind this init-data');
  }
  await bindInitData(tpm, d32);
  return 'extended';
}
