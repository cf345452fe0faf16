import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { expectKmsError, runSecretStoreConformance } from '../conformance.test-support.js';
import { createEmbeddedStore } from './create-embedded-store.js';

const root = await fs.mkdtemp(path.join(os.tmpdir(), 'kh-kms-embedded-'));
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true, maxRetries: 5 });
});

const confDir = path.join(root, 'conformance');
runSecretStoreConformance('embedded', () => createEmbeddedStore({ backend: 'embedded', dir: confDir }), {
  multiInstance: true,
  fault: {
    // Replace the secrets directory by a plain file: every operation then fails with an I/O error.
    inject: async () => {
      await fs.rename(path.join(confDir, 'secrets'), path.join(confDir, 'secrets.away'));
      await fs.writeFile(path.join(confDir, 'secrets'), 'not a directory');
    },
    heal: async () => {
      await fs.rm(path.join(confDir, 'secrets'));
      await fs.rename(path.join(confDir, 'secrets.away'), path.join(confDir, 'secrets'));
    },
  },
});

describe('embedded store: encryption at rest', () => {
  const dir = path.join(root, 'at-rest');

  it('creates the master key 0600 and secret files 0600 holding no plaintext', async () => {
    const store = await createEmbeddedStore({ backend: 'embedded', dir });
    const secret = `plaintext-${randomBytes(8).toString('hex')}`;
    await store.put('r/t/s', Buffer.from(secret));
    await store.close();
    const keyStat = await fs.stat(path.join(dir, 'master.key'));
    expect(keyStat.mode & 0o777).toBe(0o600);
    expect(keyStat.size).toBe(32);
    const file = path.join(dir, 'secrets/r/t/s/1.rec');
    expect((await fs.stat(file)).mode & 0o777).toBe(0o600);
    const raw = await fs.readFile(file, 'utf8');
    for (const form of [secret, Buffer.from(secret).toString('base64'), Buffer.from(secret).toString('hex')]) {
      expect(raw).not.toContain(form);
    }
  });

  it('reuses the master key on restart and refuses a record sealed under another key', async () => {
    const store = await createEmbeddedStore({ backend: 'embedded', dir });
    expect(Buffer.from((await store.get('r/t/s')).value).toString()).toMatch(/^plaintext-/);
    await store.close();
    const other = await createEmbeddedStore({ backend: 'embedded', dir, masterKeyFile: path.join(root, 'other.key') });
    await expectKmsError(other.get('r/t/s'), 'KMS_CORRUPT');
    await other.close();
  });

  it('refuses a master key file readable by others or of the wrong size (KMS_CONFIG)', async () => {
    const loose = path.join(root, 'loose.key');
    await fs.writeFile(loose, randomBytes(32), { mode: 0o644 });
    await fs.chmod(loose, 0o644);
    await expectKmsError(createEmbeddedStore({ backend: 'embedded', dir: path.join(root, 'l'), masterKeyFile: loose }), 'KMS_CONFIG');
    const short = path.join(root, 'short.key');
    await fs.writeFile(short, randomBytes(31), { mode: 0o600 });
    await expectKmsError(createEmbeddedStore({ backend: 'embedded', dir: path.join(root, 's'), masterKeyFile: short }), 'KMS_CONFIG');
  });

  it('detects a flipped ciphertext bit, a swapped record and a swapped version (KMS_CORRUPT)', async () => {
    const store = await createEmbeddedStore({ backend: 'embedded', dir });
    await store.put('r/t/a', Buffer.from('alpha'));
    await store.put('r/t/a', Buffer.from('alpha2'));
    await store.put('r/t/b', Buffer.from('bravo'));
    const fa = path.join(dir, 'secrets/r/t/a/1.rec');
    const fb = path.join(dir, 'secrets/r/t/b/1.rec');
    const recA = JSON.parse(await fs.readFile(fa, 'utf8')) as Record<string, string>;
    const recB = JSON.parse(await fs.readFile(fb, 'utf8')) as Record<string, string>;

    // Flip one bit of the ciphertext.
    const ct = Buffer.from(recA.c as string, 'base64');
    ct[0] = (ct[0] as number) ^ 1;
    await fs.writeFile(fa, JSON.stringify({ ...recA, c: ct.toString('base64') }));
    await expectKmsError(store.get('r/t/a', { version: 1 }), 'KMS_CORRUPT');

    // Copy b's record into a's slot, relabelled to look like it belongs there.
    await fs.writeFile(fa, JSON.stringify({ ...recB, n: 'r/t/a' }));
    await expectKmsError(store.get('r/t/a', { version: 1 }), 'KMS_CORRUPT');
    // ... and unrelabelled.
    await fs.writeFile(fa, JSON.stringify(recB));
    await expectKmsError(store.get('r/t/a', { version: 1 }), 'KMS_CORRUPT');

    // Move a v1 to v2's slot, relabelled.
    await fs.writeFile(path.join(dir, 'secrets/r/t/a/2.rec'), JSON.stringify({ ...recA, v: '2' }));
    await expectKmsError(store.get('r/t/a'), 'KMS_CORRUPT');

    // Altered metadata (labels) is caught by get even though list shows it unauthenticated.
    await fs.writeFile(fb, JSON.stringify({ ...recB, m: (recB.m as string).replace('"labels":{}', '"labels":{"x":"y"}') }));
    await expectKmsError(store.get('r/t/b'), 'KMS_CORRUPT');

    // A wrapped data key of the wrong length, a truncated tag, a short IV.
    for (const patch of [
      { k: Buffer.from(recB.k as string, 'base64').subarray(1).toString('base64') },
      { t: Buffer.from(recB.t as string, 'base64').subarray(4).toString('base64') },
      { i: Buffer.from(recB.i as string, 'base64').subarray(4).toString('base64') },
      { f: 'kh-plain-1' },
    ]) {
      await fs.writeFile(fb, JSON.stringify({ ...recB, ...patch }));
      await expectKmsError(store.get('r/t/b'), 'KMS_CORRUPT');
    }

    // Garbage, oversized and non-string records.
    await fs.writeFile(fb, '{not json');
    await expectKmsError(store.get('r/t/b'), 'KMS_CORRUPT');
    await fs.writeFile(fb, JSON.stringify({ ...recB, c: 5 }));
    await expectKmsError(store.get('r/t/b'), 'KMS_CORRUPT');
    await fs.writeFile(fb, Buffer.alloc(3 * 1024 * 1024, 0x20));
    await expectKmsError(store.get('r/t/b'), 'KMS_CORRUPT');
    await store.close();
  });

  it('lists only directories with valid segment names, never symlinks or stray entries', async () => {
    const dir = path.join(root, 'listing');
    const store = await createEmbeddedStore({ backend: 'embedded', dir });
    await store.put('ok/t/x', Buffer.from('x'));
    await fs.mkdir(path.join(dir, 'secrets/ok/t/bad name'), { recursive: true });
    await fs.writeFile(path.join(dir, 'secrets/ok/t/bad name/1.rec'), '{}');
    await fs.symlink(path.join(dir, 'secrets/ok/t/x'), path.join(dir, 'secrets/ok/t/linked'));
    await fs.writeFile(path.join(dir, 'secrets/ok/t/x/.tmp-leftover'), 'partial');
    const names = (await store.list()).map((m) => m.name).filter((n) => n.startsWith('ok/'));
    expect(names).toEqual(['ok/t/x']);
    expect((await store.versions('ok/t/x')).map((m) => m.version)).toEqual([1]);
    await store.close();
  });

  it('does not follow a symlinked record file out of the store', async () => {
    const store = await createEmbeddedStore({ backend: 'embedded', dir });
    await store.put('r/t/link', Buffer.from('x'));
    const f = path.join(dir, 'secrets/r/t/link/1.rec');
    await fs.rm(f);
    await fs.symlink('/etc/hostname', f);
    await expectKmsError(store.get('r/t/link'), 'KMS_CORRUPT');
    await store.close();
  });
});

