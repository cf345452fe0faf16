import { execFile } from 'node:child_process';
import { createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSoftwareTpm, IdentityContributor, loadOrCreateAk, TpmAttester, type TpmDevice, type TpmKey } from '@keyhold/attestation-agent';
import { decodeCaCertificates, ekHash, parseTpm2bPublic, tpmPublicToSpkiDer, type X509Certificate } from '@keyhold/verifier';
import { KbsError } from '../../errors.js';
import { MemoryEkAllowlist } from '../../identity/ek-allowlist.js';
import { MemoryEnrolmentStore } from '../../identity/enrolment-store.js';
import { ReferenceValueStore } from '../../reference-values/reference-value-store.js';
import { InMemorySessionStore } from '../../session/session-store.js';
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

let sessions: InMemorySessionStore;
let dir: string;

function extension(o: Partial<IdentityExtensionOptions> = {}) {
  const allowlist = new MemoryEkAllowlist();
  const enrolments = new MemoryEnrolmentStore();
  const ext = new IdentityExtension({
    caCertificates: () => [],
    allowlist,
    enrolments,
    requireEkCertificate: false,
    requireEkAllowlist: false,
    trustedAkList: true,
    trustDomain: 'example.org',
    ...o,
  });
  return { ext, allowlist: (o.allowlist as MemoryEkAllowlist | undefined) ?? allowlist, enrolments: (o.enrolments as MemoryEnrolmentStore | undefined) ?? enrolments };
}

type Mutate = (v: Record<string, unknown>) => Record<string, unknown>;

/** One KBS handshake through the real TpmAppraiser: /auth challenge, agent evidence, /attest appraisal. */
async function handshake(ext: IdentityExtension, node: Node, o: { refs?: ReferenceValueStore; extra?: Mutate; evidence?: Mutate; between?: () => Promise<void>; attester?: TpmAttester; trustedAkList?: boolean } = {}) {
  const refs = o.refs ?? ReferenceValueStore.inMemory();
  const attester = o.attester ?? node.attester;
  const appraiser = new TpmAppraiser({ trustedAkList: o.trustedAkList ?? true, extensions: [ext] });
  const extra = await attester.requestExtraParams();
  const session = sessions.create({ tee: 'tpm', hashAlgorithm: 'sha384', extraParams: o.extra ? o.extra(extra) : extra });
  const challengeExtra = await appraiser.challenge(session, refs);
  await o.between?.();
  const reportData = new Uint8Array(randomBytes(32));
  const { primary } = await attester.evidence({ nonce: session.nonce, teePubkey: {} as never, reportData, hashAlgorithm: 'sha384', challengeExtra });
  const evidence = o.evidence ? o.evidence(primary as Record<string, unknown>) : primary;
  const appraisal = await appraiser.appraise({ evidence, expectedReportData: reportData, session, references: refs, now: new Date() });
  return { challengeExtra, appraisal };
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
  sessions = new InMemorySessionStore({ ttlMs: 60_000, maxSessions: 1000 });
  dir = await mkdtemp(path.join(tmpdir(), 'keyhold-identity-ext-'));
});

afterAll(async () => {
  sessions.close();
  await rm(dir, { recursive: true, force: true });
});

