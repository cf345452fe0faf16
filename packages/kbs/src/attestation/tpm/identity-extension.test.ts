import { execFile } from 'node:child_process';
import { createHash, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSoftwareTpm, IdentityContributor, loadOrCreateAk, TpmAttester, type TpmDevice, type TpmKey } from '@keyhold/attestation-agent';
import { ekHash, parseTpm2bPublic, tpmPublicToSpkiDer } from '@keyhold/verifier';
import { KbsError } from '../../errors.js';
import { revokeNode, unbanNode } from '../../identity/node-records.js';
import { newSession } from '../../session/new-session.js';
import { openMemoryState } from '../../state/index.js';
import type { KbsState } from '../../state/ports.js';
import { IdentityExtension, type IdentityExtensionOptions } from './identity-extension.js';
import { TpmAppraiser, TRUSTED_AK_REFERENCE } from './tpm-appraiser.js';

const run = promisify(execFile);
const EK_CERT_RSA = 0x01c00002;

interface Node {
  tpm: TpmDevice;
  ak: TpmKey;
  contributor: IdentityContributor;
  attester: TpmAttester;
  ekHash: string;
}

const ekKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;

async function makeNode(opts: { ek?: KeyObject; nv?: Map<number, Uint8Array>; akHandle?: number; tpm?: TpmDevice } = {}): Promise<Node> {
  const tpm = opts.tpm ?? createSoftwareTpm({ ekKeys: { rsa: opts.ek ?? ekKey }, ...(opts.nv !== undefined ? { nv: opts.nv } : {}) });
  const { ak } = await loadOrCreateAk(tpm, { persistentHandle: opts.akHandle ?? 0x81010002, persist: true });
  const contributor = new IdentityContributor({ tpm, ak });
  const wire = (await contributor.requestExtraParams())['tpm-identity'] as { ek_tpm2b_public: string };
  const hash = ekHash(tpmPublicToSpkiDer(parseTpm2bPublic(Buffer.from(wire.ek_tpm2b_public, 'base64'))));
  return { tpm, ak, contributor, attester: new TpmAttester(tpm, ak, [contributor]), ekHash: hash };
}

let dir: string;
const states: KbsState[] = [];

interface Kbs {
  readonly ext: IdentityExtension;
  /** A memory-only state (the embedded backend's code paths without files): sessions, nodes, allowlist, CA store. */
  readonly state: KbsState;
}

type ExtensionOverrides = Partial<Omit<IdentityExtensionOptions, 'ekCa' | 'ekAllowlist' | 'nodes'>> & { readonly caPem?: string };

async function extension(o: ExtensionOverrides = {}): Promise<Kbs> {
  const state = await openMemoryState({ sessionLimits: { maxSessions: 1000, maxSessionBytes: 16 * 1024 * 1024 } });
  states.push(state);
  const { caPem, ...opts } = o;
  if (caPem !== undefined) await state.ekCa.add(new TextEncoder().encode(caPem));
  const ext = new IdentityExtension({
    ekCa: state.ekCa,
    ekAllowlist: state.ekAllowlist,
    nodes: state.nodes,
    requireEkCertificate: false,
    requireEkAllowlist: false,
    trustedAkList: true,
    trustDomain: 'example.org',
    ...opts,
  });
  return { ext, state };
}

async function nodeIds(state: KbsState): Promise<string[]> {
  return (await state.nodes.list()).nodes.map((n) => n.nodeId);
}

type Mutate = (v: Record<string, unknown>) => Record<string, unknown>;

/**
 * One KBS handshake through the real TpmAppraiser and the state's session store: /auth challenge
 * (stored with the session), agent evidence, nonce consumed, /attest appraisal.
 */
