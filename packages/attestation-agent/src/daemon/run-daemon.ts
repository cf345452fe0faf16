/**
 * The loop of `keyhold-agent run`: attest, keep the node certificate fresh, publish the status,
 * sleep (jittered interval, or backoff after errors), until the signal aborts.
 *
 * Rules:
 * - each cycle runs a fresh handshake (auth → attest), so the KBS appraises the node's current
 *   state every interval and the node always holds a fresh token;
 * - a 401/403 from the KBS (to the attestation, or to the certificate request) makes the node
 *   not attested at once: the cached token is forgotten and cert.pem removed before the status is
 *   published; `NodeBanned`/`NodeRevoked` mark it banned (and delete key.pem with --delete-key-on-ban);
 * - anything else that fails (unreachable KBS, 5xx, TPM) is retried with capped exponential backoff;
 *   the node stays attested only until its last token expires (the status is republished then).
 * One log line per attestation (`attested`, `attestation refused`, `attestation failed`), one per
 * certificate issued; never tokens, evidence or keys.
 */
import { decodeJwt } from 'jose';
import { KbsClientError } from '../kbs-client/errors.js';
import type { CertificateFacts } from '../node-cert/cert-files.js';
import type { NodeCertificates } from '../node-cert/node-certificates.js';
import {
  initialStatus,
  isAttested,
  onAttested,
  onError,
  onRefused,
  onStopped,
  statusAt,
  withCertificate,
  withNextAttempt,
  type AttestationStatus,
  type AttestedFacts,
  type CertificateStatus,
} from './attestation-status.js';
import { nextAttemptDelayMs } from './retry-schedule.js';

/** What the loop needs of the KBS client. */
export interface DaemonKbs {
  /** A fresh handshake; the token. */
  attest(): Promise<string>;
  forgetToken(): void;
  requestNodeCertificate(token: string, csrPem: string): Promise<unknown>;
  /** Called at the end of every cycle: let go of the TPM until the next one. */
  release?(): Promise<void>;
}

/** A structured logger (pino's shape). */
export interface DaemonLog {
  info(obj: Record<string, unknown>, msg: string): void;
  warn(obj: Record<string, unknown>, msg: string): void;
  error(obj: Record<string, unknown>, msg: string): void;
}

