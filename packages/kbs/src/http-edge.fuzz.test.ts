/**
 * The fuzzed HTTP edge (issue 12): fast-check properties that drive every endpoint of the KBS app
 * (`createApp`, wired as `main` wires it — real TPM appraiser with the identity, measured-boot, IMA
 * and tee-key extensions, Azure vTPM appraisers, CEL policies, audit trail, metrics, the console —
 * over the in-memory state and an embedded secret store in a temp dir; no network) with arbitrary
 * methods, paths, queries, headers, cookies, tokens and bodies, and with structured protocol and
 * admin bodies mutated from honest ones. A known secret is seeded. For every case:
 *  - no 5xx: nothing escapes as a 500 (and no error is logged), the memory state never answers 503;
 *  - every answer arrives within a bound (no hang);
 *  - the secret never appears in any answer (body or headers), in any encoding; a release (200 on
 *    the seeded resource) happens only for the genuinely attested, affirming session or token;
 *  - /attest accepts only unaltered honest evidence (no altered quote, signature, PCR, nonce or tee key);
 *  - error answers are Trustee `{"type","detail"}` bodies.
 * CI runs 200 cases per property; `pnpm fuzz` (scripts/fuzz.ts) runs them for as long as asked.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import fc from 'fast-check';
import { SignJWT, UnsecuredJWT, decodeJwt } from 'jose';
import { pino } from 'pino';
import type { Hono } from 'hono';
import { createEmbeddedStore, type SecretStore } from '@keyhold/kms-adapter';
import { createPolicyEngine } from '@keyhold/policy';
import { ERROR_TYPE_PREFIX, fitReportData, PROTOCOL_VERSION, runtimeDataDigest, TPM_REPORT_DATA_BYTES, type TeePubkey } from '@keyhold/protocol';
import { collectTpmEvidence, createSoftwareTpm, generateTeeKeyPair, loadOrCreateAk, tpm2bPublicToSpkiDer, type TpmDevice, type TpmKey } from '@keyhold/attestation-agent';
import { CONSOLE_ASSETS_DIR } from '@keyhold/console';
import type { KbsEnv } from './app-env.js';
import { createApp } from './app.js';
import { configuredAdminAuthorizer } from './admin/configured-authorizer.js';
import { DEFAULT_ADMIN_ROLES } from './admin-auth/acl.js';
import { cvmConfigFrom } from './attestation/az-vtpm/cvm-config.js';
import { openAzVtpmAppraisers } from './attestation/az-vtpm/open-az-vtpm.js';
import { celAttestationPolicy } from './attestation/cel-attestation-policy.js';
import type { TeeAppraiser } from './attestation/tee-appraiser.js';
import { IdentityExtension } from './attestation/tpm/identity-extension.js';
import { ImaExtension } from './attestation/tpm/ima-extension.js';
import { MeasuredBootExtension } from './attestation/tpm/measured-boot-extension.js';
import { TeeKeyResidencyExtension } from './attestation/tpm/tee-key-residency-extension.js';
import { TpmAppraiser } from './attestation/tpm/tpm-appraiser.js';
import { registerConsole } from './console/serve-console.js';
import { createMetrics } from './metrics/metrics.js';
import { celResourcePolicy } from './release/cel-resource-policy.js';
import { kmsResourceStore } from './release/kms-resource-store.js';
import { openMemoryState, openStateAuditLog } from './state/index.js';
import type { KbsState } from './state/ports.js';
import { EarSigner } from './token/ear-signer.js';

const SECRET = 'fuzz-seeded-secret-0b5e4f1d9a77';
const SECRET_PATH = 'default/key/seeded';
const SECRET_FORMS = [SECRET, Buffer.from(SECRET).toString('base64'), Buffer.from(SECRET).toString('base64url'), Buffer.from(SECRET).toString('hex')];
/** No single answer may take longer (a hang), generous for a loaded 2-core machine. */
const ANSWER_BOUND_MS = 10_000;

interface Kbs {
  readonly app: Hono<KbsEnv>;
  readonly adminToken: string;
  /** A genuine, affirming attestation of the software TPM: its token and its attested session. */
  readonly goodToken: string;
  readonly goodCookie: string;
  /** Tokens that must never release: forged, unsigned, altered, from another key. */
  readonly badTokens: readonly string[];
  /** Error-level log lines (an escaped exception is logged as one). */
  readonly errors: string[];
  readonly tpm: TpmDevice;
  readonly ak: TpmKey;
  close(): Promise<void>;
}

