export { KbsClient } from './kbs-client.js';
export type { Attester, EvidenceRequest, KbsClientOptions } from './kbs-client.js';
export { KbsClientError } from './errors.js';
export type { KbsClientErrorCode } from './errors.js';
export { generateTeeKeyPair } from './tee-key.js';
export type { TeeKeyPair, TeeKeyType } from './tee-key.js';