async function handshake(
  kbs: Kbs,
  node: Node,
  o: { trustedAk?: string[]; extra?: Mutate; evidence?: Mutate; stored?: Mutate; between?: () => Promise<void>; attester?: TpmAttester; trustedAkList?: boolean } = {},
) {
  const { ext, state } = kbs;
  if (o.trustedAk !== undefined) await state.referenceValues.set({ [TRUSTED_AK_REFERENCE]: o.trustedAk });
  const attester = o.attester ?? node.attester;
  const appraiser = new TpmAppraiser({ trustedAkList: o.trustedAkList ?? true, extensions: [ext] });
  const extra = await attester.requestExtraParams();
  const challenge = await appraiser.challenge({ tee: 'tpm', extraParams: o.extra ? o.extra(extra) : extra, references: () => state.referenceValues.snapshot(), now: new Date() });
  const stored = challenge.state !== undefined && o.stored !== undefined ? o.stored(challenge.state) : challenge.state;
  const created = newSession({ tee: 'tpm', hashAlgorithm: 'sha384', ttlMs: 60_000, nowMs: Date.now(), ...(stored !== undefined ? { challenge: stored } : {}) });
  await state.sessions.create(created);
  const challengeExtra = challenge.extraParams ?? {};
  await o.between?.();
  const reportData = new Uint8Array(randomBytes(32));
  const { primary } = await attester.evidence({ nonce: created.nonce, teePubkey: {} as never, reportData, hashAlgorithm: 'sha384', challengeExtra });
  const evidence = o.evidence ? o.evidence(primary as Record<string, unknown>) : primary;
  const session = await state.sessions.consumeNonce(created.id);
  const appraisal = await appraiser.appraise({ evidence, expectedReportData: reportData, session, references: await state.referenceValues.snapshot(), now: new Date() });
  return { challengeExtra, appraisal, stored: (await state.sessions.get(created.id)).challenge };
}

async function refusal(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(KbsError);
  return { code: (err as KbsError).code, message: (err as KbsError).message };
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'keyhold-identity-ext-'));
});

afterAll(async () => {
  for (const s of states) await s.close();
  await rm(dir, { recursive: true, force: true });
});

describe('credential activation and enrolment (EK trusted by the allowlist)', () => {
  it('activates once, binds AK → EK, then skips activation for the same AK and re-activates a changed AK', async () => {
    const node = await makeNode();
    const kbs = await extension();
    await kbs.state.ekAllowlist.add(node.ekHash);

    const first = await handshake(kbs, node);
    expect(Object.keys(first.challengeExtra)).toEqual(['tpm-credential']);
    expect(first.appraisal.teeClaims['credential_activation']).toBe('performed');
    expect(first.appraisal.teeClaims['ek_trust']).toBe('allowlist');
    expect(first.appraisal.extra).toEqual({ node_id: node.ekHash, spiffe_id: `spiffe://example.org/keyhold/node/tpm/${node.ekHash}`, ek_trust: 'allowlist' });
    expect(first.appraisal.vector['instance-identity']).toBe(2);
    expect(first.appraisal.vector.hardware).toBeUndefined();
    const rec = await kbs.state.nodes.get(node.ekHash);
    expect(rec?.akName).toBe(Buffer.from(node.ak.name).toString('hex'));

    const second = await handshake(kbs, node);
    expect(second.challengeExtra).toEqual({});
    expect(second.appraisal.teeClaims['credential_activation']).toBe('enrolled');

    // Same TPM (same EK), new AK: activation again, and the record now names the new AK.
    const changed = await makeNode({ tpm: node.tpm, akHandle: 0x81010003 });
    const third = await handshake(kbs, changed);
    expect(Object.keys(third.challengeExtra)).toEqual(['tpm-credential']);
    expect(third.appraisal.teeClaims['credential_activation']).toBe('performed');
    expect((await kbs.state.nodes.get(node.ekHash))?.akName).toBe(Buffer.from(changed.ak.name).toString('hex'));
    // The old AK is no longer bound: it must activate again.
    expect(Object.keys((await handshake(kbs, node)).challengeExtra)).toEqual(['tpm-credential']);
  });

  it('refuses a wrong or missing activation answer and enrols nothing', async () => {
    const node = await makeNode({ ek: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey });
    const kbs = await extension();
    await kbs.state.ekAllowlist.add(node.ekHash);
    const wrong = await refusal(handshake(kbs, node, { evidence: (e) => ({ ...e, activated_credential: randomBytes(32).toString('base64') }) }));
    expect(wrong).toMatchObject({ code: 'ATTESTATION_FAILED' });
    expect(wrong.message).toMatch(/^CREDENTIAL_ACTIVATION_FAILED/);
    const short = await refusal(handshake(kbs, node, { evidence: (e) => ({ ...e, activated_credential: randomBytes(31).toString('base64') }) }));
    expect(short.message).toMatch(/^CREDENTIAL_ACTIVATION_FAILED/);
    const missing = await refusal(handshake(kbs, node, { evidence: ({ activated_credential: _, ...e }) => e }));
    expect(missing.message).toMatch(/^CREDENTIAL_ACTIVATION_FAILED/);
    expect(await nodeIds(kbs.state)).toEqual([]);
  });

  it('refuses a quote signed by another key than the AK named (and activated) at /auth', async () => {
    const node = await makeNode();
    const other = await makeNode({ tpm: node.tpm, akHandle: 0x81010004 });
    const kbs = await extension();
    await kbs.state.ekAllowlist.add(node.ekHash);
    // The named AK answers the activation; a different key signs the quote.
    const mixed = new TpmAttester(node.tpm, other.ak, [node.contributor]);
    const r = await refusal(handshake(kbs, node, { attester: mixed }));
    expect(r.message).toMatch(/^TPM_IDENTITY_MISMATCH/);
    expect(await nodeIds(kbs.state)).toEqual([]);
  });

  it('refuses identity fields in the evidence that differ from the ones named at /auth', async () => {
    const node = await makeNode();
    const stranger = await makeNode({ ek: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey });
    const kbs = await extension();
    await kbs.state.ekAllowlist.add(node.ekHash);
    const strangerId = (await stranger.contributor.requestExtraParams())['tpm-identity'] as Record<string, string>;
    const r = await refusal(handshake(kbs, node, { evidence: (e) => ({ ...e, ek_tpm2b_public: strangerId['ek_tpm2b_public'] }) }));
    expect(r.message).toMatch(/^TPM_IDENTITY_MISMATCH/);
  });
});