let ready: Promise<Kbs> | undefined;

async function honestAttestation(k: Pick<Kbs, 'tpm' | 'ak'>, nonce: string): Promise<Record<string, unknown>> {
  const teeKey = await generateTeeKeyPair('ec');
  const digest = runtimeDataDigest({ nonce, teePubkey: teeKey.publicJwk as TeePubkey, additionalEvidence: '' });
  const evidence = await collectTpmEvidence(k.tpm, k.ak, fitReportData(digest, TPM_REPORT_DATA_BYTES));
  return { 'runtime-data': { nonce, 'tee-pubkey': teeKey.publicJwk }, 'tee-evidence': { primary_evidence: evidence, additional_evidence: '' } };
}

const json = { 'content-type': 'application/json' };

async function startKbs(): Promise<Kbs> {
  const dir = await mkdtemp(join(tmpdir(), 'keyhold-http-fuzz-'));
  const state: KbsState = await openMemoryState({ sessionLimits: { maxSessions: 1_000_000, maxSessionBytes: 1 << 30 } });
  const store: SecretStore = await createEmbeddedStore({ backend: 'embedded', dir: join(dir, 'secrets') });
  const engine = createPolicyEngine({ store: state.policies });
  const admin = generateKeyPairSync('ed25519');
  const errors: string[] = [];
  const logger = pino({ level: 'error' }, new Writable({ write: (chunk: Buffer, _e, cb) => (errors.push(chunk.toString()), cb()) }));
  const measured = [
    new MeasuredBootExtension({ requireEventLog: false, allowSha1: false }),
    new ImaExtension({ checkpoints: state.imaCheckpoints, requireImaLog: false, allowSha1: false, allowViolations: false }),
  ];
  const identity = new IdentityExtension({ ekCa: state.ekCa, ekAllowlist: state.ekAllowlist, nodes: state.nodes, requireEkCertificate: false, requireEkAllowlist: false, trustedAkList: true, trustDomain: 'fuzz.example' });
  const tpmAppraiser = new TpmAppraiser({ trustedAkList: true, extensions: [identity, ...measured, new TeeKeyResidencyExtension()] });
  const cvm = await openAzVtpmAppraisers(cvmConfigFrom(undefined), measured);
  const signer = await EarSigner.create({ privateKey: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, issuer: 'keyhold-kbs', lifetimeMs: 600_000 });
  const app = createApp({
    state,
    sessionTtlMs: 600_000,
    signer,
    appraisers: new Map<string, TeeAppraiser>([[tpmAppraiser.tee, tpmAppraiser], ...cvm.map((a) => [a.tee, a] as const)]),
    attestationPolicy: celAttestationPolicy({ engine, store: state.policies }),
    resourcePolicy: celResourcePolicy(engine),
    resources: kmsResourceStore(store),
    adminAuth: configuredAdminAuthorizer({ identities: [{ name: 'root', role: 'admin', publicKeyPem: admin.publicKey.export({ type: 'spki', format: 'pem' }).toString() }], roles: DEFAULT_ADMIN_ROLES }),
    logger,
    maxBodyBytes: 1024 * 1024,
    build: 'fuzz',
    owners: { policies: engine, audit: await openStateAuditLog(state), metrics: createMetrics({ processMetrics: false }) },
  });
  registerConsole(app, { enabled: true, assetsDir: CONSOLE_ASSETS_DIR });
  const adminToken = await new SignJWT({ role: 'admin' }).setProtectedHeader({ alg: 'EdDSA', kid: 'root' }).setIssuedAt().setExpirationTime('2h').sign(admin.privateKey);
  const adminCall = async (method: string, path: string, body: string, headers: Record<string, string> = {}): Promise<void> => {
    const r = await app.request(path, { method, headers: { authorization: `Bearer ${adminToken}`, ...headers }, body });
    if (r.status !== 200) throw new Error(`fuzz set-up: ${method} ${path} answered ${r.status}: ${await r.text()}`);
  };

  // The node: a software TPM whose AK the owner trusts; the secret; one honest, affirming flow.
  const tpm = createSoftwareTpm();
  const ak = (await loadOrCreateAk(tpm, { persistentHandle: 0x81010002, persist: true })).ak;
  const akB64 = Buffer.from(tpm2bPublicToSpkiDer(ak.publicArea)).toString('base64');
  const rv = Buffer.from(JSON.stringify({ trusted_ak: [akB64] })).toString('base64');
  await adminCall('POST', '/kbs/v0/reference-value', JSON.stringify({ version: '0.1.0', type: 'sample', payload: rv }), json);
  await adminCall('POST', `/kbs/v0/resource/${SECRET_PATH}`, SECRET);
  const a = await app.request('/kbs/v0/auth', { method: 'POST', headers: json, body: JSON.stringify({ version: PROTOCOL_VERSION, tee: 'tpm', 'extra-params': {} }) });
  const goodCookie = /kbs-session-id=([0-9a-f]{32})/.exec(a.headers.get('set-cookie') ?? '')?.[1] ?? '';
  const { nonce } = (await a.json()) as { nonce: string };
  const att = await app.request('/kbs/v0/attest', { method: 'POST', headers: { ...json, cookie: `kbs-session-id=${goodCookie}` }, body: JSON.stringify(await honestAttestation({ tpm, ak }, nonce)) });
  if (att.status !== 200) throw new Error(`fuzz set-up: the honest flow was refused: ${await att.text()}`);
  const goodToken = ((await att.json()) as { token: string }).token;
  if ((decodeJwt(goodToken) as { submods?: { cpu0?: Record<string, unknown> } }).submods?.cpu0?.['ear.status'] !== 'affirming') throw new Error('fuzz set-up: the honest flow is not affirming');

  // The release property is not vacuous: the genuine token and session do get the secret (as a JWE).
  for (const h of [{ authorization: `Bearer ${goodToken}` }, { cookie: `kbs-session-id=${goodCookie}` }] as Record<string, string>[]) {
    const r = await app.request(`/kbs/v0/resource/${SECRET_PATH}`, { headers: h });
    const text = await r.text();
    if (r.status !== 200 || !text.includes('"ciphertext"') || text.includes(SECRET)) throw new Error(`fuzz set-up: the genuine release failed: ${r.status} ${text.slice(0, 200)}`);
  }

  // Forgeries of that token: unsigned, signed by another key, altered claims under the real signature.
  const claims = decodeJwt(goodToken);
  const [h, p, s] = goodToken.split('.') as [string, string, string];
  const altered = Buffer.from(JSON.stringify({ ...claims, exp: 9_999_999_999 })).toString('base64url');
  const badTokens = [
    new UnsecuredJWT(claims).encode(),
    await new SignJWT(claims).setProtectedHeader({ alg: 'ES256' }).sign(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey),
    `${h}.${altered}.${s}`,
    `${h}.${p}.${s.slice(0, -4)}AAAA`,
    `${h}.${p}`,
    adminToken,
  ];
  return {
    app,
    adminToken,
    goodToken,
    goodCookie,
    badTokens,
    errors,
    tpm,
    ak,
    async close() {
      await tpm.close();
      await state.close();
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function kbs(): Promise<Kbs> {
  ready ??= startKbs();
  return ready;
}

/** Called by scripts/fuzz-worker.ts (and vitest's afterAll) once the properties ran. */
export async function cleanup(): Promise<void> {
  if (ready !== undefined) await (await ready).close();
  ready = undefined;
}

interface Answer {
  status: number;
  text: string;
}

/** One request through the app, bounded in time; checks that hold for every answer. */
async function send(k: Kbs, path: string, init: RequestInit): Promise<Answer> {
  const before = k.errors.length;
  let timer: NodeJS.Timeout | undefined;
  const res = await Promise.race([
    k.app.request(path, init),
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`HANG: ${init.method ?? 'GET'} ${path.slice(0, 80)} took over ${ANSWER_BOUND_MS} ms`)), ANSWER_BOUND_MS))),
  ]).finally(() => clearTimeout(timer));
  const text = await res.text();
  const where = `${init.method ?? 'GET'} ${path.slice(0, 120)} → ${res.status}`;
  // SECURITY property: nothing escapes as a 500; the memory state never reports an outage.
  if (res.status >= 500) throw new Error(`${where}: ${text.slice(0, 300)}`);
  if (k.errors.length > before) throw new Error(`${where}: logged an error: ${k.errors.slice(before).join('').slice(0, 300)}`);
  // SECURITY property: the seeded secret never leaves in clear, in any encoding (body or headers).
  const headers = [...res.headers.entries()].map(([n, v]) => `${n}: ${v}`).join('\n');
  for (const f of SECRET_FORMS) if (text.includes(f) || headers.includes(f)) throw new Error(`${where}: the secret appears in the answer`);
  if (res.status >= 400 && path.startsWith('/kbs/') && init.method !== 'HEAD') {
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new Error(`${where}: error answer is not JSON: ${text.slice(0, 200)}`);
    }
    const b = body as { type?: unknown; detail?: unknown };
    if (typeof b.type !== 'string' || !b.type.startsWith(ERROR_TYPE_PREFIX) || typeof b.detail !== 'string') throw new Error(`${where}: error answer is not {"type","detail"}: ${text.slice(0, 200)}`);
  }
  return { status: res.status, text };
}

