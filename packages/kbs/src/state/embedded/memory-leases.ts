import { checkName } from '../event-record.js';
import type { LeaseState } from '../ports.js';

/**
 * Leases of one process (embedded and memory state): one process owns the data dir, so a lease
 * only orders this process's own loops; it is kept in memory and forgotten on restart.
 */
export class MemoryLeases implements LeaseState {
  readonly #leases = new Map<string, { holder: string; expiresAtMs: number }>();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  async acquire(name: string, holder: string, ttlMs: number): Promise<boolean> {
    checkLease(name, holder, ttlMs);
    const now = this.#now();
    const cur = this.#leases.get(name);
    if (cur !== undefined && cur.holder !== holder && cur.expiresAtMs > now) return false;
    this.#leases.set(name, { holder, expiresAtMs: now + ttlMs });
    return true;
  }

  async release(name: string, holder: string): Promise<void> {
    checkName(name, 'lease name');
    if (this.#leases.get(name)?.holder === holder) this.#leases.delete(name);
  }

  /** Whether `holder` holds `name` now (the embedded event store's cursor fence). */
  holds(name: string, holder: string): boolean {
    const cur = this.#leases.get(name);
    return cur !== undefined && cur.holder === holder && cur.expiresAtMs > this.#now();
  }
}

export function checkLease(name: string, holder: string, ttlMs: number): void {
  checkName(name, 'lease name');
  if (typeof holder !== 'string' || holder.length < 1 || holder.length > 200) throw new TypeError('lease holder must be a string of 1..200 characters');
  if (!Number.isSafeInteger(ttlMs) || ttlMs < 1 || ttlMs > 24 * 3600_000) throw new TypeError('lease ttlMs must be an integer in 1..86400000');
}