describe('the session keeps only what /attest needs', () => {
  it('stores digests of the identity and the expected answer and the decisions, never the raw extra-params or the secret', async () => {
    const node = await makeNode();
    const kbs = await extension();
    await kbs.state.ekAllowlist.add(node.ekHash);
    const junk = 'J'.repeat(20_000);
    let answer = '';
    const r = await handshake(kbs, node, {
      extra: (e) => ({ ...e, junk, 'tpm-identity': { ...(e['tpm-identity'] as object) } }),
      evidence: (e) => ((answer = String(e['activated_credential'])), e),
    });
    expect(r.appraisal.teeClaims['credential_activation']).toBe('performed');
    expect(Object.keys(r.stored ?? {})).toEqual(['hardware-identity']);
    const text = JSON.stringify(r.stored);
    expect(text).not.toContain(junk.slice(0, 100));
    // The activation secret itself is not kept (only its digest): reading the store cannot answer for the TPM.
    expect(answer).toMatch(/^[A-Za-z0-9+/]{40,}/);
    expect(text).not.toContain(answer);
    expect(text).not.toContain(Buffer.from(answer, 'base64').toString('hex'));
    expect(text.length).toBeLessThan(1024);
  });

  // SECURITY negative test: a tampered session record in the state backend is not acted upon.
  it('fails closed when the stored challenge state was tampered with', async () => {
    const node = await makeNode();
    const kbs = await extension();
    await kbs.state.ekAllowlist.add(node.ekHash);
    const tamper = (patch: Record<string, unknown>): Mutate => (st) => ({ 'hardware-identity': { ...(st['hardware-identity'] as object), ...patch } });
    for (const patch of [{ mode: 'trusted' }, { ekHash: 'not-a-hash' }, { expectedSha256: 'zz' }, { extra: 1 }, { wireSha256: { ek_tpm2b_public: 'x' } }]) {
      const r = await refusal(handshake(kbs, node, { stored: tamper(patch) }));
      expect(r.code).toBe('STORAGE_UNAVAILABLE');
    }
    expect(await nodeIds(kbs.state)).toEqual([]);
  });
});