// ---- arbitraries ---------------------------------------------------------------------------------

const ROUTES = [
  '/healthz', '/metrics', '/console', '/console/', '/console/assets/app.js', '/.well-known/jwks.json', '/kbs/v0/token-jwks',
  '/kbs/v0/auth', '/kbs/v0/attest', `/kbs/v0/resource/${SECRET_PATH}`, '/kbs/v0/resource/default/key/other', '/kbs/v0/resource/fuzz/key/x',
  '/kbs/v0/reference-value', '/kbs/v0/reference-value/trusted_ak', '/kbs/v0/reference-value/tpm_pcr07',
  '/kbs/v0/admin/ek-allowlist', `/kbs/v0/admin/ek-allowlist/${'ab'.repeat(32)}`, '/kbs/v0/admin/nodes', `/kbs/v0/admin/nodes/${'cd'.repeat(32)}/revoke`,
  `/kbs/v0/admin/nodes/${'cd'.repeat(32)}`, '/kbs/v0/admin/ek-ca', `/kbs/v0/admin/ek-ca/${'ef'.repeat(32)}`,
  '/kbs/v0/attestation-policy', '/kbs/v0/attestation-policy/default', '/kbs/v0/resource-policy', '/kbs/v0/resource-policy/fuzz',
  '/kbs/v0/resource-policy/fuzz/versions', '/kbs/v0/resource-policy/fuzz/test', '/kbs/v0/policies', '/kbs/v0/policy-versions', '/kbs/v0/policy-test',
  '/kbs/v0/admin/health', '/kbs/v0/resources', '/kbs/v0/resources/default', `/kbs/v0/resources/${SECRET_PATH}`, '/kbs/v0/audit',
];
const hostileSegment = fc.oneof(
  fc.constantFrom('..', '%2e%2e', '%2F', '.', '', '%00', '%ff', '~', 'a'.repeat(300), '${x}', '{kh:refs}', '*', '%', ' ', '\u00e9', 'seeded%2F..%2F..'),
  fc.string({ maxLength: 12 }),
);
const path = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...ROUTES) },
  {
    weight: 4,
    arbitrary: fc.tuple(fc.constantFrom(...ROUTES), fc.nat(), hostileSegment, fc.boolean()).map(([r, at, seg, replace]) => {
      const parts = r.split('/');
      const i = 1 + (at % Math.max(1, parts.length - 1));
      if (replace) parts[i] = seg;
      else parts.splice(i, 0, seg);
      return parts.join('/');
    }),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 60 }).map((s) => `/${s}`) },
);
const query = fc.oneof(
  { weight: 3, arbitrary: fc.constant('') },
  fc.constantFrom('?version=1', '?version=0', '?version=999999999999', '?version=-1', '?version=1e3', '?generate=32', '?generate=99999999', '?rotate=1', '?limit=-5', '?since=24h', '?kind=attest', '?repository=../x', '?state=x&state=y'),
  fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 16 }), { maxKeys: 3 }).map((d) => `?${new URLSearchParams(d).toString()}`),
);

