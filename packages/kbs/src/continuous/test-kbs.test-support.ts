/**
 * An in-process KBS with continuous attestation wired as `main` wires it (state, event publisher,
 * node CA), and software-TPM nodes trusted through the owner's `trusted_ak` list, for the route
 * tests of issue 13. Test support only: not exported, not built.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { SignJWT } from 'jose';
import { pino } from 'pino';
import { fitReportData, runtimeDataDigest, type TeePubkey } from '@keyhold/protocol';
import { collectTpmEvidence, createSoftwareTpm, generateTeeKeyPair, loadOrCreateAk, type TpmDevice, type TpmKey } from '@keyhold/attestation-agent';
import { configuredAdminAuthorizer } from '../admin/configured-authorizer.js';
import type { AdminRoleConfig } from '../admin-auth/acl.js';
import { DEFAULT_ADMIN_ROLES } from '../admin-auth/acl.js';
import type { KbsDeps } from '../app-env.js';
import { createApp } from '../app.js';
import { defaultAttestationPolicy } from '../attestation/attestation-policy.js';
import type { TpmExtension } from '../attestation/tpm/tpm-extension.js';
import { TpmAppraiser, TRUSTED_AK_REFERENCE } from '../attestation/tpm/tpm-appraiser.js';
import { createAuditLog, type AuditLog } from '../audit/audit-log.js';
import { openNodeCaProvider } from '../node-ca/node-ca-provider.js';
import { EventPublisher } from '../notify/event-publisher.js';
import { affirmingResourcePolicy, type ResourcePolicy } from '../release/resource-policy.js';
import type { ResourceStore } from '../release/resource-store.js';
import { openMemoryState } from '../state/index.js';
import type { KbsState } from '../state/ports.js';
import { EarSigner } from '../token/ear-signer.js';
import { DEFAULT_CONTINUOUS, type ContinuousSettings } from './continuous-config.js';
import { akNodeId } from './node-identity.js';
import { NodeRecordCache } from './record-attestation.js';

export const SECRET_TEXT = 'continuous-test-secret-value';

export interface TestKbs {
  readonly app: ReturnType<typeof createApp>;
  readonly deps: KbsDeps;
  readonly state: KbsState;
  readonly events: EventPublisher;
  readonly audit: AuditLog;
  readonly signingKey: KeyObject;
  /** A signed admin token for identity `name` (roles: admin, plus those given), valid `ttlSec`. */
  adminToken(name?: string, ttlSec?: number): Promise<string>;
  /** The test clock (ms); `advance` moves it. */
  now(): number;
  advance(ms: number): void;
  close(): Promise<void>;
}

export interface TestKbsOptions {
  readonly state?: KbsState;
  readonly settings?: Partial<ContinuousSettings>;
  readonly extensions?: readonly TpmExtension[];
  readonly resourcePolicy?: ResourcePolicy;
  /** Extra admin identities: name → role (each gets its own Ed25519 key). */
  readonly identities?: Readonly<Record<string, string>>;
  readonly roles?: Readonly<Record<string, AdminRoleConfig>>;
  readonly sseHeartbeatMs?: number;
  readonly signingKey?: KeyObject;
  readonly trustDomain?: string;
}

