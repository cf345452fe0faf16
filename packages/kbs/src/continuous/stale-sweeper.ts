/**
 * Announces stale nodes (issue 13): every `sweep_interval`, the one replica holding the
 * `stale-sweeper` lease pages through the active node records and, for each node that became
 * stale (no affirming attestation for `stale_after`) and was not announced for this staleness yet,
 * records the announcement on the record (`staleNotified`, compare-and-swap) and emits `node.stale`
 * — once per node per staleness, whichever replica sweeps. A node that attests again starts a new
 * staleness (its `lastAttestedAt` moves). Staleness itself is computed at read time; nothing here
 * decides access.
 */
import type { Logger } from 'pino';
import type { EventPublisher } from '../notify/event-publisher.js';
import { updateNode } from '../state/node-update.js';
import type { KbsState } from '../state/ports.js';
import type { ContinuousSettings } from './continuous-config.js';
import { nodeSpiffeId } from './node-identity.js';
import { effectiveState, staleMarker } from './node-lifecycle.js';

export const STALE_SWEEPER_LEASE = 'stale-sweeper';
const PAGE = 500;

export interface StaleSweeperOptions {
  readonly state: Pick<KbsState, 'nodes' | 'leases'>;
  readonly events: EventPublisher;
  readonly settings: ContinuousSettings;
  /** This replica's lease holder name. */
  readonly holder: string;
  readonly trustDomain?: string;
  readonly logger?: Logger;
  readonly now?: () => number;
}

export class StaleSweeper {
  readonly #o: StaleSweeperOptions;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<number> | undefined;

  constructor(options: StaleSweeperOptions) {
    this.#o = options;
  }

  start(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => void this.sweep().catch(() => undefined), this.#o.settings.sweepIntervalMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running?.catch(() => undefined);
    await this.#o.state.leases.release(STALE_SWEEPER_LEASE, this.#o.holder).catch(() => undefined);
  }

  /** One sweep (when this replica holds the lease). Returns how many nodes it announced. */
  sweep(): Promise<number> {
    this.#running ??= this.#sweep().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #sweep(): Promise<number> {
    const { state, settings, holder } = this.#o;
    // Held a little longer than one interval, so the holder keeps it from sweep to sweep.
    if (!(await state.leases.acquire(STALE_SWEEPER_LEASE, holder, settings.sweepIntervalMs * 2 + 5000))) return 0;
    let announced = 0;
    try {
      for (let after: string | undefined; ; ) {
        const page = await state.nodes.list({ state: 'active', limit: PAGE, ...(after !== undefined ? { after } : {}) });
        for (const r of page.nodes) {
          const now = this.#o.now?.() ?? Date.now();
          if (effectiveState(r, now, settings.staleAfterMs) !== 'stale' || r.staleNotified === staleMarker(r)) continue;
          let won = false;
          await updateNode(state.nodes, r.nodeId, (prev) => {
            won = false;
            if (prev === undefined || effectiveState(prev, now, settings.staleAfterMs) !== 'stale' || prev.staleNotified === staleMarker(prev)) return undefined;
            won = true;
            const { version: _v, ...rest } = prev;
            return { ...rest, staleNotified: staleMarker(prev) };
          });
          if (!won) continue;
          announced++;
          const td = this.#o.trustDomain;
          this.#o.events.emit({ type: 'node.stale', node: r.nodeId, ...(td !== undefined ? { spiffeId: nodeSpiffeId(td, r.nodeId) } : {}), reason: `no affirming attestation since ${staleMarker(r)}` });
        }
        if (page.next === undefined) break;
        after = page.next;
      }
    } catch (err) {
      this.#o.logger?.warn({ code: (err as { code?: string }).code }, 'stale sweep failed; retried at the next interval');
    }
    if (announced > 0) this.#o.logger?.info({ nodes: announced }, 'stale nodes announced');
    return announced;
  }
}
