import type { EventPublisher } from '../notify/event-publisher.js';
import type { NodeCaProvider } from '../node-ca/node-ca-provider.js';
import type { ContinuousSettings } from './continuous-config.js';
import type { NodeRecordCache } from './record-attestation.js';

/**
 * What continuous attestation (issue 13) adds to the KBS's dependencies: the `[continuous]`
 * settings, the SPIFFE trust domain of node IDs, the event publisher (events for the admin stream
 * and webhooks) and the node CA (node certificates).
 */
export interface ContinuousDeps {
  readonly settings: ContinuousSettings;
  /** `[tpm] trust_domain`. */
  readonly trustDomain: string;
  readonly events?: EventPublisher;
  readonly nodeCa?: NodeCaProvider;
  /** Expected-version hints for the per-attestation compare-and-swap (see NodeRecordCache). */
  readonly nodeCache?: NodeRecordCache;
  /** Heartbeat of the admin event stream (default 15 s; tests shorten it). */
  readonly sseHeartbeatMs?: number;
}