export async function testKbs(o: TestKbsOptions = {}): Promise<TestKbs> {
  let offset = 0;
  const now = (): number => Date.now() + offset;
  const state = o.state ?? (await openMemoryState({ sessionLimits: { maxSessions: 1000, maxSessionBytes: 64 << 20 } }));
  const signingKey = o.signingKey ?? generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const audit = await createAuditLog({ sink: state.audit });
  const keys = new Map<string, KeyObject>();
  const identities: { name: string; role: string; publicKeyPem: string }[] = [];
  for (const [name, role] of Object.entries({ root: 'admin', ...(o.identities ?? {}) })) {
    const k = generateKeyPairSync('ed25519');
    keys.set(name, k.privateKey);
    identities.push({ name, role, publicKeyPem: k.publicKey.export({ format: 'pem', type: 'spki' }) as string });
  }
  const events = new EventPublisher({ events: state.events, replica: 'test-replica', durable: () => true });
  const settings: ContinuousSettings = { ...DEFAULT_CONTINUOUS, ...(o.settings ?? {}) };
  const trustDomain = o.trustDomain ?? 'example.org';
  const secret = new TextEncoder().encode(SECRET_TEXT);
  const resources: ResourceStore = {
    get: async () => secret,
    put: async () => ({ version: 1 }),
    delete: async () => true,
    generate: async () => ({ version: 1 }),
    rotate: async () => ({ version: 2 }),
  };
  const tpm = new TpmAppraiser({ trustedAkList: true, extensions: [...(o.extensions ?? [])] });
  const deps: KbsDeps = {
    state,
    sessionTtlMs: 60_000,
    signer: await EarSigner.create({ privateKey: signingKey, issuer: 'test', lifetimeMs: 5 * 60_000 }),
    appraisers: new Map([[tpm.tee, tpm]]),
    attestationPolicy: defaultAttestationPolicy,
    resourcePolicy: o.resourcePolicy ?? affirmingResourcePolicy,
    resources,
    adminAuth: configuredAdminAuthorizer({ identities, roles: { ...DEFAULT_ADMIN_ROLES, ...(o.roles ?? {}) } }),
    logger: pino({ level: 'silent' }),
    maxBodyBytes: 1024 * 1024,
    build: 'test',
    owners: { audit },
    continuous: {
      settings,
      trustDomain,
      events,
      nodeCache: new NodeRecordCache(),
      nodeCa: await openNodeCaProvider({ config: { files: undefined, ttlMs: 3600_000 }, state: state.nodeCa, signingKey, trustDomain }),
      ...(o.sseHeartbeatMs !== undefined ? { sseHeartbeatMs: o.sseHeartbeatMs } : {}),
    },
    now,
  };
  return {
    app: createApp(deps),
    deps,
    state,
    events,
    audit,
    signingKey,
    async adminToken(name = 'root', ttlSec = 300) {
      const key = keys.get(name);
      if (key === undefined) throw new TypeError(`no admin identity ${name}`);
      return new SignJWT({}).setProtectedHeader({ alg: 'EdDSA', kid: name }).setExpirationTime(Math.floor(Date.now() / 1000) + ttlSec).sign(key);
    },
    now,
    advance(ms) {
      offset += ms;
    },
    async close() {
      await events.close();
      if (o.state === undefined) await state.close();
    },
  };
}

export interface SoftwareNode {
  readonly tpm: TpmDevice;
  readonly ak: TpmKey;
  /** Standard base64 of the AK's DER SPKI (what `trusted_ak` lists). */
  readonly akPublic: string;
  readonly nodeId: string;
}

/** A software-TPM node whose AK the owner lists in `trusted_ak` (added to the KBS's references). */
export async function trustedAkNode(kbs: Pick<TestKbs, 'state'>): Promise<SoftwareNode> {
  const tpm = createSoftwareTpm();
  const { ak } = await loadOrCreateAk(tpm, { persistentHandle: 0x81010002, persist: true });
  const ev = await collectTpmEvidence(tpm, ak, new Uint8Array(32));
  const listed = (await kbs.state.referenceValues.snapshot()).get(TRUSTED_AK_REFERENCE) ?? [];
  await kbs.state.referenceValues.set({ [TRUSTED_AK_REFERENCE]: [...listed, ev.ak_public] });
  return { tpm, ak, akPublic: ev.ak_public, nodeId: akNodeId(new Uint8Array(Buffer.from(ev.ak_public, 'base64'))) };
}

export interface FlowResult {
  readonly status: number;
  readonly token?: string;
  readonly cookie?: string;
  readonly type?: string;
  readonly detail?: string;
}