describe('credential activation and enrolment (EK trusted by the allowlist)', () => {
  it('activates once, binds AK → EK, then skips activation for the same AK and re-activates a changed AK', async () => {
    const node = await makeNode();
    const { ext, allowlist, enrolments } = extension();
    await allowlist.add(node.ekHash);

    const first = await handshake(ext, node);
    expect(Object.keys(first.challengeExtra)).toEqual(['tpm-credential']);
    expect(first.appraisal.teeClaims['credential_activation']).toBe('performed');
    expect(first.appraisal.teeClaims['ek_trust']).toBe('allowlist');
    expect(first.appraisal.extra).toEqual({ node_id: node.ekHash, spiffe_id: `spiffe://example.org/keyhold/node/tpm/${node.ekHash}`, ek_trust: 'allowlist' });
    expect(first.appraisal.vector['instance-identity']).toBe(2);
    expect(first.appraisal.vector.hardware).toBeUndefined();
    const rec = await enrolments.get(node.ekHash);
    expect(rec?.akName).toBe(Buffer.from(node.ak.name).toString('hex'));

    const second = await handshake(ext, node);
    expect(second.challengeExtra).toEqual({});
    expect(second.appraisal.teeClaims['credential_activation']).toBe('enrolled');

    // Same TPM (same EK), new AK: activation again, and the record now names the new AK.
    const changed = await makeNode({ tpm: node.tpm, akHandle: 0x81010003 });
    const third = await handshake(ext, changed);
    expect(Object.keys(third.challengeExtra)).toEqual(['tpm-credential']);
    expect(third.appraisal.teeClaims['credential_activation']).toBe('performed');
    expect((await enrolments.get(node.ekHash))?.akName).toBe(Buffer.from(changed.ak.name).toString('hex'));
    // The old AK is no longer bound: it must activate again.
    expect(Object.keys((await handshake(ext, node)).challengeExtra)).toEqual(['tpm-credential']);
  });

  it('refuses a wrong or missing activation answer and enrols nothing', async () => {
    const node = await makeNode({ ek: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey });
    const { ext, allowlist, enrolments } = extension();
    await allowlist.add(node.ekHash);
    const wrong = await refusal(handshake(ext, node, { evidence: (e) => ({ ...e, activated_credential: randomBytes(32).toString('base64') }) }));
    expect(wrong).toMatchObject({ code: 'ATTESTATION_FAILED' });
    expect(wrong.message).toMatch(/^CREDENTIAL_ACTIVATION_FAILED/);
    const short = await refusal(handshake(ext, node, { evidence: (e) => ({ ...e, activated_credential: randomBytes(31).toString('base64') }) }));
    expect(short.message).toMatch(/^CREDENTIAL_ACTIVATION_FAILED/);
    const missing = await refusal(handshake(ext, node, { evidence: ({ activated_credential: _, ...e }) => e }));
    expect(missing.message).toMatch(/^CREDENTIAL_ACTIVATION_FAILED/);
    expect(await enrolments.list()).toEqual([]);
  });

  it('refuses a quote signed by another key than the AK named (and activated) at /auth', async () => {
    const node = await makeNode();
    const other = await makeNode({ tpm: node.tpm, akHandle: 0x81010004 });
    const { ext, allowlist, enrolments } = extension();
    await allowlist.add(node.ekHash);
    // The named AK answers the activation; a different key signs the quote.
    const mixed = new TpmAttester(node.tpm, other.ak, [node.contributor]);
    const r = await refusal(handshake(ext, node, { attester: mixed }));
    expect(r.message).toMatch(/^TPM_IDENTITY_MISMATCH/);
    expect(await enrolments.list()).toEqual([]);
  });

  it('refuses identity fields in the evidence that differ from the ones named at /auth', async () => {
    const node = await makeNode();
    const stranger = await makeNode({ ek: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey });
    const { ext, allowlist } = extension();
    await allowlist.add(node.ekHash);
    const strangerId = (await stranger.contributor.requestExtraParams())['tpm-identity'] as Record<string, string>;
    const r = await refusal(handshake(ext, node, { evidence: (e) => ({ ...e, ek_tpm2b_public: strangerId['ek_tpm2b_public'] }) }));
    expect(r.message).toMatch(/^TPM_IDENTITY_MISMATCH/);
  });
});

describe('refusals at /auth', () => {
  it('refuses an EK the owner does not vouch for; nothing on this path adds it to the allowlist', async () => {
    const node = await makeNode({ ek: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey });
    const { ext, allowlist, enrolments } = extension();
    // The node even tries to smuggle "allowlist" requests in its parameters and evidence.
    const r = await refusal(
      handshake(ext, node, { extra: (e) => ({ ...e, 'ek-allowlist': [node.ekHash], allow: node.ekHash }), evidence: (e) => ({ ...e, ek_allowlist: [node.ekHash] }) }),
    );
    expect(r).toMatchObject({ code: 'ATTESTATION_FAILED' });
    expect(r.message).toMatch(/^EK_UNTRUSTED/);
    expect(await allowlist.list()).toEqual([]);
    expect(await enrolments.list()).toEqual([]);
  });

  it('refuses AK public areas with decrypt, without restricted, or otherwise not an AK', async () => {
    const node = await makeNode();
    const { ext, allowlist } = extension();
    await allowlist.add(node.ekHash);
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
      const r = await refusal(handshake(ext, node, { extra: withAttrs(set, clear) }));
      expect(r.message).toMatch(/^AK_ATTRIBUTES_INVALID/);
      expect(r.message).toMatch(what);
    }
  });

  it('refuses malformed identity parameters with a typed error', async () => {
    const node = await makeNode();
    const { ext } = extension();
    const id = (await node.contributor.requestExtraParams())['tpm-identity'] as Record<string, string>;
    for (const bad of [
      { ...id, ek_tpm2b_public: 'not base64!' },
      { ...id, ak_tpm2b_public: 'A'.repeat(100_000) },
      { ...id, ek_tpm2b_public: Buffer.from(id['ek_tpm2b_public']!, 'base64').subarray(0, 40).toString('base64') },
      { ...id, extra: 1 },
      'string',
    ]) {
      const r = await refusal(handshake(ext, node, { extra: (e) => ({ ...e, 'tpm-identity': bad }) }));
      expect(r.code).toBe('ATTESTATION_FAILED');
      expect(r.message).toMatch(/^(TPM_IDENTITY_MALFORMED|TPM_PUBLIC_MALFORMED)/);
    }
  });

  it('refuses a revoked node at /auth, and at /attest when revoked in between', async () => {
    const node = await makeNode();
    const { ext, allowlist, enrolments } = extension();
    await allowlist.add(node.ekHash);
    await handshake(ext, node);
    await enrolments.revoke(node.ekHash, new Date());
    expect((await refusal(handshake(ext, node))).code).toBe('NODE_REVOKED');

    const fresh = await makeNode({ ek: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey });
    await allowlist.add(fresh.ekHash);
    const r = await refusal(handshake(ext, fresh, { between: async () => void (await enrolments.revoke(fresh.ekHash, new Date())) }));
    expect(r.code).toBe('NODE_REVOKED');
  });
});