/** Authorization values: none, the real admin and attestation tokens, forgeries, garbage (resolved against the running KBS). */
type AuthPick = { readonly kind: 'none' } | { readonly kind: 'known'; readonly i: number } | { readonly kind: 'bearer'; readonly s: string } | { readonly kind: 'raw'; readonly s: string };
const authPick: fc.Arbitrary<AuthPick> = fc.oneof(
  fc.constant({ kind: 'none' as const }),
  fc.nat().map((i) => ({ kind: 'known' as const, i })),
  fc.string({ maxLength: 40 }).map((s) => ({ kind: 'bearer' as const, s })),
  fc.string({ maxLength: 40 }).map((s) => ({ kind: 'raw' as const, s })),
);
function authorization(k: Kbs, a: AuthPick): string | undefined {
  if (a.kind === 'none') return undefined;
  if (a.kind === 'bearer' || a.kind === 'raw') return a.kind === 'bearer' ? `Bearer ${a.s}` : a.s;
  const known = [`Bearer ${k.adminToken}`, `Bearer ${k.goodToken}`, ...k.badTokens.map((t) => `Bearer ${t}`), 'Bearer', 'Basic YTpi', `bearer  ${k.goodToken} x`];
  return known[a.i % known.length];
}
type CookiePick = { readonly kind: 'none' } | { readonly kind: 'known'; readonly i: number } | { readonly kind: 'raw'; readonly s: string };
const cookiePick: fc.Arbitrary<CookiePick> = fc.oneof(
  fc.constant({ kind: 'none' as const }),
  fc.nat().map((i) => ({ kind: 'known' as const, i })),
  fc.string({ maxLength: 40 }).map((s) => ({ kind: 'raw' as const, s })),
);
function cookie(k: Kbs, c: CookiePick): string | undefined {
  if (c.kind === 'none') return undefined;
  if (c.kind === 'raw') return `kbs-session-id=${c.s}`;
  const known = [`kbs-session-id=${k.goodCookie}`, `kbs-session-id=${'0'.repeat(32)}`, `kbs-session-id=${k.goodCookie}; kbs-session-id=${'1'.repeat(32)}`, 'kbs-session-id=', 'kbs-session-id=../../x'];
  return known[c.i % known.length];
}
const contentType = fc.oneof(
  fc.constant(undefined),
  fc.constantFrom('application/json', 'application/json; charset=utf-8', 'application/vnd.x+json', 'text/plain', 'application/octet-stream', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'APPLICATION/JSON'),
  fc.string({ maxLength: 30 }),
);
const body = fc.oneof(
  fc.constant(undefined),
  fc.string({ maxLength: 200 }),
  fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
  fc.uint8Array({ maxLength: 300 }),
  fc.constantFrom('{', '[]', 'null', '"x"', '{"version":"0.4.0"}', `{"version":"${PROTOCOL_VERSION}","tee":"tpm"}`, '\u0000\u0000', 'x'.repeat(70_000)),
);
const headerName = fc.stringMatching(/^[a-z][a-z0-9-]{0,15}$/).filter((n) => !['content-length', 'transfer-encoding', 'host', 'connection'].includes(n));
const extraHeaders = fc.dictionary(headerName, fc.stringMatching(/^[\x20-\x7e]{0,40}$/), { maxKeys: 3 });
const method = fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'PATCH', 'OPTIONS');