describe('refusals at /auth', () => {
  it('refuses an EK the owner does not vouch for; nothing on this path adds it to the allowlist', async () => {
    const node = await makeNode({ ek: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey });
    const kbs = await extension();
    // The node even tries to smuggle "allowlist" requests in its parameters and evidence.
    const r = await refusal(
      handshake(kbs, node, { extra: (e) => ({ ...e, 'ek-allowlist': [node.ekHash], allow: node.ekHash }), evidence: (e) => ({ ...e, ek_allowlist: [node.ekHash] }) }),
    );
    expect(r).toMatchObject({ code: 'ATTESTATION_FAILED' });
    expect(r.message).toMatch(/^EK_UNTRUSTED/);
    // The refusal tells the owner the three ways to trust the node (issue 15), naming its EK hash.
    expect(r.message).toContain('to trust this node, an owner can either list its AK: keyhold config set-reference-value --name trusted_ak');
    expect(r.message).toContain('; or trust its TPM\'s maker: keyhold ca add CA.pem');
    expect(r.message).toContain(`; or trust this TPM: keyhold node allow ${node.ekHash}`);
    expect(await kbs.state.ekAllowlist.list()).toEqual([]);
    expect(await nodeIds(kbs.state)).toEqual([]);
  });

  it('refuses AK public areas with decrypt, without restricted, or otherwise not an AK', async () => {
    const node = await makeNode();
    const kbs = await extension();
    await kbs.state.ekAllowlist.add(node.ekHash);
    const withAttrs = (set: number, clear: number): Mutate => (e) => {
      const id = { ...(e['tpm-identity'] as Record<string, string>) };
      const b = Buffer.from(id['ak_tpm2b_public']!, 'base64');
      // TPM2B size (2) + type (2) + nameAlg (2) → objectAttributes (u32 big-endian) at offset 6.
      b.writeUInt32BE(((b.readUInt32BE(6) | set) & ~clear) >>> 0, 6);
      id['ak_tpm2b_public'] = b.toString('base64');
      return { ...e, 'tpm-identity': id };
    };
    for (const [set, clear, what] of [
      [1 << 17, 0, /decrypt/],
      [0, 1 << 16, /not restricted/],
      [0, 1 << 1, /not fixedTPM/],
      [0, 1 << 5, /not generated by the TPM/],
    ] as const) {
      const r = await refusal(handshake(kbs, node, { extra: withAttrs(set, clear) }));
      expect(r.message).toMatch(/^AK_ATTRIBUTES_INVALID/);
      expect(r.message).toMatch(what);
    }
  });

  it('refuses malformed identity parameters with a typed error', async () => {
    const node = await makeNode();
    const kbs = await extension();
    const id = (await node.contributor.requestExtraParams())['tpm-identity'] as Record<string, string>;
    for (const bad of [
      { ...id, ek_tpm2b_public: 'not base64!' },
      { ...id, ak_tpm2b_public: 'A'.repeat(100_000) },
      { ...id, ek_tpm2b_public: Buffer.from(id['ek_tpm2b_public']!, 'base64').subarray(0, 40).toString('base64') },
      { ...id, extra: 1 },
      'string',
    ]) {
      const r = await refusal(handshake(kbs, node, { extra: (e) => ({ ...e, 'tpm-identity': bad }) }));
      expect(r.code).toBe('ATTESTATION_FAILED');
      expect(r.message).toMatch(/^(TPM_IDENTITY_MALFORMED|TPM_PUBLIC_MALFORMED)/);
    }
  });

  it('refuses a revoked node at /auth, and at /attest when revoked in between', async () => {
    const node = await makeNode();
    const kbs = await extension();
    await kbs.state.ekAllowlist.add(node.ekHash);
    await handshake(kbs, node);
    await revokeNode(kbs.state.nodes, node.ekHash, new Date());
    expect((await refusal(handshake(kbs, node))).code).toBe('NODE_REVOKED');

    const fresh = await makeNode({ ek: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey });
    await kbs.state.ekAllowlist.add(fresh.ekHash);
    const r = await refusal(handshake(kbs, fresh, { between: async () => void (await revokeNode(kbs.state.nodes, fresh.ekHash, new Date())) }));
    expect(r.code).toBe('NODE_REVOKED');
  });

  it('refuses a banned node at /auth with NODE_BANNED naming the reason (issue 13), and again after the owner lifts the ban it passes', async () => {
    const node = await makeNode();
    const kbs = await extension();
    await kbs.state.ekAllowlist.add(node.ekHash);
    await handshake(kbs, node);
    const cur = (await kbs.state.nodes.get(node.ekHash))!;
    const { version, ...rest } = cur;
    await kbs.state.nodes.compareAndSwap(node.ekHash, version, { ...rest, state: 'banned', banned: { at: new Date().toISOString(), reason: 'pcr07 does not match the reference value tpm_pcr07' } });
    const r = await refusal(handshake(kbs, node));
    expect(r).toEqual({ code: 'NODE_BANNED', message: 'this node is banned until the owner lifts the ban: pcr07 does not match the reference value tpm_pcr07' });
    expect((await unbanNode(kbs.state.nodes, node.ekHash))?.changed).toBe(true);
    await handshake(kbs, node);
  });
});

