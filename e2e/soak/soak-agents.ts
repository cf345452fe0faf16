/**
 * The soak's actors (scripts/soak.ts): honest agents (a software TPM whose AK the owner trusts; each
 * loop is auth → attest → resource, and the released JWE must open to the uploaded secret), hostile
 * agents (each loop one attack that must be refused: untrusted AK, replayed or tampered evidence,
 * forged or missing tokens, oversized and malformed bodies, admin calls with no, expired or too
 * long-lived tokens, path tricks), and an admin writer (resources, reference values, a repository
 * policy, deletes, plus a deliberately invalid reference value that must be refused). Everything is
 * counted in one Stats object; nothing here decides pass or fail.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import type { Agent} from 'undici';
import { request } from 'undici';
import { flattenedDecrypt, SignJWT, UnsecuredJWT, type FlattenedJWE } from 'jose';
import { fitReportData, PROTOCOL_VERSION, runtimeDataDigest, TPM_REPORT_DATA_BYTES, type TeePubkey } from '@keyhold/protocol';
import { collectTpmEvidence, createSoftwareTpm, generateTeeKeyPair, loadOrCreateAk, tpm2bPublicToSpkiDer, type TpmDevice, type TpmKey } from '@keyhold/attestation-agent';

export const STABLE_PATH = 'soak/key/stable';

export interface Stats {
  flows: number;
  /** Honest flows that did not end with the right secret (must stay 0). */
  honestFailures: string[];
  /** Refusals by `status variant` (hostile attacks, rate limits, invalid admin writes). */
  refusals: Map<string, number>;
  /** Attacks that were NOT refused (must stay 0), by attack. */
  hostileAccepted: Map<string, number>;
  /** Any 5xx answer, by `status variant route` (must stay 0 without injected faults). */
  serverErrors: Map<string, number>;
  adminWrites: number;
  adminFailures: string[];
  attacks: number;
  /** Per-flow wall time in ms (honest). */
  flowMs: number[];
}

export function newStats(): Stats {
  return { flows: 0, honestFailures: [], refusals: new Map(), hostileAccepted: new Map(), serverErrors: new Map(), adminWrites: 0, adminFailures: [], attacks: 0, flowMs: [] };
}

const bump = (m: Map<string, number>, k: string): void => void m.set(k, (m.get(k) ?? 0) + 1);

export interface Client {
  readonly url: string;
  readonly dispatcher: Agent;
  readonly adminToken: string;
  readonly adminKey: KeyObject;
}

interface Answer {
  status: number;
  text: string;
  json: unknown;
  setCookie: string;
}

const variantOf = (a: Answer): string => {
  const t = (a.json as { type?: unknown } | undefined)?.type;
  return typeof t === 'string' ? (t.split('/').pop() ?? '') : '';
};

export async function call(c: Client, stats: Stats, method: 'GET' | 'POST' | 'DELETE', path: string, opts: { headers?: Record<string, string>; body?: string | Buffer } = {}): Promise<Answer> {
  const r = await request(`${c.url}${path}`, { method, dispatcher: c.dispatcher, ...(opts.headers !== undefined ? { headers: opts.headers } : {}), ...(opts.body !== undefined ? { body: opts.body } : {}) });
  const text = await r.body.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  const sc = r.headers['set-cookie'];
  const a = { status: r.statusCode, text, json, setCookie: Array.isArray(sc) ? sc.join('; ') : (sc ?? '') };
  if (a.status >= 500) bump(stats.serverErrors, `${a.status} ${variantOf(a)} ${method} ${path.split('?')[0]!.replace(/\/[^/]+\/[^/]+\/[^/]+$/, '/…')}`);
  return a;
}

const JSON_HEADERS = { 'content-type': 'application/json' };

async function openSession(c: Client, stats: Stats): Promise<{ cookie: string; nonce: string } | Answer> {
  const a = await call(c, stats, 'POST', '/kbs/v0/auth', { headers: JSON_HEADERS, body: JSON.stringify({ version: PROTOCOL_VERSION, tee: 'tpm', 'extra-params': {} }) });
  const cookie = /kbs-session-id=([0-9a-f]{32})/.exec(a.setCookie)?.[1];
  if (a.status !== 200 || cookie === undefined) return a;
  return { cookie, nonce: (a.json as { nonce: string }).nonce };
}

async function attestation(tpm: TpmDevice, ak: TpmKey, nonce: string) {
  const teeKey = await generateTeeKeyPair('ec');
  const digest = runtimeDataDigest({ nonce, teePubkey: teeKey.publicJwk as TeePubkey, additionalEvidence: '' });
  const evidence = await collectTpmEvidence(tpm, ak, fitReportData(digest, TPM_REPORT_DATA_BYTES));
  return { teeKey, body: { 'runtime-data': { nonce, 'tee-pubkey': teeKey.publicJwk }, 'tee-evidence': { primary_evidence: evidence, additional_evidence: '' } } };
}