/** A request URL, or undefined when the text is not one a client could send (the server never sees it). */
function urlOf(p: string, q: string): string | undefined {
  try {
    const u = new URL(`${p}${q}`, 'http://kbs');
    return u.host === 'kbs' ? `${u.pathname}${u.search}` : undefined;
  } catch {
    return undefined;
  }
}

/** Whether `auth`/`cookie` carry the genuine affirming attestation (the only ones that may release). */
function genuine(k: Kbs, auth: string | undefined, c: string | undefined): boolean {
  const bearer = auth !== undefined && /^Bearer\s+([A-Za-z0-9_.-]+)$/i.exec(auth.trim())?.[1] === k.goodToken;
  return bearer || (auth === undefined && c !== undefined && c.startsWith(`kbs-session-id=${k.goodCookie}`));
}

// ---- mutations of honest /attest bodies -----------------------------------------------------------

type Mutation = 'none' | 'message' | 'signature' | 'pcr' | 'nonce' | 'tee-key' | 'ak' | 'evidence-json' | 'extra-field';
const mutation = fc.constantFrom<Mutation>('none', 'message', 'signature', 'pcr', 'nonce', 'tee-key', 'ak', 'evidence-json', 'extra-field');

function flipBase64(b64: string, at: number, bit: number): string {
  const bytes = Buffer.from(b64, 'base64');
  bytes[at % bytes.length]! ^= 1 << (bit % 8);
  return bytes.toString('base64');
}