describe("Trustee's trusted_ak list beside EK identity", () => {
  it('lets a listed AK through without EK identity claims (an ak: node id only) when the EK is not trusted, only while trusted_ak is enabled', async () => {
    const node = await makeNode({ ek: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey });
    const trustedAk = [Buffer.from(tpmPublicToSpkiDer(parseTpm2bPublic(node.ak.publicArea))).toString('base64')];
    const kbs = await extension();
    const ok = await handshake(kbs, node, { trustedAk });
    expect(ok.challengeExtra).toEqual({});
    expect(ok.appraisal.teeClaims['ek_trust']).toBe('none');
    // Identified by the owner-listed AK only: `ak:` + SHA-256 of its DER SPKI, no SPIFFE ID or EK trust claim.
    const akId = `ak:${createHash('sha256').update(Buffer.from(trustedAk[0]!, 'base64')).digest('hex')}`;
    expect(ok.appraisal.extra).toEqual({ node_id: akId });

    const strict = await extension({ trustedAkList: false });
    const r = await refusal(handshake(strict, node, { trustedAk, trustedAkList: false }));
    expect(r.message).toMatch(/^EK_UNTRUSTED/);
  });

  it('refuses an activation answer sent without an identity named at /auth', async () => {
    const node = await makeNode();
    const trustedAk = [Buffer.from(tpmPublicToSpkiDer(parseTpm2bPublic(node.ak.publicArea))).toString('base64')];
    const kbs = await extension();
    const r = await refusal(handshake(kbs, node, { trustedAk, extra: () => ({}), evidence: (e) => ({ ...e, activated_credential: randomBytes(32).toString('base64') }) }));
    expect(r.message).toMatch(/^TPM_IDENTITY_NOT_CHALLENGED/);
  });
});

