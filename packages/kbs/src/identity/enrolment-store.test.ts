import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileEnrolmentStore, MemoryEnrolmentStore, type EnrolmentStore } from './enrolment-store.js';
import { IdentityStoreError } from './errors.js';

const node = createHash('sha256').update('ek').digest('hex');
const ak1 = `000b${createHash('sha256').update('ak1').digest('hex')}`;
const ak2 = `000b${createHash('sha256').update('ak2').digest('hex')}`;
const t0 = new Date('2026-01-01T00:00:00Z');
const t1 = new Date('2026-01-02T00:00:00Z');

async function code(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (e) {
    if (e instanceof IdentityStoreError) return e.code;
    throw e;
  }
  return undefined;
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'keyhold-enrol-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe.each([
  ['MemoryEnrolmentStore', (): EnrolmentStore => new MemoryEnrolmentStore()],
  ['FileEnrolmentStore', (): EnrolmentStore => new FileEnrolmentStore(dir)],
])('%s', (_n, make) => {
  it('binds an AK, rebinds a changed AK, lists, and removes', async () => {
    const s = make();
    expect(await s.get(node)).toBeUndefined();
    await s.enrol({ nodeId: node, akName: ak1, now: t0, ekTrust: 'ca' });
    expect(await s.get(node)).toEqual({ nodeId: node, akName: ak1, enrolledAt: t0.toISOString(), revoked: false, ekTrust: 'ca' });
    await s.enrol({ nodeId: node.toUpperCase(), akName: ak2.toUpperCase(), now: t1 });
    expect((await s.get(node))?.akName).toBe(ak2);
    expect((await s.list()).map((r) => r.nodeId)).toEqual([node]);
    expect(await s.remove(node)).toBe(true);
    expect(await s.get(node)).toBeUndefined();
  });

  it('a revoked node cannot re-enrol, stays revoked, and can be revoked before enrolling', async () => {
    const s = make();
    await s.enrol({ nodeId: node, akName: ak1, now: t0 });
    const r = await s.revoke(node, t1);
    expect(r).toMatchObject({ revoked: true, revokedAt: t1.toISOString(), akName: ak1 });
    expect(await code(s.enrol({ nodeId: node, akName: ak2, now: t1 }))).toBe('NODE_REVOKED');
    expect((await s.get(node))?.revoked).toBe(true);
    const other = createHash('sha256').update('other').digest('hex');
    expect(await s.revoke(other, t0)).toMatchObject({ nodeId: other, akName: null, revoked: true });
    expect(await code(s.enrol({ nodeId: other, akName: ak1, now: t1 }))).toBe('NODE_REVOKED');
  });

  it('rejects malformed node ids and AK names', async () => {
    const s = make();
    expect(await code(s.enrol({ nodeId: '../x', akName: ak1, now: t0 }))).toBe('EK_HASH_INVALID');
    await expect(s.enrol({ nodeId: node, akName: '000b00', now: t0 })).rejects.toThrow(TypeError);
  });
});

describe('FileEnrolmentStore on disk', () => {
  it('writes atomically (no temp files remain) and survives a new instance', async () => {
    await new FileEnrolmentStore(dir).enrol({ nodeId: node, akName: ak1, now: t0 });
    expect(await readdir(path.join(dir, node.slice(0, 2)))).toEqual([`${node}.json`]);
    expect((await new FileEnrolmentStore(dir).get(node))?.akName).toBe(ak1);
  });

  it('fails closed on a corrupt or mismatched record', async () => {
    const s = new FileEnrolmentStore(dir);
    await mkdir(path.join(dir, node.slice(0, 2)), { recursive: true });
    await writeFile(path.join(dir, node.slice(0, 2), `${node}.json`), '{not json');
    expect(await code(s.get(node))).toBe('ENROLMENT_STORE_UNAVAILABLE');
    const other = createHash('sha256').update('other').digest('hex');
    await writeFile(path.join(dir, node.slice(0, 2), `${node}.json`), JSON.stringify({ nodeId: other, akName: ak1, enrolledAt: 'x', revoked: false }));
    expect(await code(s.get(node))).toBe('ENROLMENT_STORE_UNAVAILABLE');
    await writeFile(path.join(dir, node.slice(0, 2), `${node}.json`), JSON.stringify({ nodeId: node, akName: ak1, enrolledAt: 'x', revoked: 'no' }));
    expect(await code(s.get(node))).toBe('ENROLMENT_STORE_UNAVAILABLE');
    expect(await code(s.enrol({ nodeId: node, akName: ak1, now: t0 }))).toBe('ENROLMENT_STORE_UNAVAILABLE');
  });

  it('serialises concurrent writes: the last revoke wins over parallel enrols', async () => {
    const s = new FileEnrolmentStore(dir);
    await Promise.allSettled([s.enrol({ nodeId: node, akName: ak1, now: t0 }), s.revoke(node, t1), s.enrol({ nodeId: node, akName: ak2, now: t1 })]);
    expect((await s.get(node))?.revoked).toBe(true);
  });
});