/** A node: a software TPM and its AK (RSA, created under the EK as the agent does). */
export async function makeNode(): Promise<{ tpm: TpmDevice; ak: TpmKey; akB64: string }> {
  const tpm = createSoftwareTpm();
  const ak = (await loadOrCreateAk(tpm, { persistentHandle: 0x81010002, persist: true })).ak;
  return { tpm, ak, akB64: Buffer.from(tpm2bPublicToSpkiDer(ak.publicArea)).toString('base64') };
}

/** Honest agent loop: until `stop()`, complete flows and check the released secret. */
export async function honestAgent(c: Client, stats: Stats, node: { tpm: TpmDevice; ak: TpmKey }, secret: string, stop: () => boolean): Promise<void> {
  while (!stop()) {
    const t0 = performance.now();
    const s = await openSession(c, stats);
    if (!('cookie' in s)) {
      if (s.status === 429) bump(stats.refusals, `429 ${variantOf(s)} (honest /auth)`);
      else stats.honestFailures.push(`/auth ${s.status} ${s.text.slice(0, 120)}`);
      continue;
    }
    const { teeKey, body } = await attestation(node.tpm, node.ak, s.nonce);
    const at = await call(c, stats, 'POST', '/kbs/v0/attest', { headers: { ...JSON_HEADERS, cookie: `kbs-session-id=${s.cookie}` }, body: JSON.stringify(body) });
    if (at.status !== 200) {
      stats.honestFailures.push(`/attest ${at.status} ${at.text.slice(0, 160)}`);
      continue;
    }
    const res = await call(c, stats, 'GET', `/kbs/v0/resource/${STABLE_PATH}`, { headers: { cookie: `kbs-session-id=${s.cookie}` } });
    if (res.status !== 200) {
      stats.honestFailures.push(`/resource ${res.status} ${res.text.slice(0, 160)}`);
      continue;
    }
    const { plaintext } = await flattenedDecrypt(res.json as FlattenedJWE, teeKey.privateKey);
    if (Buffer.from(plaintext).toString() !== secret) stats.honestFailures.push('/resource released a different secret');
    else {
      stats.flows++;
      stats.flowMs.push(performance.now() - t0);
    }
  }
}

type Attack = (c: Client, stats: Stats) => Promise<Answer>;

/** Hostile attacks, each with the answer it must get (status); a 2xx is an accepted attack. */
export function attacks(untrusted: { tpm: TpmDevice; ak: TpmKey }, trusted: { tpm: TpmDevice; ak: TpmKey }): Record<string, Attack> {
  const onSession = async (c: Client, stats: Stats, build: (nonce: string, cookie: string) => Promise<unknown>): Promise<Answer> => {
    const s = await openSession(c, stats);
    if (!('cookie' in s)) return s;
    return call(c, stats, 'POST', '/kbs/v0/attest', { headers: { ...JSON_HEADERS, cookie: `kbs-session-id=${s.cookie}` }, body: JSON.stringify(await build(s.nonce, s.cookie)) });
  };
  const expiredAdmin = async (c: Client, lifetimeS: number, iatOffsetS = 0): Promise<string> => {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ role: 'admin' }).setProtectedHeader({ alg: 'EdDSA' }).setIssuedAt(now + iatOffsetS).setExpirationTime(now + iatOffsetS + lifetimeS).sign(c.adminKey);
  };
  return {
    // An AK the owner never trusted, quoting honestly (a software key can sign a perfect quote).
    'untrusted AK': (c, st) => onSession(c, st, async (nonce) => (await attestation(untrusted.tpm, untrusted.ak, nonce)).body),
    // Honest evidence of a trusted node, made for another session's nonce (replay / relay).
    'replayed evidence': async (c, st) => {
      const other = await openSession(c, st);
      const nonce = 'cookie' in other ? other.nonce : Buffer.alloc(32, 7).toString('base64');
      const made = (await attestation(trusted.tpm, trusted.ak, nonce)).body;
      return onSession(c, st, async () => made);
    },
    // Honest evidence with one bit of the quote flipped.
    'tampered quote': (c, st) =>
      onSession(c, st, async (nonce) => {
        const b = (await attestation(trusted.tpm, trusted.ak, nonce)).body as { 'tee-evidence': { primary_evidence: { tpm_quote: { message: string } } } };
        const q = Buffer.from(b['tee-evidence'].primary_evidence.tpm_quote.message, 'base64');
        q[q.length - 5]! ^= 0x10;
        b['tee-evidence'].primary_evidence.tpm_quote.message = q.toString('base64');
        return b;
      }),
    'resource without attestation': (c, st) => call(c, st, 'GET', `/kbs/v0/resource/${STABLE_PATH}`),
    'unsigned bearer token': (c, st) =>
      call(c, st, 'GET', `/kbs/v0/resource/${STABLE_PATH}`, { headers: { authorization: `Bearer ${new UnsecuredJWT({ submods: { cpu0: { 'ear.status': 'affirming' } } }).setExpirationTime('1h').encode()}` } }),
    'token signed by another key': async (c, st) => {
      const t = await new SignJWT({ submods: { cpu0: { 'ear.status': 'affirming' } } }).setProtectedHeader({ alg: 'ES256' }).setExpirationTime('1h').sign(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
      return call(c, st, 'GET', `/kbs/v0/resource/${STABLE_PATH}`, { headers: { authorization: `Bearer ${t}` } });
    },
    'oversized /auth body': (c, st) => call(c, st, 'POST', '/kbs/v0/auth', { headers: JSON_HEADERS, body: JSON.stringify({ version: PROTOCOL_VERSION, tee: 'tpm', 'extra-params': { pad: 'x'.repeat(1024 * 1024) } }) }),
    'malformed JSON': (c, st) => call(c, st, 'POST', '/kbs/v0/auth', { headers: JSON_HEADERS, body: '{"version": "0.4.0", "tee": ' }),
    'wrong content type': (c, st) => call(c, st, 'POST', '/kbs/v0/auth', { headers: { 'content-type': 'text/plain' }, body: 'hello' }),
    'admin call without token': (c, st) => call(c, st, 'POST', '/kbs/v0/resource/soak/key/stable', { body: 'evil' }),
    'admin call with an expired token': async (c, st) => call(c, st, 'POST', '/kbs/v0/resource/soak/key/stable', { headers: { authorization: `Bearer ${await expiredAdmin(c, 60, -3600)}` }, body: 'evil' }),
    'admin call with a 48 h token': async (c, st) => call(c, st, 'POST', '/kbs/v0/resource/soak/key/stable', { headers: { authorization: `Bearer ${await expiredAdmin(c, 48 * 3600)}` }, body: 'evil' }),
    'path traversal': (c, st) => call(c, st, 'GET', '/kbs/v0/resource/soak/%2e%2e/%2e%2e%2fsecrets'),
  };
}