describe('EK trust by certificate (CA store)', () => {
  let vendorPem: string;
  let otherPem: string;
  let ekCert: Uint8Array;
  let foreignCert: Uint8Array;

  /** A CA (openssl) and an EK certificate it issues for `pub` (-force_pubkey, as a TPM vendor does). */
  async function ca(name: string): Promise<{ pem: string; issue(pub: KeyObject): Promise<Uint8Array> }> {
    const d = path.join(dir, name);
    await run('mkdir', ['-p', d]);
    await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', path.join(d, 'ca.key'), '-out', path.join(d, 'ca.pem'),
      '-subj', `/CN=${name}`, '-days', '2', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
    await writeFile(path.join(d, 'ext.cnf'), 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,keyEncipherment\n');
    await run('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', path.join(d, 'csr.key'), '-subj', '/CN=ek', '-out', path.join(d, 'ek.csr')]);
    let n = 0;
    return {
      pem: await readFile(path.join(d, 'ca.pem'), 'utf8'),
      async issue(pub) {
        const f = path.join(d, `ek${++n}`);
        await writeFile(`${f}.pub.pem`, (pub.type === 'private' ? createPublicKey(pub) : pub).export({ type: 'spki', format: 'pem' }));
        await run('openssl', ['x509', '-req', '-in', path.join(d, 'ek.csr'), '-CA', path.join(d, 'ca.pem'), '-CAkey', path.join(d, 'ca.key'), '-CAcreateserial',
          '-force_pubkey', `${f}.pub.pem`, '-days', '1', '-extfile', path.join(d, 'ext.cnf'), '-outform', 'DER', '-out', `${f}.der`]);
        return new Uint8Array(await readFile(`${f}.der`));
      },
    };
  }

  beforeAll(async () => {
    const vendor = await ca('Keyhold Test TPM Vendor CA');
    const other = await ca('Unrelated CA');
    vendorPem = vendor.pem;
    otherPem = other.pem;
    ekCert = await vendor.issue(ekKey);
    foreignCert = await vendor.issue(generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey);
  }, 30_000);

  it('trusts an EK whose certificate chains to the store and certifies it: hardware = genuine', async () => {
    // NV padding after the DER, as some TPMs leave it, is tolerated.
    const padded = new Uint8Array([...ekCert, 0xff, 0xff, 0xff]);
    const node = await makeNode({ nv: new Map([[EK_CERT_RSA, padded]]) });
    const kbs = await extension({ caPem: vendorPem });
    const r = await handshake(kbs, node);
    expect(r.appraisal.teeClaims['ek_trust']).toBe('ca');
    expect(r.appraisal.vector.hardware).toBe(2);
    expect((r.appraisal.teeClaims['ek_certificate'] as { issuer: string }).issuer).toContain('Keyhold Test TPM Vendor CA');
  });

  it('refuses a certificate from an unknown CA, and one that certifies another key even when allowlisted', async () => {
    const node = await makeNode({ nv: new Map([[EK_CERT_RSA, ekCert]]) });
    const unknown = await refusal(handshake(await extension({ caPem: otherPem }), node));
    expect(unknown.message).toMatch(/^EK_CERT_UNKNOWN_CA: .*; to trust this node, an owner can either .*keyhold ca add CA\.pem.*keyhold node allow [0-9a-f]{64}$/);

    const swapped = await makeNode({ nv: new Map([[EK_CERT_RSA, foreignCert]]) });
    const kbs = await extension({ caPem: vendorPem });
    await kbs.state.ekAllowlist.add(swapped.ekHash);
    const mismatch = await refusal(handshake(kbs, swapped));
    expect(mismatch.message).toMatch(/^EK_CERT_KEY_MISMATCH/);
    // No owner act should excuse a certificate for another key: no "how to trust" hint there.
    expect(mismatch.message).not.toContain('to trust this node');
  });

  it('with require_ek_allowlist, a valid certificate alone is not enough; with both it is ca+allowlist', async () => {
    const node = await makeNode({ nv: new Map([[EK_CERT_RSA, ekCert]]) });
    const kbs = await extension({ caPem: vendorPem, requireEkAllowlist: true });
    const notListed = (await refusal(handshake(kbs, node))).message;
    expect(notListed).toMatch(/^EK_NOT_ALLOWLISTED/);
    // Only the ways this configuration leaves open are offered (the allowlist is required).
    expect(notListed).toContain(`to admit this node, an owner can either list its AK`);
    expect(notListed).toContain(`keyhold node allow ${node.ekHash}`);
    expect(notListed).not.toContain('keyhold ca add');
    await kbs.state.ekAllowlist.add(node.ekHash);
    expect((await handshake(kbs, node)).appraisal.teeClaims['ek_trust']).toBe('ca+allowlist');
  });

  it('with require_ek_certificate, an allowlist entry alone is not enough', async () => {
    const node = await makeNode();
    const kbs = await extension({ caPem: vendorPem, requireEkCertificate: true });
    await kbs.state.ekAllowlist.add(node.ekHash);
    expect((await refusal(handshake(kbs, node))).message).toMatch(/^EK_CERT_MISSING/);
  });
});

describe('construction', () => {
  it('rejects a trust domain that is not a SPIFFE trust domain name', async () => {
    await expect(extension({ trustDomain: 'Example.org/x' })).rejects.toThrow(TypeError);
  });
});
