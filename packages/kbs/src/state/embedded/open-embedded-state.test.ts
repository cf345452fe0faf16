import { fork, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile, appendFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS, expectStateError, makeCaPems, nodeInput } from '../conformance.test-support.js';
import { updateNode } from '../node-update.js';
import { openEmbeddedState, STATE_LOCK_FILE } from './open-embedded-state.js';

const root = await mkdtemp(path.join(tmpdir(), 'kh-state-emb2-'));
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});
const here = path.dirname(fileURLToPath(import.meta.url));
const open = (dataDir: string, extra: Record<string, unknown> = {}) => openEmbeddedState({ dataDir, sessionLimits: DEFAULT_LIMITS, ...extra });
const ekHash = (): string => randomBytes(32).toString('hex');

async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  const pid = child.pid as number;
  await new Promise((r) => child.once('exit', r));
  return pid;
}

describe('embedded state: the data dir lock', () => {
  it('refuses a second open of the same dir with STATE_LOCKED naming the holder pid; frees it on close', async () => {
    const dir = path.join(root, 'lock');
    const a = await open(dir);
    const err = await expectStateError(open(dir), 'STATE_LOCKED');
    expect(err.holderPid).toBe(process.pid);
    expect(err.message).toContain(String(process.pid));
    await a.close();
    const b = await open(dir);
    await b.close();
  });

  it('takes over the stale lock of a process that died', async () => {
    const dir = path.join(root, 'stale-lock');
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, STATE_LOCK_FILE), JSON.stringify({ pid: await deadPid(), host: hostname() }));
    const s = await open(dir);
    expect(JSON.parse(await readFile(path.join(dir, STATE_LOCK_FILE), 'utf8')).pid).toBe(process.pid);
    await s.close();
  });
});

describe('embedded state: crash leftovers and legacy data', () => {
  it('removes stale temp files of our own pattern at open, and nothing else', async () => {
    const dir = path.join(root, 'temps');
    const dead = await deadPid();
    await mkdir(path.join(dir, 'ek-allowlist', 'ab'), { recursive: true });
    await mkdir(path.join(dir, 'nodes'), { recursive: true });
    const stale = [
      path.join(dir, `policies.json.tmp-${dead}-0123456789ab`),
      path.join(dir, '.reference-values.json.0123456789ab.tmp'),
      path.join(dir, 'nodes', `.nodes.journal.${dead}.0123456789ab.kh-tmp`),
      path.join(dir, 'ek-allowlist', 'ab', `.${'ab'.repeat(32)}.0123456789ab.tmp`),
    ];
    const kept = [path.join(dir, 'notes.txt'), path.join(dir, `policies.json.tmp-${process.pid}-0123456789ab`)];
    for (const f of [...stale, ...kept]) await writeFile(f, 'x');
    const s = await open(dir);
    expect([...s.removedTempFiles].sort()).toEqual([...stale].sort());
    await s.close();
    for (const f of kept) expect(await readFile(f, 'utf8')).toBe('x');
  });

  it('reads a legacy data dir: enrolments become node records once, the other files are used as they are', async () => {
    const dir = path.join(root, 'legacy');
    const enrolled = ekHash();
    const revoked = ekHash();
    const ak = `000b${'c'.repeat(64)}`;
    const listed = ekHash();
    for (const [id, rec] of [
      [enrolled, { nodeId: enrolled, akName: ak, enrolledAt: '2025-01-01T00:00:00.000Z', revoked: false, ekTrust: 'ca' }],
      [revoked, { nodeId: revoked, akName: null, enrolledAt: '2025-02-01T00:00:00.000Z', revoked: true, revokedAt: '2025-02-01T00:00:00.000Z' }],
    ] as const) {
      await mkdir(path.join(dir, 'enrolments', id.slice(0, 2)), { recursive: true });
      await writeFile(path.join(dir, 'enrolments', id.slice(0, 2), `${id}.json`), JSON.stringify(rec));
    }
    await writeFile(path.join(dir, 'reference-values.json'), JSON.stringify({ tpm_pcr7: ['aa'], trusted_ak: ['k1', 'k2'] }));
    await mkdir(path.join(dir, 'ek-allowlist', listed.slice(0, 2)), { recursive: true });
    await writeFile(path.join(dir, 'ek-allowlist', listed.slice(0, 2), listed), ''); // dropped in by hand
    const [pem] = await makeCaPems(1);
    await mkdir(path.join(dir, 'ek-ca'), { recursive: true });
    await writeFile(path.join(dir, 'ek-ca', 'vendor.pem'), pem!);

    const s = await open(dir);
    expect(await s.nodes.get(enrolled)).toMatchObject({ nodeId: enrolled, ekHash: enrolled, akName: ak, enrolledAt: '2025-01-01T00:00:00.000Z', ekTrust: 'ca', state: 'active', version: 1 });
    expect(await s.nodes.get(revoked)).toMatchObject({ state: 'revoked', akName: null, revokedAt: '2025-02-01T00:00:00.000Z', version: 1 });
    expect((await s.referenceValues.snapshot()).all()).toEqual({ tpm_pcr7: ['aa'], trusted_ak: ['k1', 'k2'] });
    expect(await s.ekAllowlist.has(listed)).toBe(true);
    expect((await s.ekAllowlist.list()).map((e) => e.ekHash)).toEqual([listed]);
    expect((await s.ekCa.snapshot()).entries.map((e) => e.file)).toEqual(['vendor.pem']);
    // Configured files are not removable through the store.
    expect(await s.ekCa.remove((await s.ekCa.snapshot()).entries[0]!.sha256)).toBe(false);
    // The migration runs once: a later change to the legacy files does not come back.
    await updateNode(s.nodes, enrolled, () => 'delete');
    await s.close();
    const again = await open(dir);
    expect(await again.nodes.get(enrolled)).toBeUndefined();
    expect((await again.nodes.get(revoked))?.state).toBe('revoked');
    await again.close();
  });

  it('refuses a configured EK CA directory that does not exist (a typo must not empty the trust store)', async () => {
    const dir = path.join(root, 'ca-missing');
    const err = await expectStateError(open(dir, { ekCaDir: path.join(dir, 'no-such-ca'), ekCaDirRequired: true }), 'STATE_UNAVAILABLE');
    expect(err.message).toContain('no-such-ca');
    // The default directory may be absent; the lock was released after the failure.
    const s = await open(dir);
    expect((await s.ekCa.snapshot()).entries).toEqual([]);
    await s.close();
  });

  it('refuses to start on a damaged legacy enrolment record (STATE_CORRUPT), and leaves it for repair', async () => {
    const dir = path.join(root, 'legacy-bad');
    const id = ekHash();
    await mkdir(path.join(dir, 'enrolments', id.slice(0, 2)), { recursive: true });
    // A record moved under another node's file name.
    await writeFile(path.join(dir, 'enrolments', id.slice(0, 2), `${id}.json`), JSON.stringify({ nodeId: ekHash(), akName: null, enrolledAt: 'x', revoked: true }));
    await expectStateError(open(dir), 'STATE_CORRUPT');
    // The lock was released on failure.
    await rm(path.join(dir, 'enrolments'), { recursive: true });
    const s = await open(dir);
    await s.close();
  });
});

