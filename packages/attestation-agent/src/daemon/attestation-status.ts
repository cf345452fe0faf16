/**
 * What `keyhold-agent run` tells the node about itself (health endpoint, status file): whether it is
 * attested right now, and why not. Pure transitions, so every rule is testable without a KBS:
 *
 * - `attested` only after the KBS issued a token, and only while that token is unexpired
 *   ({@link isAttested} checks the clock at read time);
 * - a refusal (401/403: the evidence failed, the node is banned or revoked, the token was refused)
 *   turns it false AT ONCE and forgets the token's validity — nothing is vouched for afterwards
 *   (spiffe/spire#2700: an agent kept serving identities after its node was evicted);
 * - an error that is not an answer (KBS unreachable, 5xx, TPM busy) leaves the last token's validity
 *   as it was: the node stays attested until that token expires, and no longer.
 */

export type DaemonState =
  /** No attestation finished yet. */
  | 'starting'
  /** The last attestation succeeded. */
  | 'attested'
  /** The KBS refused the node (failed evidence, policy, an unknown or refused token). */
  | 'refused'
  /** The KBS refused the node as banned or revoked: certificates are no longer renewed. */
  | 'banned'
  /** The last attempt failed without an answer (unreachable, 5xx, TPM error). */
  | 'error'
  /** The daemon stopped (SIGTERM/SIGINT). */
  | 'stopped';

/** The node certificate the daemon keeps in --node-cert-dir, when it has one. */
export interface CertificateStatus {
  readonly serial: string;
  readonly notAfter: string;
  readonly renewAt: string;
  readonly spiffeId?: string;
  /** Why the last issuance or renewal failed (cleared by the next success). */
  readonly error?: string;
}

export interface AttestationStatus {
  /** True while the node holds an unexpired token from a successful attestation. */
  readonly attested: boolean;
  readonly state: DaemonState;
  /** When `state` last changed (ISO 8601). */
  readonly since: string;
  readonly updatedAt: string;
  readonly lastAttestedAt?: string;
  /** Expiry of the token of the last successful attestation; absent after a refusal. */
  readonly validUntil?: string;
  readonly nodeId?: string;
  readonly spiffeId?: string;
  /** EAR status of the last token (`affirming`, `warning`, ...). */
  readonly earStatus?: string;
  /** `CODE: detail` of the last refusal or error. */
  readonly reason?: string;
  readonly consecutiveErrors: number;
  readonly nextAttemptAt?: string;
  readonly certificate?: CertificateStatus;
}

const iso = (ms: number): string => new Date(ms).toISOString();

export function initialStatus(nowMs: number): AttestationStatus {
  return { attested: false, state: 'starting', since: iso(nowMs), updatedAt: iso(nowMs), consecutiveErrors: 0 };
}

function moved(prev: AttestationStatus, state: DaemonState, nowMs: number): Pick<AttestationStatus, 'state' | 'since' | 'updatedAt'> {
  return { state, since: state === prev.state ? prev.since : iso(nowMs), updatedAt: iso(nowMs) };
}

/** What a successful attestation tells (from the node's own token, read without verification: display only). */
export interface AttestedFacts {
  readonly tokenExpiresAtMs: number;
  readonly nodeId?: string | undefined;
  readonly spiffeId?: string | undefined;
  readonly earStatus?: string | undefined;
}

export function onAttested(prev: AttestationStatus, nowMs: number, facts: AttestedFacts): AttestationStatus {
  const { reason: _reason, ...rest } = prev;
  return {
    ...rest,
    ...moved(prev, 'attested', nowMs),
    attested: facts.tokenExpiresAtMs > nowMs,
    lastAttestedAt: iso(nowMs),
    validUntil: iso(facts.tokenExpiresAtMs),
    consecutiveErrors: 0,
    ...(facts.nodeId !== undefined ? { nodeId: facts.nodeId } : {}),
    ...(facts.spiffeId !== undefined ? { spiffeId: facts.spiffeId } : {}),
    ...(facts.earStatus !== undefined ? { earStatus: facts.earStatus } : {}),
  };
}

/** The KBS answered no. `banned`: as banned or revoked (renewal stops). The token's validity is forgotten. */
export function onRefused(prev: AttestationStatus, nowMs: number, reason: string, banned: boolean): AttestationStatus {
  const { validUntil: _validUntil, ...rest } = prev;
  return { ...rest, ...moved(prev, banned ? 'banned' : 'refused', nowMs), attested: false, reason, consecutiveErrors: 0 };
}

/** No answer (or a 5xx): attested stays what the last token allows, until it expires. */
export function onError(prev: AttestationStatus, nowMs: number, reason: string): AttestationStatus {
  const validUntilMs = prev.validUntil !== undefined ? Date.parse(prev.validUntil) : undefined;
  return {
    ...prev,
    ...moved(prev, 'error', nowMs),
    attested: prev.attested && validUntilMs !== undefined && validUntilMs > nowMs,
    reason,
    consecutiveErrors: prev.consecutiveErrors + 1,
  };
}

export function onStopped(prev: AttestationStatus, nowMs: number): AttestationStatus {
  const { validUntil: _validUntil, nextAttemptAt: _next, ...rest } = prev;
  return { ...rest, ...moved(prev, 'stopped', nowMs), attested: false };
}

export function withCertificate(prev: AttestationStatus, nowMs: number, certificate: CertificateStatus | undefined): AttestationStatus {
  const { certificate: _old, ...rest } = prev;
  return { ...rest, updatedAt: iso(nowMs), ...(certificate !== undefined ? { certificate } : {}) };
}

export function withNextAttempt(prev: AttestationStatus, atMs: number): AttestationStatus {
  return { ...prev, nextAttemptAt: iso(atMs) };
}

/** The status as of `nowMs`: `attested` turns false once the token has expired, whatever was last written. */
export function isAttested(status: AttestationStatus, nowMs: number): boolean {
  if (!status.attested || status.validUntil === undefined) return false;
  return Date.parse(status.validUntil) > nowMs;
}

/** The status with `attested` evaluated at `nowMs` (what the health endpoint and the status file show). */
export function statusAt(status: AttestationStatus, nowMs: number): AttestationStatus {
  const attested = isAttested(status, nowMs);
  return attested === status.attested ? status : { ...status, attested };
}