/** Hostile agent loop: attacks in turn until `stop()`. */
export async function hostileAgent(c: Client, stats: Stats, list: Record<string, Attack>, offset: number, stop: () => boolean): Promise<void> {
  const names = Object.keys(list);
  for (let i = offset; !stop(); i++) {
    const name = names[i % names.length]!;
    const a = await list[name]!(c, stats);
    stats.attacks++;
    if (a.status < 300) bump(stats.hostileAccepted, name);
    else if (a.status < 500) bump(stats.refusals, `${a.status} ${variantOf(a)}`);
  }
}

/** Admin writer loop: owner writes every `everyMs`, and a deliberately invalid one that must be refused. */
export async function adminWriter(c: Client, stats: Stats, everyMs: number, stop: () => boolean): Promise<void> {
  const auth = { authorization: `Bearer ${c.adminToken}` };
  const rv = (values: Record<string, string[]>): string => JSON.stringify({ version: '0.1.0', type: 'sample', payload: Buffer.from(JSON.stringify(values)).toString('base64') });
  const ops: [string, () => Promise<Answer>, number][] = [
    ['put resource', () => call(c, stats, 'POST', `/kbs/v0/resource/soak/key/w${stats.adminWrites % 50}`, { headers: auth, body: Buffer.from(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' })) }), 200],
    ['set reference value', () => call(c, stats, 'POST', '/kbs/v0/reference-value', { headers: { ...auth, ...JSON_HEADERS }, body: rv({ [`soak_note_${stats.adminWrites % 20}`]: [String(Date.now())] }) }), 200],
    ['set repository policy', () => call(c, stats, 'POST', '/kbs/v0/resource-policy/soak', { headers: { ...auth, ...JSON_HEADERS }, body: JSON.stringify({ type: 'cel', policy: Buffer.from(JSON.stringify({ id: 'soak', type: 'cel', kind: 'resource', rule: 'ear.status == "affirming"' })).toString('base64url') }) }), 200],
    ['invalid reference value (must be refused)', () => call(c, stats, 'POST', '/kbs/v0/reference-value', { headers: { ...auth, ...JSON_HEADERS }, body: rv({ tpm_pcr07: ['not-hex'] }) }), 400],
    ['delete resource', () => call(c, stats, 'DELETE', `/kbs/v0/resource/soak/key/w${(stats.adminWrites + 25) % 50}`, { headers: auth }), -1],
    ['list resources', () => call(c, stats, 'GET', '/kbs/v0/resources/soak', { headers: auth }), 200],
  ];
  for (let i = 0; !stop(); i++) {
    const [name, op, want] = ops[i % ops.length]!;
    const a = await op();
    stats.adminWrites++;
    if (want === 400 && a.status === 400) bump(stats.refusals, `400 ${variantOf(a)} (invalid admin write)`);
    else if (want !== -1 && a.status !== want) stats.adminFailures.push(`${name}: ${a.status} ${a.text.slice(0, 120)}`);
    else if (want === -1 && a.status !== 204 && a.status !== 200 && a.status !== 404) stats.adminFailures.push(`${name}: ${a.status} ${a.text.slice(0, 120)}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
