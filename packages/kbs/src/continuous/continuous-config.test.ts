import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadKbsConfig } from '../config.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'kh-cont-config-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function load(toml: string) {
  const file = path.join(dir, `c${Math.random().toString(36).slice(2)}.toml`);
  await writeFile(file, toml);
  return loadKbsConfig(['--config', file, '--data-dir', path.join(dir, 'data')], {});
}

describe('[continuous], [[notify.webhook]] and [node_ca]', () => {
  it('defaults: ban on failure, 60 s interval, stale after 3 intervals, generated CA with 1 h certificates, no webhooks', async () => {
    const c = await load('');
    expect(c.continuous).toEqual({ banOnFailure: true, intervalMs: 60_000, staleAfterMs: 180_000, sweepIntervalMs: 60_000, eventRetention: 10_000 });
    expect(c.nodeCa).toEqual({ files: undefined, ttlMs: 3600_000 });
    expect(c.webhooks).toEqual([]);
  });

  it('parses durations, webhook lists and owner CA files', async () => {
    const c = await load(`
[continuous]
ban_on_failure = false
interval = "2s"
sweep_interval = "1s"
event_retention = 500

[[notify.webhook]]
url = "https://hooks.example/keyhold"
secret_file = "/etc/keyhold/hook.secret"

[[notify.webhook]]
url = "http://127.0.0.1:9000/x"
secret_file = "rel.secret"
events = ["node.banned"]
name = "siem"
timeout = "3s"

[node_ca]
certificate = "/ca/int.pem"
private_key = "/ca/int.key"
chain = "/ca/root.pem"
ttl = "24h"
`);
    expect(c.continuous).toEqual({ banOnFailure: false, intervalMs: 2000, staleAfterMs: 6000, sweepIntervalMs: 1000, eventRetention: 500 });
    expect(c.webhooks).toEqual([
      { name: expect.stringMatching(/^hook-[0-9a-f]{12}$/), url: 'https://hooks.example/keyhold', secretFile: '/etc/keyhold/hook.secret', events: ['node.banned', 'node.revoked', 'node.stale', 'node.recovered', 'node.unbanned', 'policy.changed'], timeoutMs: 10_000 },
      { name: 'siem', url: 'http://127.0.0.1:9000/x', secretFile: path.resolve('rel.secret'), events: ['node.banned'], timeoutMs: 3000 },
    ]);
    expect(c.nodeCa).toEqual({ files: { certificate: '/ca/int.pem', privateKey: '/ca/int.key', chain: '/ca/root.pem' }, ttlMs: 24 * 3600_000 });
    expect((await load('[continuous]\ninterval = 30000\nstale_after = "10m"')).continuous).toMatchObject({ intervalMs: 30_000, staleAfterMs: 600_000 });
  });

  it('refuses bad values with a ConfigError naming the key', async () => {
    const bad: [string, RegExp][] = [
      ['[continuous]\ninterval = "soon"', /interval must be a duration/],
      ['[continuous]\ninterval = "10ms"', /interval must be between/],
      ['[continuous]\nban_on_failure = "yes"', /ban_on_failure/],
      ['[node_ca]\nttl = "25h"', /ttl must be between/],
      ['[node_ca]\ncertificate = "/a.pem"', /both certificate and private_key/],
      ['[node_ca]\nchain = "/c.pem"', /chain needs/],
      ['[[notify.webhook]]\nurl = "ftp://x"\nsecret_file = "/s"', /url/],
      ['[[notify.webhook]]\nurl = "https://x"\nsecret_file = "/s"\nevents = ["node.exploded"]', /events/],
      ['[[notify.webhook]]\nurl = "https://x"\nsecret_file = "/s"\nname = "a"\n[[notify.webhook]]\nurl = "https://y"\nsecret_file = "/s"\nname = "a"', /another webhook has the name a/],
    ];
    for (const [toml, msg] of bad) {
      const err = await load(toml).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err, toml).toBeInstanceOf(ConfigError);
      expect((err as Error).message, toml).toMatch(msg);
    }
  });
});