describe('embedded state: the node journal', () => {
  it('compacts while writing, and reopens to the same records', async () => {
    const dir = path.join(root, 'compact');
    const s = await open(dir, { nodeCompactMinBytes: 2048 });
    const ids = Array.from({ length: 40 }, ekHash);
    for (let round = 0; round < 5; round++) {
      await Promise.all(ids.map((id) => updateNode(s.nodes, id, (prev) => (prev === undefined ? nodeInput(id) : (({ version: _v, ...r }) => r)(prev)))));
    }
    await s.close();
    const files = await readdir(path.join(dir, 'nodes'));
    expect(files.sort()).toEqual(['nodes.journal', 'nodes.snapshot']);
    const again = await open(dir);
    for (const id of ids) expect((await again.nodes.get(id))?.version).toBe(5);
    await again.close();
  });

  it('drops a torn last journal line (never acknowledged); refuses damage elsewhere (STATE_CORRUPT)', async () => {
    const dir = path.join(root, 'torn');
    const id = ekHash();
    const s = await open(dir);
    await s.nodes.compareAndSwap(id, 0, nodeInput(id));
    await s.close();
    const journal = path.join(dir, 'nodes', 'nodes.journal');
    await appendFile(journal, '{"k":"' + id + '","v":{"nodeId"');
    const again = await open(dir);
    expect((await again.nodes.get(id))?.version).toBe(1);
    await again.close();
    // A bad line in the middle, then a good one: damage, not a torn tail.
    const text = await readFile(journal, 'utf8');
    await writeFile(journal, `${text}{garbage}\n${text.split('\n')[0]}\n`);
    await expectStateError(open(dir), 'STATE_CORRUPT');
    // A record edited to claim another node id is refused too.
    await writeFile(journal, `${text}${JSON.stringify({ k: id, v: { ...nodeInput(ekHash()), version: 2 } })}\n`);
    await expectStateError(open(dir), 'STATE_CORRUPT');
  });

  it('SIGKILL of a writer process mid-write: every acknowledged write survives, nothing is torn', async () => {
    const dir = path.join(root, 'crash');
    const nodeId = ekHash();
    let lastAcked = 0;
    const ackedRefs: string[] = [];
    for (let round = 0; round < 2; round++) {
      const child = fork(path.join(here, 'crash-writer.test-support.ts'), [dir, nodeId], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
      const exited = new Promise((r) => child.once('exit', r));
      child.on('message', (m: { node?: number; ref?: string }) => {
        if (m.node !== undefined) lastAcked = Math.max(lastAcked, m.node);
        if (m.ref !== undefined) ackedRefs.push(m.ref);
      });
      try {
        await new Promise<void>((resolve, reject) => {
          child.once('message', () => resolve());
          child.once('exit', (code) => reject(new Error(`writer exited early (${code})`)));
        });
        await new Promise((r) => setTimeout(r, 150 + Math.floor(Math.random() * 250)));
      } finally {
        child.kill('SIGKILL');
        await exited;
      }
      const s = await open(dir);
      const node = await s.nodes.get(nodeId);
      expect(node!.version).toBeGreaterThanOrEqual(lastAcked);
      const snap = await s.referenceValues.snapshot();
      for (const n of ackedRefs) expect(snap.get(n), n).toBeDefined();
      await s.close();
    }
    expect(lastAcked).toBeGreaterThan(3);
  }, 60_000);
});
