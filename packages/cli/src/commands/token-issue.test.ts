import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { decodeProtectedHeader, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseLifetime } from './token-issue.js';
import type { CommandIo } from '../command.js';
import { runKeyhold } from '../program.js';

/** `keyhold token issue ...` in process, with an empty environment. */
const run = (argv: string[], io: CommandIo, now?: () => Date): Promise<number> => runKeyhold(['token', 'issue', ...argv], io, {}, now !== undefined ? { now } : {});

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}
const NOW = new Date('2026-11-27T12:00:00Z');
async function cli(argv: string[]) {
  const stdout = new Capture();
  const stderr = new Capture();
  const code = await run(argv, { stdout, stderr }, () => NOW);
  return { code, stdout: stdout.text, stderr: stderr.text };
}

let dir: string;
const f = (n: string) => path.join(dir, n);
const ed = generateKeyPairSync('ed25519');
const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' });

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'keyhold-token-'));
  await writeFile(f('ed.pem'), ed.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  await writeFile(f('p256.pem'), p256.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  await writeFile(f('p384.pem'), generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  await writeFile(f('rsa.pem'), generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  await writeFile(f('open.pem'), ed.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o644 });
  await writeFile(f('junk.pem'), 'not a key', { mode: 0o600 });
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('keyhold token issue', () => {
  it('mints an EdDSA token that verifies with the public key, with the requested claims', async () => {
    const r = await cli(['--key', f('ed.pem'), '--role', 'admin', '--lifetime', '15m', '--iss', 'me', '--aud', 'kbs', '--sub', 'alice', '--kid', 'alice']);
    expect(r.code).toBe(0);
    const token = r.stdout.trim();
    expect(decodeProtectedHeader(token)).toEqual({ alg: 'EdDSA', typ: 'JWT', kid: 'alice' });
    const { payload } = await jwtVerify(token, ed.publicKey, { currentDate: NOW, issuer: 'me', audience: 'kbs' });
    expect(payload).toMatchObject({ role: 'admin', sub: 'alice', iat: NOW.getTime() / 1000, exp: NOW.getTime() / 1000 + 900 });
  });

  it('mints ES256 tokens from P-256 keys, default lifetime 1h', async () => {
    const r = await cli(['--key', f('p256.pem'), '--role', 'auditor', '--json']);
    const out = JSON.parse(r.stdout) as { token: string; exp: number; alg: string };
    expect(out).toMatchObject({ alg: 'ES256', exp: NOW.getTime() / 1000 + 3600 });
    await expect(jwtVerify(out.token, p256.publicKey, { currentDate: NOW })).resolves.toBeDefined();
  });

  it('refuses keys the KBS would not accept, and bad arguments (exit 2)', async () => {
    for (const k of ['p384.pem', 'rsa.pem', 'junk.pem']) expect((await cli(['--key', f(k), '--role', 'admin'])).code, k).toBe(2);
    // A missing key file: one line naming the file (exit 1, as every unreadable file).
    const missing = await cli(['--key', f('missing.pem'), '--role', 'admin']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(`keyhold token issue: cannot read ${f('missing.pem')}: no such file or directory\n`);
    expect((await cli(['--key', f('ed.pem')])).code).toBe(2);
    expect((await cli(['--key', f('ed.pem'), '--role', 'admin', '--lifetime', '31d'])).code).toBe(2);
    expect((await cli(['--key', f('ed.pem'), '--role', 'a b'])).code).toBe(2);
  });

  it('warns about a private key readable by others', async () => {
    const r = await cli(['--key', f('open.pem'), '--role', 'admin']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/readable by group or others/);
  });

  it('parses lifetimes', () => {
    expect([parseLifetime('90s'), parseLifetime('1h'), parseLifetime('30d')]).toEqual([90, 3600, 2_592_000]);
    expect([parseLifetime('0h'), parseLifetime('1y'), parseLifetime('-1h'), parseLifetime('31d')]).toEqual([undefined, undefined, undefined, undefined]);
    // One duration syntax (the `ms` library): decimals and words, but no bare number (unit unknown).
    expect([parseLifetime('1.5h'), parseLifetime('2 days'), parseLifetime('100'), parseLifetime('500ms')]).toEqual([5400, 172_800, undefined, undefined]);
  });

  it('says so when --key is the public key', async () => {
    await writeFile(f('ed.pub.pem'), ed.publicKey.export({ type: 'spki', format: 'pem' }));
    const r = await cli(['--key', f('ed.pub.pem'), '--role', 'admin']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/ed\.pub\.pem is a PUBLIC key; --key needs the PRIVATE key/);
    expect(r.stderr).toMatch(/hint: .*openssl genpkey/);
  });
});
