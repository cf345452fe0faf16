import { describe, expect, it } from 'vitest';
import { openMemoryState } from '../state/index.js';
import { StateError } from '../state/errors.js';
import type { EventState, KbsEvent, KbsEventInput } from '../state/ports.js';
import { EventPublisher } from './event-publisher.js';

const LIMITS = { maxSessions: 10, maxSessionBytes: 1 << 20 };

function counting() {
  const dropped: Record<string, number> = {};
  let published = 0;
  return {
    dropped,
    get published() {
      return published;
    },
    metrics: {
      eventsPublished: (n: number) => void (published += n),
      eventsDropped: (reason: string, n: number) => void (dropped[reason] = (dropped[reason] ?? 0) + n),
    },
  };
}

describe('EventPublisher', () => {
  it('publishes in emit order, stamps time and replica, marks durable the events a webhook wants', async () => {
    const state = await openMemoryState({ sessionLimits: LIMITS });
    const calls: { types: string[]; durable: boolean }[] = [];
    const events: EventState = {
      ...state.events,
      read: (o) => state.events.read(o),
      publish: (batch, o) => {
        calls.push({ types: batch.map((e) => e.type), durable: o?.durable === true });
        return state.events.publish(batch, o);
      },
    };
    const c = counting();
    const p = new EventPublisher({ events, replica: 'r1', durable: (e) => e.type.startsWith('node.'), metrics: c.metrics, now: () => Date.parse('2030-01-01T00:00:00Z') });
    p.emit({ type: 'attestation', status: 'affirming' });
    p.emit({ type: 'release', repository: 'a' });
    p.emit({ type: 'node.banned', node: 'n', reason: 'x'.repeat(5000) });
    p.emit({ type: 'denial', repository: 'a' });
    await p.flush();
    const stored = await state.events.read({ limit: 10 });
    expect(stored.map((e) => e.type)).toEqual(['attestation', 'release', 'node.banned', 'denial']);
    expect(stored[0]).toMatchObject({ at: '2030-01-01T00:00:00.000Z', replica: 'r1' });
    expect(stored[2]!.reason).toHaveLength(1000);
    expect(calls).toEqual([
      { types: ['attestation', 'release'], durable: false },
      { types: ['node.banned'], durable: true },
      { types: ['denial'], durable: false },
    ]);
    expect(c.published).toBe(4);
    await state.close();
  });

  it('never throws or waits on the request path: a full buffer, a failing backend and a malformed event are dropped and counted', async () => {
    let calls = 0;
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    const failing: EventState = {
      async publish(batch: readonly KbsEventInput[]): Promise<readonly KbsEvent[]> {
        calls++;
        await gate;
        if (batch.some((e) => e.type === ('bogus' as KbsEventInput['type']))) throw new TypeError('event is malformed');
        throw new StateError('STATE_UNAVAILABLE', 'down');
      },
      read: async () => [],
      latest: async () => [],
      waitForNew: async () => undefined,
      cursor: async () => undefined,
      advanceCursor: async () => false,
    };
    const c = counting();
    const p = new EventPublisher({ events: failing, replica: 'r', maxBuffered: 3, metrics: c.metrics });
    for (let i = 0; i < 10; i++) p.emit({ type: 'attestation' });
    await new Promise((r) => setTimeout(r, 10));
    // The first three were taken by the drain loop (blocked on the backend); the next three fill the buffer.
    expect(c.dropped['buffer_full']).toBeGreaterThanOrEqual(4);
    release();
    await p.flush();
    expect(c.dropped['backend']).toBeGreaterThanOrEqual(3);
    expect((c.dropped['backend'] ?? 0) + (c.dropped['buffer_full'] ?? 0)).toBe(10);
    expect(calls).toBeGreaterThanOrEqual(3);

    p.emit({ type: 'bogus' as KbsEventInput['type'] });
    await p.flush();
    expect(c.dropped['invalid']).toBe(1);
    await p.close();
    p.emit({ type: 'attestation' });
    expect(c.published).toBe(0);
  });
});