describe("Trustee's trusted_ak list beside EK identity", () => {
  it('lets a listed AK through without identity claims when the EK is not trusted, only while trusted_ak is enabled', async () => {
    const node = await makeNode({ ek: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey });
    const refs = ReferenceValueStore.inMemory();
    await refs.set({ [TRUSTED_AK_REFERENCE]: [Buffer.from(tpmPublicToSpkiDer(parseTpm2bPublic(node.ak.publicArea))).toString('base64')] });
    const { ext } = extension();
    const ok = await handshake(ext, node, { refs });
    expect(ok.challengeExtra).toEqual({});
    expect(ok.appraisal.teeClaims['ek_trust']).toBe('none');
    expect(ok.appraisal.extra).toBeUndefined();

    const { ext: strict } = extension({ trustedAkList: false });
    const r = await refusal(handshake(strict, node, { refs, trustedAkList: false }));
    expect(r.message).toMatch(/^EK_UNTRUSTED/);
  });

  it('refuses an activation answer sent without an identity named at /auth', async () => {
    const node = await makeNode();
    const refs = ReferenceValueStore.inMemory();
    await refs.set({ [TRUSTED_AK_REFERENCE]: [Buffer.from(tpmPublicToSpkiDer(parseTpm2bPublic(node.ak.publicArea))).toString('base64')] });
    const { ext } = extension();
    const r = await refusal(handshake(ext, node, { refs, extra: () => ({}), evidence: (e) => ({ ...e, activated_credential: randomBytes(32).toString('base64') }) }));
    expect(r.message).toMatch(/^TPM_IDENTITY_NOT_CHALLENGED/);
  });
});

describe('EK trust by certificate (CA store)', () => {
  let caCerts: X509Certificate[];
  let otherCaCerts: X509Certificate[];
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
    caCerts = decodeCaCertificates(new TextEncoder().encode(vendor.pem), 'vendor');
    otherCaCerts = decodeCaCertificates(new TextEncoder().encode(other.pem), 'other');
    ekCert = await vendor.issue(ekKey);
    foreignCert = await vendor.issue(generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey);
  }, 30_000);

  it('trusts an EK whose certificate chains to the store and certifies it: hardware = genuine', async () => {
    // NV padding after the DER, as some TPMs leave it, is tolerated.
    const padded = new Uint8Array([...ekCert, 0xff, 0xff, 0xff]);
    const node = await makeNode({ nv: new Map([[EK_CERT_RSA, padded]]) });
    const { ext } = extension({ caCertificates: () => caCerts });
    const r = await handshake(ext, node);
    expect(r.appraisal.teeClaims['ek_trust']).toBe('ca');
    expect(r.appraisal.vector.hardware).toBe(2);
    expect((r.appraisal.teeClaims['ek_certificate'] as { issuer: string }).issuer).toContain('Keyhold Test TPM Vendor CA');
  });

  it('refuses a certificate from an unknown CA, and one that certifies another key even when allowlisted', async () => {
    const node = await makeNode({ nv: new Map([[EK_CERT_RSA, ekCert]]) });
    const unknown = await refusal(handshake(extension({ caCertificates: () => otherCaCerts }).ext, node));
    expect(unknown.message).toMatch(/^EK_CERT_UNKNOWN_CA/);

    const swapped = await makeNode({ nv: new Map([[EK_CERT_RSA, foreignCert]]) });
    const { ext, allowlist } = extension({ caCertificates: () => caCerts });
    await allowlist.add(swapped.ekHash);
    const mismatch = await refusal(handshake(ext, swapped));
    expect(mismatch.message).toMatch(/^EK_CERT_KEY_MISMATCH/);
  });

  it('with require_ek_allowlist, a valid certificate alone is not enough; with both it is ca+allowlist', async () => {
    const node = await makeNode({ nv: new Map([[EK_CERT_RSA, ekCert]]) });
    const { ext, allowlist } = extension({ caCertificates: () => caCerts, requireEkAllowlist: true });
    expect((await refusal(handshake(ext, node))).message).toMatch(/^EK_NOT_ALLOWLISTED/);
    await allowlist.add(node.ekHash);
    expect((await handshake(ext, node)).appraisal.teeClaims['ek_trust']).toBe('ca+allowlist');
  });

  it('with require_ek_certificate, an allowlist entry alone is not enough', async () => {
    const node = await makeNode();
    const { ext, allowlist } = extension({ caCertificates: () => caCerts, requireEkCertificate: true });
    await allowlist.add(node.ekHash);
    expect((await refusal(handshake(ext, node))).message).toMatch(/^EK_CERT_MISSING/);
  });
});

describe('construction', () => {
  it('rejects a trust domain that is not a SPIFFE trust domain name', () => {
    expect(() => extension({ trustDomain: 'Example.org/x' })).toThrow(TypeError);
  });
});
