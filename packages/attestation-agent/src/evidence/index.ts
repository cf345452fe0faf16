export { collectTpmEvidence, bindInitData, INIT_DATA_PCR } from './tpm-evidence.js';
export type { TpmEvidence } from './tpm-evidence.js';
