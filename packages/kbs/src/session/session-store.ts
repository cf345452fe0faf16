import { randomBytes } from 'node:crypto';
import type { BindingHashAlgorithm, TeePubkey } from '@keyhold/protocol';
import { KbsError } from '../errors.js';

/** A handshake in progress (nonce issued) or finished (attested: token issued). */
export interface Session {
  readonly id: string;
  readonly tee: string;
  readonly nonce: string;
  readonly hashAlgorithm: BindingHashAlgorithm;
  readonly extraParams: Record<string, unknown>;
  readonly expiresAtMs: number;
  /** Set once an attestation used this session's nonce, successful or not. */
  nonceConsumed: boolean;
  attested?: { token: string; claims: Record<string, unknown>; teePubkey: TeePubkey };
  /** Per-session scratch (e.g. a credential-activation challenge) owned by the attestation flow. */
  challengeState?: Record<string, unknown>;
}

export interface SessionStoreOptions {
  ttlMs: number;
  maxSessions: number;
  now?: () => number;
}

/**
 * In-memory sessions (the embedded default). Sessions live until their TTL passes; expired ones are
 * swept lazily and on a timer.
 */
export class InMemorySessionStore {
  readonly #sessions = new Map<string, Session>();
  readonly #ttlMs: number;
  readonly #max: number;
  readonly #now: () => number;
  #timer: NodeJS.Timeout | undefined;

  constructor(opts: SessionStoreOptions) {
    if (!(opts.ttlMs > 0)) throw new TypeError('ttlMs must be positive');
    if (!(opts.maxSessions > 0)) throw new TypeError('maxSessions must be positive');
    this.#ttlMs = opts.ttlMs;
    this.#max = opts.maxSessions;
    this.#now = opts.now ?? Date.now;
    this.#timer = setInterval(() => this.sweep(), Math.min(opts.ttlMs, 30_000));
    this.#timer.unref();
  }

  get ttlMs(): number {
    return this.#ttlMs;
  }

  get size(): number {
    return this.#sessions.size;
  }

  create(init: { tee: string; hashAlgorithm: BindingHashAlgorithm; extraParams: Record<string, unknown> }): Session {
    if (this.#sessions.size >= this.#max) {
      this.sweep();
      // SECURITY: bounds memory a flood of /auth calls can pin (resource exhaustion).
      if (this.#sessions.size >= this.#max) throw new KbsError('SESSION_LIMIT', 'too many open sessions, retry later');
    }
    const session: Session = {
      // uuid v4 as 32 hex chars, as Trustee's cookie carries it
      id: uuidV4Hex(),
      tee: init.tee,
      nonce: randomBytes(32).toString('base64'),
      hashAlgorithm: init.hashAlgorithm,
      extraParams: init.extraParams,
      expiresAtMs: this.#now() + this.#ttlMs,
      nonceConsumed: false,
    };
    this.#sessions.set(session.id, session);
    return session;
  }

  /** The live session with this id; throws SESSION_MISSING or SESSION_EXPIRED. */
  get(id: string | undefined): Session {
    if (id === undefined || id === '') throw new KbsError('SESSION_MISSING', 'no kbs-session-id cookie');
    const s = this.#sessions.get(id);
    if (s === undefined) throw new KbsError('SESSION_MISSING', 'unknown session');
    // SECURITY: an expired session can no longer attest or fetch (stale nonce/token reuse).
    if (this.#now() >= s.expiresAtMs) {
      this.#sessions.delete(id);
      throw new KbsError('SESSION_EXPIRED', 'session expired');
    }
    return s;
  }

  delete(id: string): void {
    this.#sessions.delete(id);
  }

  sweep(): void {
    const now = this.#now();
    for (const [id, s] of this.#sessions) if (now >= s.expiresAtMs) this.#sessions.delete(id);
  }

  close(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#sessions.clear();
  }
}

function uuidV4Hex(): string {
  const b = randomBytes(16);
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  return b.toString('hex');
}