describe('embedded store: atomic writes', () => {
  it('a failure between write and commit leaves the old value and no visible temp file', async () => {
    const dir = path.join(root, 'inject');
    let fail = false;
    const store = await createEmbeddedStore(
      { backend: 'embedded', dir },
      {
        beforeCommit: () => {
          if (fail) throw new Error('injected crash before commit');
        },
      },
    );
    await store.put('r/t/x', Buffer.from('old'));
    fail = true;
    await expect(store.put('r/t/x', Buffer.from('new'))).rejects.toMatchObject({ code: 'KMS_UNAVAILABLE' });
    fail = false;
    expect(Buffer.from((await store.get('r/t/x')).value).toString()).toBe('old');
    expect((await store.versions('r/t/x')).map((m) => m.version)).toEqual([1]);
    expect(await fs.readdir(path.join(dir, 'secrets/r/t/x'))).toEqual(['1.rec']);
    await store.close();
  });

  it('SIGKILL of a writer process mid-write never leaves a torn or undecryptable version', async () => {
    const dir = path.join(root, 'crash');
    const writer = path.join(path.dirname(fileURLToPath(import.meta.url)), 'crash-writer.test-support.ts');
    for (let round = 0; round < 4; round++) {
      const child = fork(writer, [dir], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
      const exited = new Promise((r) => child.once('exit', r));
      try {
        await new Promise<void>((resolve, reject) => {
          child.once('message', () => resolve());
          child.once('exit', (code) => reject(new Error(`writer exited early (${code})`)));
        });
        // Let it write for a random moment, then kill it without warning.
        await new Promise((r) => setTimeout(r, 20 + Math.floor(Math.random() * 80)));
      } finally {
        child.kill('SIGKILL');
        await exited;
      }
      const store = await createEmbeddedStore({ backend: 'embedded', dir });
      const versions = await store.versions('r/t/big');
      expect(versions.length).toBeGreaterThan(0);
      for (const m of versions) {
        const { value } = await store.get('r/t/big', { version: m.version });
        // Every version is a complete value written by the child: 256 KiB of one repeated byte.
        expect(value.length).toBe(256 * 1024);
        expect(value.every((b) => b === value[0])).toBe(true);
      }
      await store.close();
    }
  }, 120_000);
});