function mutate(honest: Record<string, any>, m: Mutation, at: number, bit: number, junk: unknown): Record<string, any> {
  const b = structuredClone(honest);
  const ev = b['tee-evidence'].primary_evidence;
  switch (m) {
    case 'message':
      ev.tpm_quote.message = flipBase64(ev.tpm_quote.message, at, bit);
      break;
    case 'signature':
      ev.tpm_quote.signature = flipBase64(ev.tpm_quote.signature, at, bit);
      break;
    case 'pcr': {
      const i = at % ev.tpm_quote.pcrs.length;
      ev.tpm_quote.pcrs[i] = Buffer.from(flipBase64(Buffer.from(ev.tpm_quote.pcrs[i], 'hex').toString('base64'), at >> 5, bit), 'base64').toString('hex');
      break;
    }
    case 'nonce':
      b['runtime-data'].nonce = flipBase64(b['runtime-data'].nonce, at, bit);
      break;
    case 'tee-key':
      b['runtime-data']['tee-pubkey'].x = Buffer.from(flipBase64(Buffer.from(b['runtime-data']['tee-pubkey'].x, 'base64url').toString('base64'), at, bit), 'base64').toString('base64url');
      break;
    case 'ak':
      ev.ak_public = flipBase64(ev.ak_public, at, bit);
      break;
    case 'evidence-json':
      b['tee-evidence'].primary_evidence = junk;
      break;
    case 'extra-field':
      ev.tpm_quote = { ...ev.tpm_quote, message: ev.tpm_quote.signature };
      break;
    case 'none':
      break;
  }
  return b;
}

// ---- properties -----------------------------------------------------------------------------------

/** What `pnpm fuzz` (scripts/fuzz.ts) runs for as long as asked, and vitest 200 cases of. */
export type FuzzProperty = { readonly name: string; readonly property: fc.IRawProperty<any, boolean> };

