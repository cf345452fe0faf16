import type { BindingHashAlgorithm } from '@keyhold/protocol';
import { KbsError } from '../../errors.js';
import type { AttestedSession, NewSession, SessionLimits, SessionRecord, SessionState } from '../ports.js';
import { checkSessionId, encodeAttestation, encodeNewSession, sessionLimitError } from '../session-record.js';

/**
 * One open session, as compact as the flow allows: fixed fields (one hidden class), the challenge
 * and the attestation as JSON text (a string costs a fraction of the object graph it encodes), no
 * request body. About 0.3–0.8 KB per pending session including the map entry.
 */
class Slot {
  consumed = false;
  attestedJson: string | undefined = undefined;
  constructor(
    readonly tee: string,
    readonly nonce: string,
    readonly hashAlgorithm: BindingHashAlgorithm,
    readonly expiresAtMs: number,
    readonly challengeJson: string | undefined,
    public bytes: number,
  ) {}
}

export interface MemorySessionOptions {
  readonly limits: SessionLimits;
  readonly now?: () => number;
  /** Full sweep of expired sessions every this many ms (default 10 000). */
  readonly sweepIntervalMs?: number;
}

/** Repeated TEE names share one string. */
const TEE_NAMES = new Map<string, string>();

/**
 * Sessions in process memory (embedded and memory state). Count and byte caps are exact. Expired
 * sessions are refused at once and dropped lazily, from the front of the insertion order on every
 * create, and by a periodic full sweep.
 */
export class MemorySessionState implements SessionState {
  readonly #slots = new Map<string, Slot>();
  readonly #limits: SessionLimits;
  readonly #now: () => number;
  #bytes = 0;
  #timer: NodeJS.Timeout | undefined;
  /** No session expires before this (a lower bound: exact after a full sweep). */
  #nextExpiry = Number.POSITIVE_INFINITY;

  constructor(options: MemorySessionOptions) {
    this.#limits = options.limits;
    this.#now = options.now ?? Date.now;
    const every = options.sweepIntervalMs ?? 10_000;
    if (!Number.isSafeInteger(every) || every < 1) throw new TypeError('sweepIntervalMs must be a positive integer');
    this.#timer = setInterval(() => this.#sweep(), every);
    this.#timer.unref();
  }

  async create(s: NewSession): Promise<void> {
    const enc = encodeNewSession(s);
    const now = this.#now();
    this.#dropExpiredHead(now);
    if (this.#slots.has(s.id)) throw new TypeError('session id is already in use');
    if (this.#slots.size >= this.#limits.maxSessions || this.#bytes + enc.bytes > this.#limits.maxSessionBytes) {
      // A full sweep only when some session has expired: at the cap, a flood of creates must not
      // cost O(sessions) each while nothing can be freed.
      if (now >= this.#nextExpiry) this.#sweep();
      // SECURITY: bounds what a flood of /auth calls can pin, by count and by bytes (issue 12 item 1).
      if (this.#slots.size >= this.#limits.maxSessions) throw sessionLimitError('count');
      if (this.#bytes + enc.bytes > this.#limits.maxSessionBytes) throw sessionLimitError('bytes');
    }
    let tee = TEE_NAMES.get(s.tee);
    if (tee === undefined) {
      tee = s.tee;
      if (TEE_NAMES.size < 64) TEE_NAMES.set(tee, tee);
    }
    this.#slots.set(s.id, new Slot(tee, s.nonce, s.hashAlgorithm, s.expiresAtMs, enc.challengeJson, enc.bytes));
    this.#bytes += enc.bytes;
    if (s.expiresAtMs < this.#nextExpiry) this.#nextExpiry = s.expiresAtMs;
  }

  async get(id: string): Promise<SessionRecord> {
    return record(id, this.#live(id));
  }

  async consumeNonce(id: string): Promise<SessionRecord> {
    const slot = this.#live(id);
    // SECURITY: one nonce, one attestation: exactly one caller consumes it (replay).
    if (slot.consumed) throw new KbsError('NONCE_CONSUMED', 'this session already attested; start a new one with /auth');
    const before = record(id, slot);
    slot.consumed = true;
    return before;
  }

  async recordAttestation(id: string, attested: AttestedSession): Promise<void> {
    const json = encodeAttestation(attested);
    const slot = this.#live(id);
    if (!slot.consumed) throw new TypeError('recordAttestation: the session nonce was not consumed');
    const delta = json.length - (slot.attestedJson?.length ?? 0);
    slot.attestedJson = json;
    slot.bytes += delta;
    this.#bytes += delta;
  }

  async delete(id: string): Promise<void> {
    checkSessionId(id);
    this.#remove(id);
  }

  async stats(): Promise<{ readonly count: number; readonly bytes: number }> {
    this.#sweep();
    return { count: this.#slots.size, bytes: this.#bytes };
  }

  close(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#slots.clear();
    this.#bytes = 0;
    this.#nextExpiry = Number.POSITIVE_INFINITY;
  }

  #live(id: string): Slot {
    checkSessionId(id);
    const slot = this.#slots.get(id);
    if (slot === undefined) throw new KbsError('SESSION_MISSING', 'unknown session');
    // SECURITY: an expired session can no longer attest or fetch (stale nonce/token reuse).
    if (this.#now() >= slot.expiresAtMs) {
      this.#remove(id);
      throw new KbsError('SESSION_EXPIRED', 'session expired');
    }
    return slot;
  }

  #remove(id: string): void {
    const slot = this.#slots.get(id);
    if (slot === undefined) return;
    this.#slots.delete(id);
    this.#bytes -= slot.bytes;
  }

  /** Drop expired sessions at the front of insertion order (cheap: stops at the first live one). */
  #dropExpiredHead(now: number): void {
    for (const [id, slot] of this.#slots) {
      if (now < slot.expiresAtMs) return;
      this.#remove(id);
    }
  }

  #sweep(): void {
    const now = this.#now();
    let next = Number.POSITIVE_INFINITY;
    for (const [id, slot] of this.#slots) {
      if (now >= slot.expiresAtMs) this.#remove(id);
      else if (slot.expiresAtMs < next) next = slot.expiresAtMs;
    }
    this.#nextExpiry = next;
  }
}

function record(id: string, slot: Slot): SessionRecord {
  return {
    id,
    tee: slot.tee,
    nonce: slot.nonce,
    hashAlgorithm: slot.hashAlgorithm,
    expiresAtMs: slot.expiresAtMs,
    ...(slot.challengeJson !== undefined ? { challenge: JSON.parse(slot.challengeJson) as Record<string, unknown> } : {}),
    nonceConsumed: slot.consumed,
    ...(slot.attestedJson !== undefined ? { attested: JSON.parse(slot.attestedJson) as AttestedSession } : {}),
  };
}
