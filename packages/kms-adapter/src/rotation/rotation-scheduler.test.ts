import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Clock } from '../clock.js';
import { expectKmsError } from '../conformance.test-support.js';
import { createEmbeddedStore } from '../embedded/create-embedded-store.js';
import { RotationScheduler, type RotationReport } from './rotation-scheduler.js';

/** A clock that moves only when the test says so; timers fire as time passes them. */
class ManualClock implements Clock {
  #now = Date.parse('2026-01-01T00:00:00Z');
  #timers = new Map<number, { at: number; fn: () => void }>();
  #next = 1;
  now(): number {
    return this.#now;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.#next++;
    this.#timers.set(id, { at: this.#now + ms, fn });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number);
  }
  get pending(): number {
    return this.#timers.size;
  }
  /** Move time forward, firing due timers in order. */
  advance(ms: number): void {
    const target = this.#now + ms;
    for (;;) {
      const due = [...this.#timers.entries()].filter(([, t]) => t.at <= target).sort((a, b) => a[1].at - b[1].at)[0];
      if (due === undefined) break;
      this.#timers.delete(due[0]);
      this.#now = due[1].at;
      due[1].fn();
    }
    this.#now = target;
  }
}

const root = await fs.mkdtemp(path.join(os.tmpdir(), 'kh-kms-rotation-'));
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

describe('RotationScheduler', () => {
  it('rotates a generated key on schedule, keeps older versions until pruned, get returns the latest', async () => {
    const clock = new ManualClock();
    const store = await createEmbeddedStore({ backend: 'embedded', dir: path.join(root, 'a') }, { clock });
    await store.generate('keys/aes/rotating', { bytes: 32, rotationPeriodMs: 10_000, keepVersions: 3 });
    await store.generate('keys/aes/static', { bytes: 32 });
    await store.put('keys/plain/value', Buffer.from('x'));
    const v1 = Buffer.from((await store.get('keys/aes/rotating')).value);

    const reports: RotationReport[] = [];
    let wake: (() => void) | undefined;
    const nextTick = (): Promise<void> => new Promise((r) => (wake = r));
    const scheduler = new RotationScheduler({
      store,
      clock,
      checkIntervalMs: 60_000,
      onTick: (r) => {
        reports.push(r);
        wake?.();
      },
    });

    let tick = nextTick();
    scheduler.start();
    clock.advance(0);
    await tick;
    expect(reports[0]?.rotated).toEqual([]);
    expect(reports[0]?.nextDueAt).toBe(clock.now() + 10_000);

    // Not yet due.
    tick = nextTick();
    clock.advance(9_999);
    expect(reports).toHaveLength(1);
    clock.advance(1);
    await tick;
    expect(reports[1]?.rotated.map((m) => [m.name, m.version])).toEqual([['keys/aes/rotating', 2]]);
    const latest = await store.get('keys/aes/rotating');
    expect(latest.metadata.version).toBe(2);
    expect(Buffer.from(latest.value).equals(v1)).toBe(false);
    expect(Buffer.from((await store.get('keys/aes/rotating', { version: 1 })).value).equals(v1)).toBe(true);

    // Three more periods: versions 3, 4, 5; only the last three are kept.
    for (let i = 0; i < 3; i++) {
      tick = nextTick();
      clock.advance(10_000);
      await tick;
    }
    expect((await store.versions('keys/aes/rotating')).map((m) => m.version)).toEqual([3, 4, 5]);
    await expectKmsError(store.get('keys/aes/rotating', { version: 1 }), 'KMS_NOT_FOUND');
    expect((await store.get('keys/aes/rotating')).metadata.version).toBe(5);
    // Keys without a period and plain values never rotate.
    expect((await store.versions('keys/aes/static')).map((m) => m.version)).toEqual([1]);
    expect((await store.versions('keys/plain/value')).map((m) => m.version)).toEqual([1]);

    await scheduler.stop();
    expect(scheduler.running).toBe(false);
    expect(clock.pending).toBe(0);
    clock.advance(100_000);
    expect((await store.get('keys/aes/rotating')).metadata.version).toBe(5);
    await store.close();
  });

  it('rotates once per period even when two schedulers share a backend', async () => {
    const clock = new ManualClock();
    const dir = path.join(root, 'b');
    const s1 = await createEmbeddedStore({ backend: 'embedded', dir }, { clock });
    const s2 = await createEmbeddedStore({ backend: 'embedded', dir }, { clock });
    await s1.generate('keys/aes/shared', { bytes: 32, rotationPeriodMs: 5_000 });
    clock.advance(5_000);
    const a = new RotationScheduler({ store: s1, clock });
    const b = new RotationScheduler({ store: s2, clock });
    const [ra, rb] = await Promise.all([a.runOnce(), b.runOnce()]);
    expect(ra.rotated.length + rb.rotated.length).toBe(1);
    expect(ra.skipped.length + rb.skipped.length).toBe(1);
    expect((await s1.get('keys/aes/shared')).metadata.version).toBe(2);
    await s1.close();
    await s2.close();
  });

  it('reports a failing store as a typed failure instead of throwing', async () => {
    const clock = new ManualClock();
    const dir = path.join(root, 'c');
    const store = await createEmbeddedStore({ backend: 'embedded', dir }, { clock });
    await store.generate('keys/aes/x', { bytes: 32, rotationPeriodMs: 1_000 });
    await fs.rename(path.join(dir, 'secrets'), path.join(dir, 'away'));
    await fs.writeFile(path.join(dir, 'secrets'), '');
    const report = await new RotationScheduler({ store, clock }).runOnce();
    expect(report.failed).toEqual([{ name: '*', code: 'KMS_UNAVAILABLE' }]);
    await store.close();
  });

  it('refuses bad intervals at construction (programmer error)', async () => {
    const store = await createEmbeddedStore({ backend: 'embedded', dir: path.join(root, 'd') });
    expect(() => new RotationScheduler({ store, checkIntervalMs: 10 })).toThrow(TypeError);
    expect(() => new RotationScheduler({ store, checkIntervalMs: 1000, minIntervalMs: 5000 })).toThrow(TypeError);
    await store.close();
  });
});
