// The cold fast path of `keyhold-agent get-resource` against the full CLI: the forms it takes, the
// ones it leaves to the CLI, and — on the same command lines, with the same stand-in session —
// the same exit code, stdout and stderr. The real TPM and KBS path runs in the e2e tests (the bin
// loader takes this path for their get-resource lines).
import { describe, expect, it } from 'vitest';
import { runAgentCli } from '../cli.js';
import type { AgentConfig } from '../config.js';
import { TpmError } from '../errors.js';
import { KbsClientError } from '../kbs-client/errors.js';
import type { NodeSession } from '../node-session.js';
import { coldArgs } from './cold-args.js';
import { captureCliOutput } from '../cli-output.test-support.js';
import { coldGetResource } from './cold-get-resource.js';

const SECRET = Buffer.from([0, 1, 2, 0xff, 0x0a]);

/** A session that returns SECRET (or fails with `fail`), recording the config and path it got. */
function stubSession(fail?: unknown) {
  const seen: { config?: AgentConfig; path?: unknown; version?: unknown; closed?: boolean } = {};
  const opener = async (config: AgentConfig): Promise<NodeSession> => {
    seen.config = config;
    return {
      client: {
        async getResource(path: unknown, opts: { version?: number }) {
          seen.path = path;
          seen.version = opts.version;
          if (fail !== undefined) throw fail;
          return Buffer.from(SECRET);
        },
      },
      async close() {
        seen.closed = true;
      },
    } as unknown as NodeSession;
  };
  return { opener, seen };
}

function capture() {
  const c = captureCliOutput();
  return { io: c.io, result: () => ({ out: c.out(), err: c.err() }) };
}

async function both(argv: string[], opts: { fail?: unknown; env?: NodeJS.ProcessEnv } = {}) {
  const env = opts.env ?? {};
  const c = capture();
  const cs = stubSession(opts.fail);
  const coldRun = coldGetResource(argv, c.io, env, cs.opener);
  expect(coldRun, `the cold path should take: ${argv.join(' ')}`).toBeDefined();
  const coldCode = await coldRun;
  const f = capture();
  const fs = stubSession(opts.fail);
  const fullCode = await runAgentCli(argv, f.io, env, fs.opener);
  return { cold: { code: coldCode, ...c.result(), seen: cs.seen }, full: { code: fullCode, ...f.result(), seen: fs.seen } };
}

describe('cold get-resource: the command lines it takes', () => {
  it('takes get-resource with one resource, the shared agent flags by long name and --raw/--base64', () => {
    expect(coldArgs(['get-resource', 'kbs:///a/b/c'])).toEqual({ values: {}, resource: 'kbs:///a/b/c', encoding: 'raw', json: false });
    expect(coldArgs(['get-resource', '--url=http://k:1', '--path', 'a/b/c', '--base64', '--no-ek-identity', '--tcti', 'swtpm:port=1', '--json'])).toEqual({
      values: { url: 'http://k:1', 'no-ek-identity': true, tcti: 'swtpm:port=1', json: true },
      resource: 'a/b/c',
      encoding: 'base64',
      json: true,
    });
  });

  it('leaves everything else to the full CLI', () => {
    for (const argv of [
      [],
      ['token'],
      ['--url', 'http://k:1', 'get-resource', 'a/b/c'], // a flag before the command word
      ['get-resource'], // no resource
      ['get-resource', 'a/b/c', 'd/e/f'],
      ['get-resource', 'a/b/c', '--path', 'a/b/c'],
      ['get-resource', 'a/b/c', '-o', 'out'],
      ['get-resource', 'a/b/c', '--output', 'out'],
      ['get-resource', 'a/b/c', '--resource-socket', 's'],
      ['get-resource', 'a/b/c', '--help'],
      ['get-resource', 'a/b/c', '-h'],
      ['get-resource', 'a/b/c', '-T', 'swtpm:port=1'], // short flags: commander's rules
      ['get-resource', 'a/b/c', '--tctii', 'x'], // unknown (commander suggests --tcti)
      ['get-resource', 'a/b/c', '--url', 'http://a:1', '--url', 'http://b:1'], // repeated
      ['get-resource', 'a/b/c', '--raw', '--base64'],
      ['get-resource', 'a/b/c', '--raw', '--raw'],
      ['get-resource', 'a/b/c', '--url'], // no value
      ['get-resource', 'a/b/c', '--url='],
      ['get-resource', 'a/b/c', '--url', '--json'], // a value that looks like a flag
      ['get-resource', 'a/b/c', '--json=yes'],
      ['get-resource', 'a/b/c', '--event-log', 'f', '--no-event-log'], // commander: the last wins
      ['get-resource', '--', 'a/b/c'],
    ]) {
      expect(coldArgs(argv), argv.join(' ')).toBeUndefined();
      expect(coldGetResource(argv, capture().io, {}, stubSession().opener), argv.join(' ')).toBeUndefined();
    }
  });
});

