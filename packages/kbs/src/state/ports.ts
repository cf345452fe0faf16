/**
 * The KBS state port: everything the KBS remembers between requests, expressed as the domain's
 * atomic steps (create a session, consume its nonce once, compare-and-swap a node record, set one
 * reference value...) rather than as a generic get/set. Two implementations pass one conformance
 * suite (`conformance.test-support.ts`):
 *
 *  - `embedded`: one process; memory plus files in the data dir, a per-store write queue so no
 *    acknowledged write is lost, and a lock file so a second process on the same dir is refused.
 *  - `redis`: standalone or Cluster; every mutation is one Lua script (or MULTI) on one hash slot,
 *    so any number of KBS replicas share one consistent state.
 *
 * Rules every implementation keeps (the conformance suite checks each):
 *  1. Every mutation is atomic with respect to every other mutation, across processes.
 *  2. A mutation resolves only once it is durable in the backend (for `embedded`: fsync'd, except
 *     sessions, nonces, rate-limit buckets and IMA checkpoints, which are memory-only by design).
 *  3. A read that starts after a mutation resolved (on any replica) observes it. Caches are allowed
 *     only behind a version check that costs one round trip at most (see `ReferenceValueState`).
 *  4. Backend outages throw `StateError('STATE_UNAVAILABLE')` (the KBS answers 503) within the
 *     configured operation timeout; they never hang and never read as "absent" or "allowed".
 *  5. Corrupt stored data throws `StateError('STATE_CORRUPT')`: fail closed, never guess.
 */
import type { AuditSink } from '../audit/sink.js';
import type { PolicyStore } from '@keyhold/policy';
import type { BindingHashAlgorithm, TeePubkey } from '@keyhold/protocol';
import type { X509Certificate } from '@keyhold/verifier';
import type { ImaCheckpointRecord } from '../attestation/tpm/ima-checkpoint-store.js';
import type { CaStoreEntry } from '../identity/ca-store.js';

export type StateBackendName = 'embedded' | 'redis';

