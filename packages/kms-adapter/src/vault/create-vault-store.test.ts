import { randomBytes } from 'node:crypto';
import { accessSync, constants, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, spawnProcess, waitForPort, type SpawnedProcess } from '@keyhold/test-harness';
import { request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { expectKmsError, runSecretStoreConformance } from '../conformance.test-support.js';
import { createEmbeddedStore } from '../embedded/create-embedded-store.js';
import { createVaultStore } from './create-vault-store.js';
import { VaultTransitKeyWrapper } from './vault-transit-key-wrapper.js';

function onPath(bin: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const p = path.join(dir, bin);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

// These run without a Vault server.
describe('vault backend without a server', () => {
  it('reports a Vault that is down as KMS_UNAVAILABLE', async () => {
    const port = await freePort();
    const store = await createVaultStore({ backend: 'vault', address: `http://127.0.0.1:${port}`, auth: { method: 'token', token: 't' } });
    await expectKmsError(store.get('a/b/c'), 'KMS_UNAVAILABLE');
    await expectKmsError(store.put('a/b/c', Buffer.from('x')), 'KMS_UNAVAILABLE');
    await expectKmsError(store.list(), 'KMS_UNAVAILABLE');
    await store.close();
  });

  it('refuses bad configuration with TypeError and bad names before any request', async () => {
    const base = { backend: 'vault' as const, address: 'http://127.0.0.1:1', auth: { method: 'token' as const, token: 't' } };
    await expect(() => createVaultStore({ ...base, mount: '../sys' })).toThrow(TypeError);
    await expect(() => createVaultStore({ ...base, pathPrefix: 'a//b' })).toThrow(TypeError);
    await expect(() => createVaultStore({ ...base, address: 'file:///etc/passwd' })).toThrow(TypeError);
    await expect(() => createVaultStore({ ...base, auth: { method: 'token', token: '' } })).toThrow(TypeError);
    expect(() => new VaultTransitKeyWrapper({ ...base, keyName: 'a/b' })).toThrow(TypeError);
    const store = await createVaultStore(base);
    await expectKmsError(store.get('../../sys/raw'), 'KMS_INVALID_NAME');
    await store.close();
  });
});

const vaultBin = onPath('vault');
const envAddr = process.env.VAULT_ADDR;

if (envAddr === undefined && vaultBin === undefined) {
  describe.skip('Vault conformance — SKIPPED: VAULT_ADDR is not set and no `vault` binary is on PATH (no Vault server can be installed on this machine)', () => {
    it('runs the SecretStore conformance suite against a real Vault (KV v1, KV v2, AppRole, Transit)', () => undefined);
  });
} else {
  let server: SpawnedProcess | undefined;
  let addr: string;
  let rootToken: string;
  if (envAddr !== undefined) {
    addr = envAddr;
    const t = process.env.VAULT_TOKEN;
    if (t === undefined) throw new Error('VAULT_ADDR is set: set VAULT_TOKEN to a token that may mount engines and auth methods');
    rootToken = t;
  } else {
    const port = await freePort();
    rootToken = `root-${randomBytes(8).toString('hex')}`;
    server = spawnProcess({
      name: 'vault-dev',
      command: vaultBin as string,
      args: ['server', '-dev', `-dev-root-token-id=${rootToken}`, `-dev-listen-address=127.0.0.1:${port}`],
      env: { ...process.env, HOME: await fs.mkdtemp(path.join(os.tmpdir(), 'kh-vault-home-')) },
    });
    await waitForPort(port, server);
    addr = `http://127.0.0.1:${port}`;
  }

  const sys = async (method: 'GET' | 'POST' | 'PUT' | 'DELETE', p: string, body?: unknown): Promise<Record<string, unknown>> => {
    const res = await request(`${addr}/v1/${p}`, {
      method,
      headers: { 'x-vault-token': rootToken, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.body.text();
    if (res.statusCode >= 300) throw new Error(`vault ${method} ${p}: HTTP ${res.statusCode} ${text}`);
    return text === '' ? {} : (JSON.parse(text) as Record<string, unknown>);
  };
  // Wait until the dev server is unsealed and active.
  for (let i = 0; ; i++) {
    const res = await request(`${addr}/v1/sys/health`).catch(() => undefined);
    await res?.body.text();
    if (res?.statusCode === 200) break;
    if (i > 100) throw new Error('vault did not become healthy');
    await new Promise((r) => setTimeout(r, 100));
  }

  // Unique mounts, so a shared Vault (VAULT_ADDR) is left as it was found.
  const s = randomBytes(4).toString('hex');
  const kv2 = `kh-kv2-${s}`;
  const kv1 = `kh-kv1-${s}`;
  const transit = `kh-transit-${s}`;
  const approle = `kh-approle-${s}`;
  await sys('POST', `sys/mounts/${kv2}`, { type: 'kv', options: { version: '2' } });
  await sys('POST', `sys/mounts/${kv1}`, { type: 'kv', options: { version: '1' } });
  await sys('POST', `sys/mounts/${transit}`, { type: 'transit' });
  await sys('POST', `${transit}/keys/wrap`, { type: 'aes256-gcm96' });
  await sys('POST', `sys/auth/${approle}`, { type: 'approle' });
  await sys('PUT', `sys/policies/acl/kh-${s}`, {
    policy: `path "${kv2}/*" { capabilities = ["create", "read", "update", "delete", "list"] }`,
  });
  await sys('POST', `auth/${approle}/role/kh`, { token_policies: [`kh-${s}`], token_ttl: '1h' });
  const roleId = ((await sys('GET', `auth/${approle}/role/kh/role-id`)).data as { role_id: string }).role_id;
  const secretId = ((await sys('POST', `auth/${approle}/role/kh/secret-id`)).data as { secret_id: string }).secret_id;
  // KV v2 needs a moment after mounting before it accepts writes.
  await new Promise((r) => setTimeout(r, 1000));

  afterAll(async () => {
    if (server !== undefined) {
      await server.stop();
      return;
    }
    for (const m of [kv2, kv1, transit]) await sys('DELETE', `sys/mounts/${m}`).catch(() => undefined);
    await sys('DELETE', `sys/auth/${approle}`).catch(() => undefined);
    await sys('DELETE', `sys/policies/acl/kh-${s}`).catch(() => undefined);
  });

  const token = { method: 'token' as const, token: rootToken };
  runSecretStoreConformance('vault KV v2, token auth', () => createVaultStore({ backend: 'vault', address: addr, auth: token, mount: kv2 }), {
    multiInstance: true,
  });
  runSecretStoreConformance('vault KV v1, token auth', () =>
    createVaultStore({ backend: 'vault', address: addr, auth: token, mount: kv1, kvVersion: 1 }),
  );
  runSecretStoreConformance(
    'vault KV v2, AppRole auth',
    () => createVaultStore({ backend: 'vault', address: addr, auth: { method: 'approle', roleId, secretId, mount: approle }, mount: kv2, pathPrefix: 'approle' }),
    { multiInstance: true },
  );
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kh-kms-transit-'));
  runSecretStoreConformance(
    'embedded store with Vault Transit key wrapping',
    () => createEmbeddedStore({ backend: 'embedded', dir, transit: { address: addr, auth: token, mount: transit, keyName: 'wrap' } }),
    { multiInstance: true },
  );

  describe('vault backend against a real server', () => {
    it('AppRole is limited by its policy: a mount outside it is KMS_CONFIG', async () => {
      const store = await createVaultStore({ backend: 'vault', address: addr, auth: { method: 'approle', roleId, secretId, mount: approle }, mount: kv1, kvVersion: 1 });
      await expectKmsError(store.put('a/b/c', Buffer.from('x')), 'KMS_CONFIG');
      await store.close();
    });

    it('a wrong token is KMS_CONFIG, and values sealed with Transit never reach the KV store in clear', async () => {
      const bad = await createVaultStore({ backend: 'vault', address: addr, auth: { method: 'token', token: 'not-a-token' }, mount: kv2 });
      await expectKmsError(bad.get('a/b/c'), 'KMS_CONFIG');
      await bad.close();
      const wrapper = new VaultTransitKeyWrapper({ address: addr, auth: token, mount: transit, keyName: 'wrap' });
      const sealed = await createVaultStore({ backend: 'vault', address: addr, auth: token, mount: kv2, pathPrefix: 'sealed', keyWrapper: wrapper });
      const secret = `transit-secret-${randomBytes(8).toString('hex')}`;
      await sealed.put('s/t/x', Buffer.from(secret));
      const raw = JSON.stringify(await sys('GET', `${kv2}/data/sealed/s/t/x/1`));
      expect(raw).not.toContain(secret);
      expect(raw).not.toContain(Buffer.from(secret).toString('base64'));
      expect(raw).toContain('vault:v1:');
      expect(Buffer.from((await sealed.get('s/t/x')).value).toString()).toBe(secret);
      await sealed.close();
      await wrapper.close();
    });
  });
}
