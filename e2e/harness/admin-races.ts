import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { base64url } from 'jose';
import { http, type HttpAnswer } from './raw-flow.js';

/**
 * Concurrent admin writes against one KBS or several replicas (`urls[i % urls.length]`), for the
 * lost-update regressions of issue 10: distinct writes that must all survive, and a DELETE racing an
 * unrelated write on the same store that must stay deleted — on every admin store of the state:
 * reference values, EK allowlist, node records, resource policies and EK CA uploads. `check` reads everything back, so the
 * same expectations can be run again after a restart.
 */
export interface AdminRaceSet {
  /** Reference-value names written concurrently (all must be present). */
  readonly written: readonly string[];
  readonly expectations: readonly Expectation[];
}

interface Expectation {
  readonly what: string;
  /** The GET that shows it, and whether it must be present. */
  readonly path: string;
  readonly present: boolean;
}

const hex64 = (s: string): string => createHash('sha256').update(s).digest('hex');
const run = promisify(execFile);

/** `n` fresh self-signed CA certificates (PEM) made with openssl, and their SHA-256 (DER). */
async function caCertificates(n: number, tag: string): Promise<{ pem: string; sha256: string }[]> {
  const dir = await mkdtemp(join(tmpdir(), 'keyhold-races-ca-'));
  try {
    return await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const pem = join(dir, `ca${i}.pem`);
        await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, `ca${i}.key`), '-out', pem,
          '-subj', `/CN=${tag} race CA ${i}`, '-days', '2', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign']);
        const { stdout } = await run('openssl', ['x509', '-in', pem, '-outform', 'DER'], { encoding: 'buffer' });
        return { pem: await readFile(pem, 'utf8'), sha256: createHash('sha256').update(stdout).digest('hex') };
      }),
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function rv(names: Record<string, string[]>): string {
  return JSON.stringify({ version: '0.1.0', type: 'sample', payload: Buffer.from(JSON.stringify(names)).toString('base64') });
}

async function ok(a: Promise<HttpAnswer>, what: string, statuses: number[] = [200, 204]): Promise<HttpAnswer> {
  const r = await a;
  if (!statuses.includes(r.status)) throw new Error(`${what}: ${r.status} ${r.text.slice(0, 300)}`);
  return r;
}