/** The whole state of one KBS (or of every replica sharing one Redis). */
export interface KbsState {
  readonly backend: StateBackendName;
  readonly sessions: SessionState;
  readonly nodes: NodeState;
  readonly referenceValues: ReferenceValueState;
  readonly ekAllowlist: EkAllowlistState;
  readonly ekCa: EkCaState;
  readonly imaCheckpoints: ImaCheckpointState;
  readonly rateLimits: RateLimitState;
  /** The event log (bounded retention), live waits and notifier delivery cursors (issue 13). */
  readonly events: EventState;
  /** Named leases with a time to live: one holder across replicas (stale sweeper, webhook notifier). */
  readonly leases: LeaseState;
  /** The generated node CA, created once and shared by every replica (issue 13). */
  readonly nodeCa: NodeCaState;
  /** The hash-chained audit trail (appends are compare-and-append on the chain head). */
  readonly audit: AuditSink;
  /** Attestation and resource policies (versioned; versions never reused). */
  readonly policies: PolicyStore;
  /** Resolves when the backend answers (health checks, start-up). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Sessions and nonces

/** What later steps of a flow need from `/auth`; nothing else is kept (bounded memory per session). */
export interface NewSession {
  /** 32 lowercase hex characters (a UUID v4 without dashes, as Trustee's cookie carries it). */
  readonly id: string;
  readonly tee: string;
  /** Standard base64 of 32 random bytes. */
  readonly nonce: string;
  readonly hashAlgorithm: BindingHashAlgorithm;
  readonly expiresAtMs: number;
  /**
   * JSON state the appraiser set at `/auth` (e.g. the credential-activation challenge and the
   * parsed, size-bounded identity fields), keyed by extension name. Never the raw extra-params.
   */
  readonly challenge?: Readonly<Record<string, unknown>>;
}

/** A successful `/attest`: what `/resource` by cookie needs. */
export interface AttestedSession {
  /** The verified EAR claims (as signed into the token). */
  readonly claims: Readonly<Record<string, unknown>>;
  readonly teePubkey: TeePubkey;
}

export interface SessionRecord extends NewSession {
  readonly nonceConsumed: boolean;
  readonly attested?: AttestedSession;
}

export interface SessionLimits {
  /** Open sessions before `create` throws SESSION_LIMIT. */
  readonly maxSessions: number;
  /** Serialized bytes held by open sessions before `create` throws SESSION_LIMIT. */
  readonly maxSessionBytes: number;
}

export interface SessionState {
  /**
   * Store a new session until `expiresAtMs`. Throws KbsError SESSION_LIMIT (429) when the count or
   * byte cap is reached (in Redis the count may be approximate; document how it is kept).
   */
  create(session: NewSession): Promise<void>;
  /** The live session. Throws KbsError SESSION_MISSING (unknown id) or SESSION_EXPIRED. */
  get(id: string): Promise<SessionRecord>;
  /**
   * Atomically mark the session's nonce consumed and return the session as it was before. Exactly
   * one caller wins across all replicas; every other caller gets KbsError NONCE_CONSUMED.
   * Throws SESSION_MISSING / SESSION_EXPIRED like `get`.
   */
  consumeNonce(id: string): Promise<SessionRecord>;
  /** Record the attestation on a session whose nonce this caller consumed. */
  recordAttestation(id: string, attested: AttestedSession): Promise<void>;
  delete(id: string): Promise<void>;
  /** Open sessions and the bytes they hold (approximate in Redis). */
  stats(): Promise<{ readonly count: number; readonly bytes: number }>;
}

// ---------------------------------------------------------------------------------------------
// Node records (enrolment, verdicts, revocation and bans, certificates)

/**
 * `active`: attested and allowed; `stale`: no successful attestation for `stale_after` (may be
 * computed at read time from `lastAttestedAt` rather than stored); `banned`: a failed appraisal
 * banned it (cleared by an owner's unban); `revoked`: the owner revoked it (cleared only by
 * removing the record, after which it must re-enrol).
 */
export type NodeLifecycle = 'active' | 'stale' | 'banned' | 'revoked';

export interface NodeVerdict {
  /** EAR status (`affirming`, `warning`, `contraindicated`, `none`) or `failed` (appraisal refused). */
  readonly status: string;
  /** `id@version` of the attestation policy, when one decided. */
  readonly policy?: string;
  /** The first failing reason (names only, never secret values). */
  readonly reason?: string;
  /** ISO 8601. */
  readonly at: string;
}

export interface NodeCertificateRef {
  /** Hex serial number. */
  readonly serial: string;
  readonly notAfter: string;
}

/**
 * One record per node. The id is the EK hash (hex SHA-256 of the EK DER SPKI) when the node proved
 * an EK, else `ak:` + hex SHA-256 of the AK's DER SPKI (a node trusted only through the owner's
 * `trusted_ak` list; the quote carries the SPKI, not the TPM name).
 */
export interface NodeRecord {
  readonly nodeId: string;
  /** Hex SHA-256 of the EK DER SPKI, when known. */
  readonly ekHash?: string;
  /** Hex TPM name of the bound AK (nameAlg || digest); null when the node never enrolled an AK. */
  readonly akName: string | null;
  /** When the AK was bound to the EK by credential activation (ISO 8601). */
  readonly enrolledAt?: string;
  readonly ekTrust?: 'ca' | 'allowlist' | 'ca+allowlist';
  readonly firstSeenAt: string;
  readonly lastSeenAt?: string;
  /** Last successful attestation (ISO 8601). */
  readonly lastAttestedAt?: string;
  readonly lastVerdict?: NodeVerdict;
  readonly state: NodeLifecycle;
  readonly banned?: { readonly at: string; readonly reason: string };
  readonly revokedAt?: string;
  /** Most recent certificates issued to the node (bounded, newest last). */
  readonly certificates?: readonly NodeCertificateRef[];
  /**
   * Set by the stale sweeper when it announced `node.stale`: the `lastAttestedAt` (or `firstSeenAt`
   * when the node never attested) of the staleness it announced, so each staleness is announced once.
   */
  readonly staleNotified?: string;
  /** Compare-and-swap counter: 1 on creation, +1 on every write. */
  readonly version: number;
}

/** A record to write: the store assigns `version`. */
export type NodeRecordInput = Omit<NodeRecord, 'version'>;

export interface NodeState {
  get(nodeId: string): Promise<NodeRecord | undefined>;
  /**
   * Write `next` only if the stored version is `expectedVersion` (0: the node must not exist).
   * Returns the stored record (with its new version), or undefined when another writer got there
   * first. Use `updateNode` (node-update.ts) for read-modify-write with bounded retries.
   */
  compareAndSwap(nodeId: string, expectedVersion: number, next: NodeRecordInput): Promise<NodeRecord | undefined>;
  /** Delete only if the stored version is `expectedVersion`; false on conflict or absence. */
  compareAndDelete(nodeId: string, expectedVersion: number): Promise<boolean>;
  /** A page of records in node-id order, optionally only those in one stored state. */
  list(options?: { readonly state?: NodeLifecycle; readonly after?: string; readonly limit?: number }): Promise<{ readonly nodes: readonly NodeRecord[]; readonly next?: string }>;
}

// ---------------------------------------------------------------------------------------------
// Reference values

/** An immutable view of every reference value at one moment. */
export interface ReferenceSnapshot {
  /** Increases on every write; equal versions mean equal content. */
  readonly version: number;
  get(name: string): readonly string[] | undefined;
  all(): Readonly<Record<string, readonly string[]>>;
}

export interface ReferenceValueState {
  /**
   * The current values. Implementations may cache the content, but each call must observe every
   * write acknowledged (on any replica) before it began — e.g. one round trip to compare a version
   * counter, reloading only when it moved.
   */
  snapshot(): Promise<ReferenceSnapshot>;
  /** Replace the values of each name in `entries`, all in one atomic write; other names keep theirs. */
  set(entries: Readonly<Record<string, readonly string[]>>): Promise<void>;
  /** Remove one name; false when it was not set. */
  delete(name: string): Promise<boolean>;
}

// ---------------------------------------------------------------------------------------------
// EK allowlist and EK CA store

export interface EkAllowlistEntry {
  readonly ekHash: string;
  readonly note?: string;
  readonly addedAt: string;
}

export interface EkAllowlistState {
  /** True when listed. Outages throw (deny on throw). */
  has(ekHash: string): Promise<boolean>;
  add(ekHash: string, meta?: { readonly note?: string; readonly now?: Date }): Promise<void>;
  remove(ekHash: string): Promise<boolean>;
  list(): Promise<readonly EkAllowlistEntry[]>;
}

export interface EkCaSnapshot {
  readonly version: number;
  readonly certificates: readonly X509Certificate[];
  readonly entries: readonly CaStoreEntry[];
}

export interface EkCaState {
  /** The owner's CA certificates: the configured directory (read at start) plus admin uploads. Cached by version like references. */
  snapshot(): Promise<EkCaSnapshot>;
  /** Validate a PEM/DER upload and store each certificate (idempotent per certificate). */
  add(upload: Uint8Array): Promise<{ readonly added: readonly CaStoreEntry[]; readonly alreadyPresent: readonly CaStoreEntry[] }>;
  /** Remove an uploaded certificate by hex SHA-256; false when absent (configured-directory files are not removable here). */
  remove(sha256: string): Promise<boolean>;
}

// ---------------------------------------------------------------------------------------------
// IMA checkpoints and rate limits

/** Per-node IMA checkpoints. Losing one only costs a full appraisal, so they may expire (TTL/LRU). */
export interface ImaCheckpointState {
  get(node: string): Promise<ImaCheckpointRecord | undefined>;
  set(node: string, record: ImaCheckpointRecord): Promise<void>;
  delete(node: string): Promise<void>;
}

export interface RateLimitRule {
  readonly ratePerSec: number;
  readonly burst: number;
}

export interface RateLimitDecision {
  readonly allowed: boolean;
  /** When refused: milliseconds until a token is available; 0 when allowed. */
  readonly retryAfterMs: number;
}

export interface RateLimitState {
  /** Take one token from `key`'s bucket under `rule` (shared by every replica on Redis). */
  take(key: string, rule: RateLimitRule): Promise<RateLimitDecision>;
}

// ---------------------------------------------------------------------------------------------
// Events, leases and the node CA (issue 13)

export const KBS_EVENT_TYPES = [
  'attestation',
  'release',
  'denial',
  'node.banned',
  'node.revoked',
  'node.unbanned',
  'node.stale',
  'node.recovered',
  'node.certificate',
  'policy.changed',
] as const;
export type KbsEventType = (typeof KBS_EVENT_TYPES)[number];

/** An event to publish: what happened, never secret values, tokens or evidence. */
export interface KbsEventInput {
  readonly type: KbsEventType;
  /** ISO 8601. */
  readonly at: string;
  /** The replica that saw it. */
  readonly replica?: string;
  readonly node?: string;
  readonly spiffeId?: string;
  readonly tee?: string;
  readonly repository?: string;
  /** `repo/type/tag`. */
  readonly resource?: string;
  /** `id@version`. */
  readonly policy?: string;
  readonly status?: string;
  readonly reason?: string;
}

/** A published event. `id` is `<ms>-<seq>` (two decimal integers, ordered as a pair, like Redis stream ids). */
export interface KbsEvent extends KbsEventInput {
  readonly id: string;
}

export interface EventState {
  /**
   * Append `events` in order and return them with their ids (increasing). Retention is bounded
   * (the oldest are dropped beyond it). Redis: always durable. Embedded: durable (fsync'd, kept
   * across a restart) only when `durable` is set — the KBS sets it for events a webhook wants —
   * other events live in memory. Memory state: nothing survives close.
   */
  publish(events: readonly KbsEventInput[], options?: { readonly durable?: boolean }): Promise<readonly KbsEvent[]>;
  /** Retained events with an id greater than `after` (all retained when undefined), oldest first, at most `limit` (1..1000). */
  read(options: { readonly after?: string; readonly limit: number }): Promise<readonly KbsEvent[]>;
  /** The newest `limit` (1..1000) retained events, oldest first. */
  latest(limit: number): Promise<readonly KbsEvent[]>;
  /**
   * Resolve once an event newer than `after` may exist (on any replica), after `timeoutMs`, or when
   * `signal` aborts, whichever comes first. Never rejects. Redis: a shared short poll per process.
   */
  waitForNew(after: string | undefined, timeoutMs: number, signal?: AbortSignal): Promise<void>;
  /** A consumer's delivery cursor (the last event id it finished), undefined when it never had one. */
  cursor(consumer: string): Promise<string | undefined>;
  /**
   * Set the consumer's cursor to `id` if `holder` holds lease `lease` (fenced: a replica that lost
   * the lease cannot move it) and `id` is not behind the stored cursor. False when the lease is not held.
   */
  advanceCursor(consumer: string, id: string, fence: { readonly lease: string; readonly holder: string }): Promise<boolean>;
}

export interface LeaseState {
  /** Take lease `name` for `holder` for `ttlMs`, or renew it when `holder` has it. True when `holder` holds it now. */
  acquire(name: string, holder: string, ttlMs: number): Promise<boolean>;
  /** Give the lease up if `holder` has it. */
  release(name: string, holder: string): Promise<void>;
}

/** The generated node CA as stored: its certificate and its private key, wrapped (see node-ca/). */
export interface StoredNodeCa {
  readonly certificatePem: string;
  /** base64url(iv(12) || ciphertext || tag(16)) of the PKCS#8 DER private key, AES-256-GCM. */
  readonly wrappedKey: string;
  readonly createdAt: string;
}

export interface NodeCaState {
  get(): Promise<StoredNodeCa | undefined>;
  /** Store `ca` unless a CA is stored already; returns the stored CA (this one, or the one that won). */
  createIfAbsent(ca: StoredNodeCa): Promise<StoredNodeCa>;
}