export const properties: readonly FuzzProperty[] = [
  {
    name: 'kbs http: any method, path, query, headers, cookie, token and body — no 5xx, no hang, no secret, releases only to the genuine attestation',
    property: fc.asyncProperty(method, path, query, authPick, cookiePick, contentType, extraHeaders, body, async (m, p, q, ap, cp, ct, extra, b) => {
      const k = await kbs();
      const url = urlOf(p, q);
      if (url === undefined) return true;
      const auth = authorization(k, ap);
      const c = cookie(k, cp);
      const headers: Record<string, string> = { ...extra };
      if (ct !== undefined) headers['content-type'] = ct;
      if (auth !== undefined) headers['authorization'] = auth;
      if (c !== undefined) headers['cookie'] = c;
      const withBody = m !== 'GET' && m !== 'HEAD' && b !== undefined;
      let a: Answer;
      try {
        a = await send(k, url, { method: m, headers, ...(withBody ? { body: b } : {}) });
      } catch (err) {
        // Header values the fetch API itself refuses never reach a server.
        if (err instanceof TypeError && /header|ByteString|invalid/i.test(err.message)) return true;
        throw err;
      }
      // SECURITY property: the seeded secret is released only to the genuinely attested session or token.
      if (m === 'GET' && a.status === 200 && url.startsWith(`/kbs/v0/resource/${SECRET_PATH}`) && !genuine(k, auth, c)) {
        throw new Error(`released ${url} to a request without the genuine attestation (authorization ${String(auth).slice(0, 40)}, cookie ${String(c).slice(0, 50)})`);
      }
      return true;
    }),
  },
  {
    name: 'kbs http: /auth bodies (versions, tees, identities, hash lists) — no 5xx, bounded, typed errors',
    property: fc.asyncProperty(
      fc.oneof(fc.constant(PROTOCOL_VERSION), fc.string({ maxLength: 10 })),
      fc.oneof(fc.constantFrom('tpm', 'az-snp-vtpm', 'az-tdx-vtpm', 'sample', 'TPM', ''), fc.string({ maxLength: 10 })),
      fc.oneof(
        fc.record({ 'tpm-identity': fc.record({ ek_tpm2b_public: fc.base64String({ maxLength: 800 }), ak_tpm2b_public: fc.base64String({ maxLength: 800 }), ek_cert: fc.option(fc.base64String({ maxLength: 400 }), { nil: undefined }) }, { requiredKeys: [] }) }),
        fc.record({ 'supported-hash-algorithms': fc.array(fc.oneof(fc.constantFrom('sha256', 'sha384', 'sha512', 'SHA384', 'md5'), fc.jsonValue()), { maxLength: 4 }) }),
        fc.jsonValue({ maxDepth: 3 }),
        fc.string({ maxLength: 30 }),
      ),
      async (version, tee, extra) => {
        const k = await kbs();
        const a = await send(k, '/kbs/v0/auth', { method: 'POST', headers: json, body: JSON.stringify({ version, tee, 'extra-params': extra }) });
        if (a.status === 200 && (version !== PROTOCOL_VERSION || !['tpm', 'az-snp-vtpm', 'az-tdx-vtpm'].includes(tee))) throw new Error(`/auth accepted version ${version} tee ${tee}`);
        return true;
      },
    ),
  },
  {
    name: 'kbs http: /attest with honest evidence mutated (quote, signature, PCR, nonce, tee key, AK, evidence shape) — only the unaltered one is accepted',
    property: fc.asyncProperty(mutation, fc.nat(), fc.nat(7), fc.jsonValue({ maxDepth: 3 }), async (m, at, bit, junk) => {
      const k = await kbs();
      const a = await k.app.request('/kbs/v0/auth', { method: 'POST', headers: json, body: JSON.stringify({ version: PROTOCOL_VERSION, tee: 'tpm', 'extra-params': {} }) });
      const session = /kbs-session-id=([0-9a-f]{32})/.exec(a.headers.get('set-cookie') ?? '')?.[1];
      const { nonce } = (await a.json()) as { nonce: string };
      const attestation = mutate(await honestAttestation(k, nonce), m, at, bit, junk);
      const r = await send(k, '/kbs/v0/attest', { method: 'POST', headers: { ...json, cookie: `kbs-session-id=${session}` }, body: JSON.stringify(attestation) });
      // SECURITY property: altered evidence never yields a token (forgery, replay, substitution).
      if (r.status === 200 && m !== 'none') throw new Error(`/attest accepted evidence with an altered ${m}`);
      return true;
    }),
  },
  {
    name: 'kbs http: admin bodies (reference values, policies, EK allowlist and CAs, resources) with a valid admin token — no 5xx, bounded',
    property: fc.asyncProperty(
      fc.oneof(
        fc
          .dictionary(fc.oneof(fc.constantFrom('tpm_pcr07', 'tpm_pcr7', 'pcr23', 'tpm_pcr24', 'tpm_measured_boot', 'tpm_runtime_policy', 'fuzz_name'), fc.string({ maxLength: 12 })), fc.array(fc.oneof(fc.string({ maxLength: 40 }), fc.stringMatching(/^[0-9a-f]{40,128}$/), fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v))), { maxLength: 3 }), { maxKeys: 3 })
          .map((d) => ['POST', '/kbs/v0/reference-value', JSON.stringify({ version: '0.1.0', type: 'sample', payload: Buffer.from(JSON.stringify(d)).toString('base64') })] as const),
        fc.jsonValue({ maxDepth: 4 }).map((d) => ['POST', '/kbs/v0/attestation-policy', JSON.stringify(d)] as const),
        fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.record({ id: fc.string({ maxLength: 10 }), type: fc.constant('cel'), kind: fc.constant('resource'), rule: fc.string({ maxLength: 60 }) })).map((d) => ['POST', '/kbs/v0/resource-policy/fuzz', JSON.stringify(d)] as const),
        fc.jsonValue({ maxDepth: 2 }).map((d) => ['POST', '/kbs/v0/admin/ek-allowlist', JSON.stringify(d)] as const),
        fc.string({ maxLength: 300 }).map((d) => ['POST', '/kbs/v0/admin/ek-ca', d] as const),
        fc.string({ maxLength: 300 }).map((d) => ['POST', '/kbs/v0/policy-test', d] as const),
        fc.uint8Array({ maxLength: 200 }).map((d) => ['POST', '/kbs/v0/resource/fuzz/key/x', Buffer.from(d).toString('latin1')] as const),
      ),
      async ([m, p, b]) => {
        const k = await kbs();
        await send(k, p, { method: m, headers: { ...json, authorization: `Bearer ${k.adminToken}` }, body: b });
        return true;
      },
    ),
  },
];

if (process.env['VITEST'] !== undefined) {
  const { afterAll, describe, it } = await import('vitest');
  describe('fuzz: the KBS HTTP edge', () => {
    afterAll(cleanup);
    for (const p of properties) it(p.name, { timeout: 120_000 }, () => fc.assert(p.property, { numRuns: 200 }));
  });
}