const typeTail = (t: unknown): string | undefined => (typeof t === 'string' ? t.split('/').pop() : undefined);

/** /auth then /attest for `node`, with optional additional evidence and extra evidence members. */
export async function attest(kbs: Pick<TestKbs, 'app'>, node: SoftwareNode, o: { additionalEvidence?: string; evidence?: Record<string, unknown> } = {}): Promise<FlowResult> {
  const a = await kbs.app.request('/kbs/v0/auth', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ version: '0.4.0', tee: 'tpm', 'extra-params': '' }) });
  const ch = (await a.json()) as { nonce: string; type?: string; detail?: string };
  if (a.status !== 200) return { status: a.status, ...(ch.type !== undefined ? { type: typeTail(ch.type)! } : {}), ...(ch.detail !== undefined ? { detail: ch.detail } : {}) };
  const cookie = /kbs-session-id=([^;]+)/.exec(a.headers.get('set-cookie') ?? '')?.[1];
  const teeKey = await generateTeeKeyPair('ec');
  const additionalEvidence = o.additionalEvidence ?? '';
  const digest = runtimeDataDigest({ nonce: ch.nonce, teePubkey: teeKey.publicJwk as TeePubkey, additionalEvidence });
  const evidence = { ...(o.evidence ?? {}), ...(await collectTpmEvidence(node.tpm, node.ak, fitReportData(digest, 32))) };
  const t = await kbs.app.request('/kbs/v0/attest', {
    method: 'POST',
    headers: { 'content-type': 'application/json', cookie: `kbs-session-id=${cookie}` },
    body: JSON.stringify({ 'runtime-data': { nonce: ch.nonce, 'tee-pubkey': teeKey.publicJwk }, 'tee-evidence': { primary_evidence: evidence, additional_evidence: additionalEvidence } }),
  });
  const body = (await t.json()) as { token?: string; type?: string; detail?: string };
  return {
    status: t.status,
    ...(cookie !== undefined ? { cookie } : {}),
    ...(body.token !== undefined ? { token: body.token } : {}),
    ...(body.type !== undefined ? { type: typeTail(body.type)! } : {}),
    ...(body.detail !== undefined ? { detail: body.detail } : {}),
  };
}

/** GET a resource with a bearer token or a session cookie. */
export async function getResource(kbs: Pick<TestKbs, 'app'>, auth: { token?: string; cookie?: string }, path = 'default/key/x'): Promise<FlowResult & { body: string }> {
  const headers: Record<string, string> = {};
  if (auth.token !== undefined) headers['authorization'] = `Bearer ${auth.token}`;
  if (auth.cookie !== undefined) headers['cookie'] = `kbs-session-id=${auth.cookie}`;
  const r = await kbs.app.request(`/kbs/v0/resource/${path}`, { headers });
  const body = await r.text();
  let type: string | undefined;
  try {
    type = typeTail((JSON.parse(body) as { type?: string }).type);
  } catch {
    type = undefined;
  }
  return { status: r.status, body, ...(type !== undefined ? { type } : {}) };
}

/** A parsed JSON answer (tests read members freely). */
type Json = ReturnType<typeof JSON.parse>;

/** An admin call with a JSON answer. */
export async function adminCall(kbs: TestKbs, method: string, path: string, o: { token?: string; body?: unknown } = {}): Promise<{ status: number; json: Json; type: string | undefined }> {
  const headers: Record<string, string> = { authorization: `Bearer ${o.token ?? (await kbs.adminToken())}` };
  if (o.body !== undefined) headers['content-type'] = 'application/json';
  const r = await kbs.app.request(path, { method, headers, ...(o.body !== undefined ? { body: JSON.stringify(o.body) } : {}) });
  const text = await r.text();
  const json: Json = text === '' ? undefined : JSON.parse(text);
  return { status: r.status, json, type: typeTail(json?.type) };
}