describe('cold get-resource: the same result as the full CLI', () => {
  it('fetches and prints the secret the same way (raw, base64, the resource forms, the config from flags and env)', async () => {
    const env = { KEYHOLD_KBS_URL: 'http://kbs.example:8080', KEYHOLD_AGENT_STATE_DIR: '/var/lib/keyhold-test' };
    for (const argv of [
      ['get-resource', 'kbs:///default/key/k1?version=3', '--tcti', 'swtpm:port=1'],
      ['get-resource', 'default/key/k1', '--base64', '--ak-handle=0x81010003', '--no-ek-identity'],
      ['get-resource', '--path', '/default/key/k1', '--raw', '--json', '--tee-key', 'rsa', '--timeout-ms', '5000'],
      ['get-resource', 'default/key/k1', '--url', 'http://127.0.0.1:9', '--no-event-log', '--ima-log', '/dev/null'],
    ]) {
      const { cold, full } = await both(argv, { env });
      expect(cold.code, `${argv.join(' ')}: ${cold.err}`).toBe(0);
      expect({ code: cold.code, out: cold.out.toString('hex'), err: cold.err }).toEqual({ code: full.code, out: full.out.toString('hex'), err: full.err });
      expect(cold.seen.config).toEqual(full.seen.config);
      expect(cold.seen.path).toEqual(full.seen.path);
      expect(cold.seen.version).toEqual(full.seen.version);
      expect(cold.seen.closed).toBe(true);
    }
  });

  it('reports failures the same way: exit code and error line (plain and --json)', async () => {
    const cases: { argv: string[]; fail?: unknown; code: number }[] = [
      { argv: ['get-resource', 'a/../c'], code: 2 },
      { argv: ['get-resource', 'a/b/c', '--tcti', 'nosuchtcti:x'], code: 2 },
      { argv: ['get-resource', 'a/b/c', '--url', 'ftp://kbs'], code: 2 },
      { argv: ['get-resource', 'a/b/c', '--ak-handle', '12'], code: 2 },
      { argv: ['get-resource', 'a/b/c', '--json', '--ak-mode', 'neither'], code: 2 },
      { argv: ['get-resource', 'a/b/c'], fail: new KbsClientError('RESOURCE_NOT_FOUND', 'no such resource', { status: 404 }), code: 4 },
      { argv: ['get-resource', 'a/b/c', '--json'], fail: new KbsClientError('POLICY_DENY', 'denied', { status: 403 }), code: 3 },
      { argv: ['get-resource', 'a/b/c', '--tcti', 'swtpm:port=1'], fail: new TpmError('TPM_UNAVAILABLE', 'no TPM'), code: 1 },
      { argv: ['get-resource', 'a/b/c'], fail: new Error('something broke'), code: 1 },
    ];
    for (const c of cases) {
      const { cold, full } = await both(c.argv, c.fail !== undefined ? { fail: c.fail } : {});
      expect(cold.code, `${c.argv.join(' ')}: ${cold.err}`).toBe(c.code);
      expect({ code: cold.code, out: cold.out.length, err: cold.err }).toEqual({ code: full.code, out: full.out.length, err: full.err });
      expect(cold.err).not.toBe('');
    }
  });
});