/** Run the writes and races; throws when a write was not acknowledged. `tag` keeps runs apart. */
export async function runAdminRaces(urls: readonly string[], adminHeaders: Record<string, string>, tag: string, writes = 50): Promise<AdminRaceSet> {
  const at = (i: number): string => urls[i % urls.length]!;
  const json = { ...adminHeaders, 'content-type': 'application/json' };
  const post = (i: number, path: string, body: string) => http(`${at(i)}${path}`, { method: 'POST', headers: json, body });
  const del = (i: number, path: string) => http(`${at(i)}${path}`, { method: 'DELETE', headers: adminHeaders });

  // 1. `writes` concurrent reference-value POSTs of distinct names (issue: "20 answer 200, most are gone").
  const written = Array.from({ length: writes }, (_, i) => `${tag}_rv_${i}`);
  await Promise.all(written.map((n, i) => ok(post(i, '/kbs/v0/reference-value', rv({ [n]: [`v${i}`] })), `reference value ${n}`)));

  const expectations: Expectation[] = written.map((n) => ({ what: `reference value ${n}`, path: `/kbs/v0/reference-value/${n}`, present: true }));
  const rounds = 5;
  const cas = await caCertificates(2 * rounds, tag);
  const octets = { ...adminHeaders, 'content-type': 'application/octet-stream' };
  for (let r = 0; r < rounds; r++) {
    // Set up what the DELETEs will remove.
    const gone = { rv: `${tag}_gone_${r}`, ek: hex64(`${tag}-ek-gone-${r}`), node: hex64(`${tag}-node-gone-${r}`), repo: `${tag}gone${r}` };
    const kept = { rv: `${tag}_kept_${r}`, ek: hex64(`${tag}-ek-kept-${r}`), node: hex64(`${tag}-node-kept-${r}`), repo: `${tag}kept${r}` };
    const policy = (rule: string) => JSON.stringify({ policy: base64url.encode(rule) });
    await Promise.all([
      ok(post(r, '/kbs/v0/reference-value', rv({ [gone.rv]: ['x'] })), 'rv setup'),
      ok(post(r + 1, '/kbs/v0/admin/ek-allowlist', JSON.stringify({ ekHash: gone.ek })), 'allowlist setup'),
      ok(post(r + 2, `/kbs/v0/admin/nodes/${gone.node}/revoke`, ''), 'node setup'),
      ok(post(r, `/kbs/v0/resource-policy/${gone.repo}`, policy('true')), 'policy setup'),
      ok(http(`${at(r + 1)}/kbs/v0/admin/ek-ca`, { method: 'POST', headers: octets, body: cas[2 * r]!.pem }), 'CA setup'),
    ]);
    // 2. Each DELETE races an unrelated write on the same store, on another replica.
    await Promise.all([
      ok(del(r, `/kbs/v0/reference-value/${gone.rv}`), 'rv delete'),
      ok(post(r + 1, '/kbs/v0/reference-value', rv({ [kept.rv]: ['y'] })), 'rv set'),
      ok(del(r + 1, `/kbs/v0/admin/ek-allowlist/${gone.ek}`), 'allowlist delete'),
      ok(post(r + 2, '/kbs/v0/admin/ek-allowlist', JSON.stringify({ ekHash: kept.ek })), 'allowlist add'),
      ok(del(r + 2, `/kbs/v0/admin/nodes/${gone.node}`), 'node delete'),
      ok(post(r, `/kbs/v0/admin/nodes/${kept.node}/revoke`, ''), 'node revoke'),
      ok(del(r, `/kbs/v0/resource-policy/${gone.repo}`), 'policy delete'),
      ok(post(r + 1, `/kbs/v0/resource-policy/${kept.repo}`, policy('false')), 'policy set'),
      ok(del(r + 2, `/kbs/v0/admin/ek-ca/${cas[2 * r]!.sha256}`), 'CA delete'),
      ok(http(`${at(r)}/kbs/v0/admin/ek-ca`, { method: 'POST', headers: octets, body: cas[2 * r + 1]!.pem }), 'CA add'),
    ]);
    expectations.push(
      { what: `deleted reference value ${gone.rv}`, path: `/kbs/v0/reference-value/${gone.rv}`, present: false },
      { what: `reference value ${kept.rv}`, path: `/kbs/v0/reference-value/${kept.rv}`, present: true },
      { what: `deleted allowlist entry ${gone.ek}`, path: `allowlist:${gone.ek}`, present: false },
      { what: `allowlist entry ${kept.ek}`, path: `allowlist:${kept.ek}`, present: true },
      { what: `removed node ${gone.node}`, path: `node:${gone.node}`, present: false },
      { what: `revoked node ${kept.node}`, path: `node:${kept.node}`, present: true },
      { what: `deleted resource policy ${gone.repo}`, path: `policy:${gone.repo}`, present: false },
      { what: `resource policy ${kept.repo}`, path: `policy:${kept.repo}`, present: true },
      { what: `deleted EK CA certificate ${cas[2 * r]!.sha256}`, path: `ca:${cas[2 * r]!.sha256}`, present: false },
      { what: `EK CA certificate ${cas[2 * r + 1]!.sha256}`, path: `ca:${cas[2 * r + 1]!.sha256}`, present: true },
    );
  }
  return { written, expectations };
}

/** Every expectation as seen through `url`; returns the ones that do not hold (empty = all good). */
export async function checkAdminRaces(url: string, adminHeaders: Record<string, string>, set: AdminRaceSet): Promise<string[]> {
  const get = (path: string) => http(`${url}${path}`, { headers: adminHeaders });
  const allow = await get('/kbs/v0/admin/ek-allowlist');
  const listed = new Set((allow.json as { ekHashes: string[] }).ekHashes);
  const cas = new Set(((await get('/kbs/v0/admin/ek-ca')).json as { certificates: { sha256: string }[] }).certificates.map((c) => c.sha256));
  const nodes = new Set<string>();
  for (let after: string | undefined, guard = 0; guard < 1000; guard++) {
    const page = (await get(`/kbs/v0/admin/nodes?limit=1000${after !== undefined ? `&after=${after}` : ''}`)).json as { nodes: { nodeId: string }[]; next?: string };
    for (const n of page.nodes) nodes.add(n.nodeId);
    if (page.next === undefined) break;
    after = page.next;
  }
  const wrong: string[] = [];
  for (const e of set.expectations) {
    let present: boolean;
    if (e.path.startsWith('allowlist:')) present = listed.has(e.path.slice(10));
    else if (e.path.startsWith('ca:')) present = cas.has(e.path.slice(3));
    else if (e.path.startsWith('node:')) present = nodes.has(e.path.slice(5));
    else if (e.path.startsWith('policy:')) {
      // The policy in effect for the repository: its own (scope "repository") or the fallback.
      const p = await get(`/kbs/v0/resource-policy/${e.path.slice(7)}`);
      present = p.status === 200 && (p.json as { scope?: string }).scope === 'repository';
    }
    else present = (await get(e.path)).status === 200;
    if (present !== e.present) wrong.push(`${e.what}: ${present ? 'present' : 'absent'} through ${url}`);
  }
  return wrong;
}