export interface RunDaemonOptions {
  readonly intervalMs: number;
  readonly kbs: DaemonKbs;
  readonly certs?: NodeCertificates | undefined;
  readonly log: DaemonLog;
  /** Called with every new status (health endpoint, status file); awaited. */
  readonly publish: (status: AttestationStatus) => Promise<void>;
  readonly signal: AbortSignal;
  readonly now?: () => number;
  readonly random?: () => number;
  /** Resolves after `ms` or when `signal` aborts. */
  readonly sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

/** Type tails of the Trustee error body that mean the node itself is barred (not just this token). */
const BANNED_TYPES = new Set(['NodeBanned', 'NodeRevoked']);

/** A 401/403 answer: the KBS refused this node or its token. */
export function isRefusal(err: unknown): err is KbsClientError {
  return err instanceof KbsClientError && (err.status === 401 || err.status === 403);
}

function reasonOf(err: unknown): { code: string; reason: string } {
  const code = (err as { code?: unknown }).code;
  const message = err instanceof Error ? err.message : String(err);
  const c = typeof code === 'string' ? code : 'ERROR';
  return { code: c, reason: `${c}: ${message}`.slice(0, 1000) };
}

/** The facts a status shows, from the node's own token (read without verification: display only). */
export function attestedFacts(token: string, fallbackExpMs: number): AttestedFacts {
  let claims: Record<string, unknown> = {};
  try {
    claims = decodeJwt(token) as Record<string, unknown>;
  } catch {
    /* not a JWT: the client already refused that; keep the fallback */
  }
  const cpu0 = ((claims['submods'] as Record<string, unknown> | undefined)?.['cpu0'] ?? {}) as Record<string, unknown>;
  const annotated = (cpu0['ear.veraison.annotated-evidence'] ?? {}) as Record<string, unknown>;
  const str = (v: unknown): string | undefined => (typeof v === 'string' && v.length <= 512 ? v : undefined);
  const exp = typeof claims['exp'] === 'number' ? claims['exp'] * 1000 : fallbackExpMs;
  return { tokenExpiresAtMs: exp, nodeId: str(annotated['node_id']), spiffeId: str(annotated['spiffe_id']), earStatus: str(cpu0['ear.status']) };
}

function certificateStatus(facts: CertificateFacts, renewAtMs: number | undefined, spiffeId: string | undefined): CertificateStatus {
  return {
    serial: facts.serial,
    notAfter: new Date(facts.notAfterMs).toISOString(),
    renewAt: new Date(renewAtMs ?? facts.notAfterMs).toISOString(),
    ...(spiffeId !== undefined ? { spiffeId } : {}),
  };
}

function defaultSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

/** Run until `signal` aborts; the last status (state `stopped`). */
export async function runDaemon(opts: RunDaemonOptions): Promise<AttestationStatus> {
  const now = opts.now ?? Date.now;
  const sleep = opts.sleep ?? defaultSleep;
  const { kbs, certs, log, signal } = opts;
  let status = initialStatus(now());
  let tokenLifetimeMs: number | undefined;
  // A certificate left by an earlier run for the current key is shown (and renewed when due).
  const held = certs?.held;
  if (certs !== undefined && held !== undefined && held.spkiSha256 === certs.key?.spkiSha256) {
    status = withCertificate(status, now(), certificateStatus(held, certs.renewAtMs(), held.uris.find((u) => u.startsWith('spiffe://'))));
  }
  await opts.publish(status);

  /** The KBS said no: forget the token, remove cert.pem (and the key when banned and asked to), then publish. */
  const refused = async (err: KbsClientError, what: string): Promise<void> => {
    kbs.forgetToken();
    tokenLifetimeMs = undefined;
    const banned = err.errorType !== undefined && BANNED_TYPES.has(err.errorType);
    const { code, reason } = reasonOf(err);
    let files = {};
    if (certs !== undefined) {
      try {
        const r = await certs.onRefused(banned);
        files = { certRemoved: r.certRemoved, keyDeleted: r.keyDeleted };
      } catch (fileErr) {
        log.error({ code: reasonOf(fileErr).code, reason: reasonOf(fileErr).reason }, 'could not remove the node certificate files');
      }
      status = withCertificate(status, now(), undefined);
    }
    status = onRefused(status, now(), reason, banned);
    log.warn({ code, status: err.status, type: err.errorType, banned, reason, ...files }, what);
  };

  while (!signal.aborted) {
    await cycle();
    if (signal.aborted) break;
    await pause();
  }
  status = onStopped(status, now());
  await opts.publish(status);
  return status;

  /** One attestation (and certificate renewal when due); the TPM is released at the end. */
  async function cycle(): Promise<void> {
    const started = now();
    try {
      let token = await kbs.attest();
      // A ban deleted the key: make a new one and attest again, so the certificate request is bound to it.
      if (certs !== undefined && (await certs.restoreKey())) {
        log.info({ spkiSha256: certs.key?.spkiSha256 }, 'new node key made (the old one was deleted at a ban)');
        token = await kbs.attest();
      }
      const facts = attestedFacts(token, now() + 60_000);
      tokenLifetimeMs = facts.tokenExpiresAtMs - now();
      status = onAttested(status, now(), facts);
      log.info({ node: facts.nodeId, status: facts.earStatus, validUntil: new Date(facts.tokenExpiresAtMs).toISOString(), ms: now() - started }, 'attested');
      if (certs !== undefined && certs.renewalNeeded(now())) {
        try {
          // The request's subject is a label only (the KBS sets the certificate's); an EK node id fits a CN.
          const label = facts.nodeId !== undefined && /^[0-9a-f]{64}$/.test(facts.nodeId) ? facts.nodeId : 'keyhold-node';
          const issued = await certs.renew(kbs, token, now(), label);
          status = withCertificate(status, now(), certificateStatus(issued.facts, certs.renewAtMs(), issued.spiffeId));
          log.info({ node: facts.nodeId, serial: issued.facts.serial, notAfter: status.certificate?.notAfter, spiffeId: issued.spiffeId, dir: certs.dir }, 'node certificate issued');
        } catch (err) {
          if (isRefusal(err)) {
            await refused(err, 'node certificate refused');
          } else {
            const { code, reason } = reasonOf(err);
            status = onError(status, now(), reason);
            if (status.certificate !== undefined) status = withCertificate(status, now(), { ...status.certificate, error: reason });
            log.warn({ code, reason }, 'node certificate request failed');
          }
        }
      }
    } catch (err) {
      if (isRefusal(err)) {
        await refused(err, 'attestation refused');
      } else {
        const { code, reason } = reasonOf(err);
        status = onError(status, now(), reason);
        log.warn({ code, reason, errors: status.consecutiveErrors }, 'attestation failed');
      }
    } finally {
      await kbs.release?.().catch((err: unknown) => log.warn(reasonOf(err), 'could not release the TPM'));
    }
  }

  /** Publish when the next attempt is due, and sleep until then (waking at the token's expiry to say so). */
  async function pause(): Promise<void> {
    const t = now();
    const validUntilMs = status.validUntil !== undefined ? Date.parse(status.validUntil) : undefined;
    const delay = nextAttemptDelayMs({
      intervalMs: opts.intervalMs,
      consecutiveErrors: status.consecutiveErrors,
      tokenRemainingMs: validUntilMs !== undefined ? validUntilMs - t : undefined,
      tokenLifetimeMs,
      ...(opts.random !== undefined ? { random: opts.random } : {}),
    });
    const nextAt = t + delay;
    status = withNextAttempt(status, nextAt);
    await opts.publish(statusAt(status, t));
    // Sleep until the next attempt; wake at the token's expiry on the way to publish "not attested".
    while (!signal.aborted && now() < nextAt) {
      const wasAttested = isAttested(status, now());
      const wakeAt = wasAttested && validUntilMs !== undefined && validUntilMs < nextAt ? validUntilMs : nextAt;
      await sleep(Math.max(0, wakeAt - now()), signal);
      if (wasAttested && !isAttested(status, now())) {
        status = statusAt(status, now());
        log.warn({ validUntil: status.validUntil }, 'token expired before a new attestation: not attested');
        await opts.publish(status);
      }
    }
  }
}
