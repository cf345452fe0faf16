import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadKbsConfig } from '../config.js';
import { openOwnerServices } from './open-owner-services.js';
import { openMemoryState } from '../state/index.js';
import type { KbsState } from '../state/ports.js';

let dir: string;
let state: KbsState;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'keyhold-owner-config-'));
  state = await openMemoryState({ sessionLimits: { maxSessions: 10, maxSessionBytes: 1 << 20 } });
});
afterAll(async () => {
  await state?.close();
  await rm(dir, { recursive: true, force: true });
});

async function load(toml: string, flags: string[] = []) {
  const file = join(dir, `c-${Math.random().toString(16).slice(2)}.toml`);
  await writeFile(file, toml);
  return loadKbsConfig(['--config', file, '--data-dir', join(dir, 'data'), ...flags], {});
}

describe('owner config', () => {
  it('has safe defaults: rate limits on, metrics on, audit file in the data dir, policy "default"', async () => {
    const c = await load('');
    expect(c.owners.rateLimit).toEqual({ authPerSec: 50, authBurst: 100, adminPerSec: 20, adminBurst: 50 });
    expect(c.owners.metricsEnabled).toBe(true);
    expect(c.owners.auditFile).toBe(join(dir, 'data', 'audit.jsonl'));
    expect(c.owners.attestationPolicyId).toBe('default');
    expect(c.owners.admin.insecureAllowAll).toBe(false);
  });

  it('parses [admin] identities and roles, [rate_limit], [metrics], [audit], [policy]', async () => {
    const c = await load(
      [
        '[admin]',
        'identities = [{ name = "alice", public_key_file = "alice.pem", role = "owner-a" }]',
        'issuer = "me"',
        '[admin.roles.owner-a]',
        'repositories = ["a"]',
        'rules = [{ methods = ["GET"], path = "/kbs/v0/resources/.*" }]',
        '[rate_limit]',
        'auth_per_sec = 2',
        'auth_burst = 3',
        '[metrics]',
        'enabled = false',
        '[audit]',
        'enabled = false',
        '[policy]',
        'attestation_policy = "strict"',
      ].join('\n'),
    );
    expect(c.owners.admin.identities).toEqual([{ name: 'alice', publicKeyFile: join(process.cwd(), 'alice.pem'), role: 'owner-a' }]);
    expect(c.owners.admin.roles?.['owner-a']?.repositories).toEqual(['a']);
    expect(c.owners.rateLimit).toMatchObject({ authPerSec: 2, authBurst: 3 });
    expect(c.owners.metricsEnabled).toBe(false);
    expect(c.owners.auditFile).toBeUndefined();
    expect(c.owners.attestationPolicyId).toBe('strict');
  });

  // SECURITY negative tests: a config file alone cannot switch admin authorization off; unknown keys fail.
  it('refuses insecure_allow_all without the --insecure-admin-allow-all flag', async () => {
    await expect(load('[admin]\ninsecure_allow_all = true\n')).rejects.toBeInstanceOf(ConfigError);
    const c = await load('[admin]\ninsecure_allow_all = true\n', ['--insecure-admin-allow-all']);
    expect(c.owners.admin.insecureAllowAll).toBe(true);
    await expect(load('[admin]\ninsecure = true\n')).rejects.toBeInstanceOf(ConfigError);
    await expect(load('[rate_limit]\nauth_burst = 0\n')).rejects.toBeInstanceOf(ConfigError);
  });

  it('logs a warning at start in the insecure mode, and --admin-public-key is an admin identity', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, new Writable({ write: (chunk: Buffer, _e, cb) => (lines.push(chunk.toString()), cb()) }));
    const insecure = await load('[admin]\ninsecure_allow_all = true\n[audit]\nenabled = false\n', ['--insecure-admin-allow-all']);
    const opened = await openOwnerServices(insecure.owners, { state, adminPublicKeyFile: undefined, logger });
    expect(lines.join('')).toMatch(/"level":40.*INSECURE: admin authorization is disabled/);
    expect(await opened.adminAuth.authorize({ authorizationHeader: undefined, method: 'DELETE', path: '/kbs/v0/resource/a/b/c' })).toMatchObject({ role: 'admin' });
    await opened.close();

    const { publicKey } = generateKeyPairSync('ed25519');
    const pem = join(dir, 'admin.pub.pem');
    await writeFile(pem, publicKey.export({ format: 'pem', type: 'spki' }));
    const normal = await load('[audit]\nenabled = false\n');
    const o2 = await openOwnerServices(normal.owners, { state, adminPublicKeyFile: pem, logger });
    await expect(o2.adminAuth.authorize({ authorizationHeader: undefined, method: 'GET', path: '/kbs/v0/resources' })).rejects.toMatchObject({ code: 'ADMIN_UNAUTHORIZED' });
    await o2.close();
  });

});
