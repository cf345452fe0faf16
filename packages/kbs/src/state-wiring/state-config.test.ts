import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadKbsConfig } from '../config.js';
import { DEFAULT_MAX_SESSION_BYTES } from './state-config.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'keyhold-state-config-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function load(toml: string, flags: string[] = []) {
  const file = join(dir, `c-${Math.random().toString(16).slice(2)}.toml`);
  await writeFile(file, toml);
  return loadKbsConfig(['--config', file, '--data-dir', join(dir, 'data'), ...flags], {});
}

const storageRedis = '[storage]\nbackend = "redis"\nurl = "redis://10.0.0.1:6379"\nkey_prefix = "sk"\noperation_timeout_ms = 900\n';

describe('[state] config', () => {
  it('defaults to embedded state, one worker, the default session byte cap', async () => {
    const c = await load('');
    expect(c.state).toEqual({ backend: 'embedded', redis: undefined, maxSessionBytes: DEFAULT_MAX_SESSION_BYTES, notices: [] });
    expect(c.workers).toBe(1);
    expect((await load('max_session_bytes = 4096\n')).state.maxSessionBytes).toBe(4096);
  });

  it('reuses the [storage] Redis, each setting overridable in [state]', async () => {
    const c = await load(`${storageRedis}[state]\nbackend = "redis"\nkey_prefix = "st"\n`);
    expect(c.state.backend).toBe('redis');
    expect(c.state.redis).toMatchObject({ url: 'redis://10.0.0.1:6379', keyPrefix: 'st', operationTimeoutMs: 900 });
  });

  it('uses only its own connection when [state] names one (url or cluster_nodes)', async () => {
    const c = await load(`${storageRedis}[state]\nbackend = "redis"\ncluster_nodes = ["127.0.0.1:7000", "[::1]:7001"]\n`);
    expect(c.state.redis).toMatchObject({ url: undefined, clusterNodes: [{ host: '127.0.0.1', port: 7000 }, { host: '::1', port: 7001 }], keyPrefix: undefined, operationTimeoutMs: undefined });
    const own = await load('[state]\nbackend = "redis"\nurl = "redis://127.0.0.1:6390"\npassword_file = "pw"\n');
    expect(own.state.redis).toMatchObject({ url: 'redis://127.0.0.1:6390', passwordFile: join(process.cwd(), 'pw') });
  });

  it('keeps the connection for migrate-state while the backend stays embedded', async () => {
    const c = await load('[state]\nurl = "redis://127.0.0.1:6390"\n');
    expect(c.state.backend).toBe('embedded');
    expect(c.state.redis?.url).toBe('redis://127.0.0.1:6390');
  });

  it('reads the superseded [audit] / [policy] backend = "storage" as [state] backend = "redis", with a notice', async () => {
    const c = await load(`${storageRedis}[audit]\nbackend = "storage"\n`);
    expect(c.state.backend).toBe('redis');
    expect(c.state.notices.join()).toMatch(/superseded by \[state\] backend = "redis"/);
    expect((await load(`${storageRedis}[policy]\nbackend = "storage"\n[state]\nbackend = "redis"\n`)).state.notices).toEqual([]);
  });

  // SECURITY negative tests: contradictory or incomplete state settings never start a KBS on the wrong state.
  it('refuses redis state without a Redis, contradictions, unknown keys and bad values', async () => {
    await expect(load('[state]\nbackend = "redis"\n')).rejects.toThrow(/needs a Redis/);
    await expect(load('[audit]\nbackend = "storage"\n')).rejects.toThrow(/needs \[storage\] backend = "redis"/);
    await expect(load(`${storageRedis}[policy]\nbackend = "storage"\n[state]\nbackend = "embedded"\n`)).rejects.toThrow(/contradicts/);
    await expect(load('[state]\nbackend = "sqlite"\n')).rejects.toBeInstanceOf(ConfigError);
    await expect(load('[state]\nurl = "redis://a:1"\ncluster_nodes = ["a:1"]\n')).rejects.toThrow(/at most one of url or cluster_nodes/);
    await expect(load('[state]\nurl = "http://a:1"\n')).rejects.toThrow(/redis:\/\//);
    await expect(load('[state]\nkey_prefix = "a b"\n')).rejects.toBeInstanceOf(ConfigError);
    await expect(load('[state]\ncluster_nodes = ["a:99999"]\n')).rejects.toThrow(/out of range/);
    await expect(load('[state]\nbogus = 1\n')).rejects.toBeInstanceOf(ConfigError);
    await expect(load('max_session_bytes = 0\n')).rejects.toBeInstanceOf(ConfigError);
  });

  it('allows --workers N only with a shared (redis) state backend', async () => {
    await expect(load('', ['--workers', '2'])).rejects.toThrow(/--workers 2 needs a shared state backend/);
    expect((await load(`${storageRedis}[state]\nbackend = "redis"\n`, ['--workers', '3'])).workers).toBe(3);
    for (const bad of ['0', '65', 'two', '-1', '1.5']) await expect(load(`${storageRedis}[state]\nbackend = "redis"\n`, ['--workers', bad])).rejects.toThrow(/--workers/);
  });
});
