// The config keys of issue 12 through loadKbsConfig: [http_server], [admin] token lifetime / skew /
// client_ca, [policy] CEL limits, max_auth_body_bytes — defaults, overrides and refusals.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_POLICY_LIMITS } from '@keyhold/policy';
import { ConfigError, loadKbsConfig } from '../config.js';
import { HTTP_SERVER_DEFAULTS } from './http-server-config.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'keyhold-http-config-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function load(toml: string, flags: string[] = []) {
  const file = join(dir, `c-${Math.random().toString(36).slice(2)}.toml`);
  await writeFile(file, toml);
  return loadKbsConfig(['--config', file, '--data-dir', join(dir, 'data'), ...flags], {});
}

describe('issue 12 config keys', () => {
  it('defaults: no transport chosen, 30 s / 10 s / 5 s, 10000 connections, 64 KiB /auth bodies, 24 h tokens, 30 s skew, default CEL limits', async () => {
    const c = await load('');
    expect(c.httpServer).toEqual({ tls: undefined, insecureHttp: false, ...HTTP_SERVER_DEFAULTS });
    expect(c.maxAuthBodyBytes).toBe(65536);
    expect(c.owners.admin).toMatchObject({ maxTokenLifetimeSec: 86400, clockSkewSec: 30, clientCaFile: undefined });
    expect(c.policyLimits).toEqual(DEFAULT_POLICY_LIMITS);
    expect((await load('', ['--insecure-http'])).httpServer.insecureHttp).toBe(true);
  });

  it('overrides', async () => {
    const c = await load(
      [
        'max_auth_body_bytes = 32768',
        '[http_server]',
        'certificate = "c.pem"',
        'private_key = "/etc/k.pem"',
        'request_timeout_ms = 20000',
        'headers_timeout_ms = 5000',
        'keep_alive_timeout_ms = 1000',
        'max_connections = 50',
        '[admin]',
        'max_token_lifetime_s = 3600',
        'clock_skew_s = 5',
        'client_ca = "clients.pem"',
        '[policy]',
        'max_evaluation_cost = 5000',
        'max_ast_nodes = 300',
        'max_evaluation_ms = 50',
      ].join('\n'),
    );
    expect(c.httpServer).toMatchObject({ tls: { certificateFile: join(process.cwd(), 'c.pem'), privateKeyFile: '/etc/k.pem' }, requestTimeoutMs: 20000, headersTimeoutMs: 5000, keepAliveTimeoutMs: 1000, maxConnections: 50 });
    expect(c.maxAuthBodyBytes).toBe(32768);
    expect(c.owners.admin).toMatchObject({ maxTokenLifetimeSec: 3600, clockSkewSec: 5, clientCaFile: join(process.cwd(), 'clients.pem') });
    expect(c.policyLimits).toMatchObject({ maxEvaluationCost: 5000, maxAstNodes: 300, maxEvaluationMs: 50, maxAstDepth: DEFAULT_POLICY_LIMITS.maxAstDepth });
    // The /auth cap never exceeds the general body cap.
    expect((await load('max_body_bytes = 4096')).maxAuthBodyBytes).toBe(4096);
  });

  it('refuses out-of-range values and contradictions', async () => {
    for (const bad of [
      '[http_server]\nrequest_timeout_ms = 10',
      '[http_server]\nmax_connections = 0',
      '[http_server]\nkeep_alive_timeout_ms = 0',
      '[http_server]\ninsecure_http = "yes"',
      '[admin]\nclock_skew_s = 3600',
      '[policy]\nmax_evaluation_cost = 0',
      'max_auth_body_bytes = 10',
      '[http_server]\nprivate_key = "k.pem"',
    ]) {
      await expect(load(bad), bad).rejects.toThrow(ConfigError);
    }
    await expect(load('[http_server]\ncertificate = "c"\nprivate_key = "k"', ['--insecure-http'])).rejects.toThrow(/contradict/);
  });
});
