/**
 * Issue 14 end to end: a secret released *into the TPM*. A real swtpm, the KBS and the agent as
 * processes; the agent's tee key is created in the TPM under the SRK, certified by the AK with the
 * quote's qualifying data, optionally sealed to PCRs; the KBS verifies the certification and wraps
 * to that key. Cross-checked with tpm2-tools; refusals driven by hand with the agent library.
 */
import { execFile } from 'node:child_process';
import { createDecipheriv, generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  loadOrCreateAk,
  OBJECT_ATTRIBUTE,
  openTpmDevice,
  SealedJweCache,
  TEE_KEY_ATTRIBUTES,
  teeKeyTemplate,
  TpmAttester,
  TpmTeeKeySource,
  type LoadedAk,
  type TeeKey,
  type TpmDevice,
  type TpmKey,
} from '@keyhold/attestation-agent';
import { runtimeDataDigest, type ResourceResponse, type TeePubkey } from '@keyhold/protocol';
import { startSwtpm, type RunningSwtpm } from '@keyhold/test-harness';
import { parseTpm2bPublic, policyPcrDigest, tpmPublicToKeyObject } from '@keyhold/verifier';
import { createAdminKeys } from './harness/admin-keys.js';
import { startKbsProcess, type KbsProcess } from './harness/kbs-process.js';
import { attest, auth, getResource, variantOf, type HttpAnswer } from './harness/raw-flow.js';
import { AGENT_BIN, CLI_BIN, REPO_ROOT } from './harness/repo.js';
import { runNodeCli } from './harness/run-cli.js';

const run = promisify(execFile);
const SECRET = 'keyhold-resident-secret-51e0c4a9';
const RESIDENT = 'resident/key/k';
const PLAIN = 'default/key/demo';
const AK_HANDLE = 0x81010002;
const OTHER_AK_HANDLE = 0x81010003;
const SRK_ATTRS = 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|restricted|decrypt';
const DEAD_KBS = 'http://127.0.0.1:1';

let dir: string;
let swtpm: RunningSwtpm;
let thief: RunningSwtpm;
let kbs: KbsProcess;
let tokenFile: string;

const agentArgs = (...extra: string[]): string[] => ['--url', kbs.url, '--tcti', swtpm.tcti, '--no-ek-identity', ...extra];
const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');

async function owner(...args: string[]) {
  const r = await runNodeCli(CLI_BIN, ['config', '--url', kbs.url, '--admin-token-file', tokenFile, ...args]);
  expect(r.code, r.stderr).toBe(0);
  return r;
}

async function withTpm<T>(tpm: RunningSwtpm, fn: (d: TpmDevice, ak: LoadedAk) => Promise<T>): Promise<T> {
  const d = await openTpmDevice({ tcti: tpm.tcti });
  const ak = await loadOrCreateAk(d, { persistentHandle: AK_HANDLE, persist: true });
  try {
    return await fn(d, ak);
  } finally {
    await ak.release();
    await d.close();
  }
}

/** tpm2-tools on a swtpm (no other client connected), flushing transient objects after. */
async function tool(tpm: RunningSwtpm, cmd: string, args: string[]): Promise<void> {
  const env = { ...process.env, TPM2TOOLS_TCTI: tpm.tcti };
  try {
    await run(cmd, args, { env, cwd: dir });
  } finally {
    await run('tpm2_flushcontext', ['-t'], { env, cwd: dir });
  }
}

function jwkOf(publicArea: Uint8Array): TeePubkey {
  const pub = parseTpm2bPublic(publicArea);
  const jwk = tpmPublicToKeyObject(pub).export({ format: 'jwk' });
  return (pub.type === 'rsa' ? { kty: 'RSA', alg: 'RSA-OAEP-256', n: jwk.n!, e: jwk.e! } : { kty: 'EC', crv: 'P-256', alg: 'ECDH-ES+A256KW', x: jwk.x!, y: jwk.y! }) as TeePubkey;
}

/** A TeeKey made of raw parts: lets a test send what an attacker would (bad attributes, another AK, another key's public area). */
function forgedKey(tpm: TpmDevice, o: { publicArea: Uint8Array; certified: { privateBlob: Uint8Array; publicArea: Uint8Array }; certifier: TpmKey; sealedPcrs?: number[]; jwk?: TeePubkey }): TeeKey {
  return {
    publicJwk: o.jwk ?? jwkOf(o.publicArea),
    decrypt: () => Promise.reject(new Error('not used')),
    async residencyEvidence(qd) {
      const c = await tpm.certify(o.certified, o.certifier, qd);
      return { tee_key: { tpm2b_public: b64(o.publicArea), certify_info: b64(c.certifyInfo), signature: b64(c.signature), ...(o.sealedPcrs ? { sealed_pcrs: o.sealedPcrs } : {}) } };
    },
  };
}

/** /auth, then /attest with TPM evidence bound to `teeKey` (as the agent builds it). */
async function attestWith(tpm: TpmDevice, ak: TpmKey, teeKey: TeeKey, runtimeJwk: TeePubkey = teeKey.publicJwk): Promise<{ cookie: string; answer: HttpAnswer }> {
  const s = await auth(kbs.url, { version: '0.4.0', tee: 'tpm', 'extra-params': {} });
  const reportData = runtimeDataDigest({ nonce: s.nonce, teePubkey: runtimeJwk, additionalEvidence: '' });
  const { primary } = await new TpmAttester(tpm, ak, []).evidence({ nonce: s.nonce, teePubkey: runtimeJwk, reportData, hashAlgorithm: 'sha384', challengeExtra: {}, teeKey });
  const body = { 'runtime-data': { nonce: s.nonce, 'tee-pubkey': runtimeJwk }, 'tee-evidence': { primary_evidence: primary, additional_evidence: '' } };
  return { cookie: s.cookie, answer: await attest(kbs.url, s.cookie, body) };
}

function expectNoSecret(a: HttpAnswer): void {
  for (const form of [SECRET, b64(Buffer.from(SECRET)), Buffer.from(SECRET).toString('base64url')]) expect(a.text).not.toContain(form);
}

async function sealedPolicy(tpm: TpmDevice, indices: number[]): Promise<Uint8Array> {
  const values = await tpm.readPcrs('sha256', indices);
  return policyPcrDigest({ hashAlg: 'sha256', bank: 'sha256', values: new Map(indices.map((i, k) => [i, values[k]!])) });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'keyhold-e2e-resident-'));
  [swtpm, thief] = await Promise.all([startSwtpm(), startSwtpm()]);
  const admin = await createAdminKeys(dir);
  // One node walks through deliberate refusals here; bans on failure (issue 13, on by default) are
  // e2e/continuous-*.test.ts's subject.
  kbs = await startKbsProcess({ dataDir: join(dir, 'kbs'), adminPublicKeyFile: admin.publicKeyFile, configToml: '[continuous]\nban_on_failure = false\n' });
  tokenFile = join(dir, 'admin.jwt');
  await writeFile(tokenFile, await admin.token({ lifetimeS: 900 }));
  const ak = await runNodeCli(AGENT_BIN, ['ak', '--json', ...agentArgs()]);
  expect(ak.code, ak.stderr).toBe(0);
  await owner('set-reference-value', '--name', 'trusted_ak', '--value', (JSON.parse(ak.stdout) as { ak_public: string }).ak_public);
  await writeFile(join(dir, 'secret.bin'), SECRET);
  await owner('set-resource', '--path', RESIDENT, '--resource-file', join(dir, 'secret.bin'));
  await owner('set-resource', '--path', PLAIN, '--resource-file', join(dir, 'secret.bin'));
  await owner('set-resource-policy', '--policy-file', join(REPO_ROOT, 'packages/kbs/policies/tpm-resident-only.json'), '--repository', 'resident');
  // A second AK in the same TPM (not the one that quotes).
  await withTpm(swtpm, async (d) => (await loadOrCreateAk(d, { persistentHandle: OTHER_AK_HANDLE, persist: true })).release());
}, 120_000);

afterAll(async () => {
  await kbs?.stop();
  await Promise.all([swtpm?.stop(), thief?.stop()]);
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe('release into the TPM', () => {
  it('RSA and ECC, sealed and unsealed: the agent gets the secret under the tpm-resident-only policy', async () => {
    for (const args of [['--tee-key', 'tpm-rsa'], ['--tee-key', 'tpm-ecc'], ['--tee-key', 'tpm-rsa', '--seal-to-pcrs', '0,7'], ['--tee-key', 'tpm-ecc', '--seal-to-pcrs', 'all']]) {
      const r = await runNodeCli(AGENT_BIN, ['get-resource', `kbs:///${RESIDENT}`, ...agentArgs(...args)]);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
      expect(r.stdout).toBe(SECRET);
    }
  });

  it('the token says so: tee_key_residency "tpm" and the sealed PCRs', async () => {
    // With the hardware-identity contributor on (its EK stays loaded beside the tee key's SRK and the AK).
    const r = await runNodeCli(AGENT_BIN, ['token', '--url', kbs.url, '--tcti', swtpm.tcti, '--tee-key', 'tpm-ecc', '--seal-to-pcrs', '0,7,16']);
    expect(r.code, r.stderr).toBe(0);
    const ev = (decodeJwt(r.stdout.trim()) as any)['submods']['cpu0']['ear.veraison.annotated-evidence'];
    expect(ev['tee_key_residency']).toBe('tpm');
    expect(ev['tee_key_sealed_pcrs']).toEqual([0, 7, 16]);
    expect(ev['tpm']['tee_key']).toMatchObject({ residency: 'tpm', type: 'ecc', sealed_pcrs: [0, 7, 16] });
    expect(ev['runtime_data_claims']['tee-pubkey']).toMatchObject({ kty: 'EC', crv: 'P-256' });
  });

  it('a software tee key is refused by tpm-resident-only (403)', async () => {
    const refused = await runNodeCli(AGENT_BIN, ['get-resource', `kbs:///${RESIDENT}`, ...agentArgs()]);
    expect(refused.code).toBe(3); // refused by the KBS (403)
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toContain('POLICY_DENY');
  });

  it('a JWE the KBS produced decrypts with tpm2_rsadecrypt on the same TPM, and on no other TPM', async () => {
    const { jwe, stored } = await withTpm(swtpm, async (d, ak) => {
      const key = await new TpmTeeKeySource({ tpm: d, ak: ak.ak, alg: 'rsa' }).create();
      const { cookie, answer } = await attestWith(d, ak.ak, key);
      expect(answer.status, answer.text).toBe(200);
      const res = await getResource(kbs.url, RESIDENT, { cookie });
      expect(res.status, res.text).toBe(200);
      expectNoSecret(res);
      const jwe = res.json as ResourceResponse;
      expect(new TextDecoder().decode(await key.decrypt(jwe))).toBe(SECRET);
      return { jwe, stored: key.stored };
    });
    // tpm2-tools: the TCG SRK (unique: tpm2-tss's in-memory TPMS_ECC_POINT of zeros), load, TPM2_RSA_Decrypt of the CEK.
    await writeFile(join(dir, 'u.bin'), Buffer.concat([Buffer.of(32, 0), Buffer.alloc(128), Buffer.of(32, 0), Buffer.alloc(128)]));
    await writeFile(join(dir, 'k.pub'), stored.blob.publicArea);
    await writeFile(join(dir, 'k.priv'), stored.blob.privateBlob);
    await writeFile(join(dir, 'cek.enc'), Buffer.from(jwe.encrypted_key, 'base64url'));
    await tool(swtpm, 'tpm2_createprimary', ['-C', 'o', '-G', 'ecc256:aes128cfb', '-a', SRK_ATTRS, '-u', 'u.bin', '-c', 'srk.ctx']);
    await tool(swtpm, 'tpm2_load', ['-C', 'srk.ctx', '-u', 'k.pub', '-r', 'k.priv', '-c', 'k.ctx']);
    await tool(swtpm, 'tpm2_rsadecrypt', ['-c', 'k.ctx', '-s', 'oaep', '-o', 'cek.bin', 'cek.enc']);
    const gcm = createDecipheriv('aes-256-gcm', await readFile(join(dir, 'cek.bin')), Buffer.from(jwe.iv, 'base64url'));
    gcm.setAAD(Buffer.from(jwe.protected, 'ascii'));
    gcm.setAuthTag(Buffer.from(jwe.tag, 'base64url'));
    expect(Buffer.concat([gcm.update(Buffer.from(jwe.ciphertext, 'base64url')), gcm.final()]).toString()).toBe(SECRET);
    // Captured in transit with the key's blobs: another TPM cannot load the key (tpm2-tools or the agent).
    await tool(thief, 'tpm2_createprimary', ['-C', 'o', '-G', 'ecc256:aes128cfb', '-a', SRK_ATTRS, '-u', 'u.bin', '-c', 'srk2.ctx']);
    await expect(tool(thief, 'tpm2_load', ['-C', 'srk2.ctx', '-u', 'k.pub', '-r', 'k.priv', '-c', 'k2.ctx'])).rejects.toThrow(/integrity check failed/);
    await withTpm(thief, async (d, ak) => {
      const err = await new TpmTeeKeySource({ tpm: d, ak: ak.ak, alg: 'rsa' }).restore(stored).decrypt(jwe).catch((e: unknown) => e);
      expect((err as { code?: string }).code).toBe('TPM_COMMAND_FAILED');
    });
  });
});

describe('refusals: 401 AttestationFailed with the reason, no secret', () => {
  const refused = async (a: { cookie: string; answer: HttpAnswer }, reason: RegExp): Promise<void> => {
    expect({ status: a.answer.status, variant: variantOf(a.answer) }).toEqual({ status: 401, variant: 'AttestationFailed' });
    expect((a.answer.json as { detail: string }).detail).toMatch(reason);
    expectNoSecret(a.answer);
    // The session never attested: nothing is released on it.
    const res = await getResource(kbs.url, PLAIN, { cookie: a.cookie });
    expect(res.status).toBe(401);
    expectNoSecret(res);
  };

  it('a certification by another AK', async () => {
    await withTpm(swtpm, async (d, ak) => {
      const other = await loadOrCreateAk(d, { persistentHandle: OTHER_AK_HANDLE });
      try {
        const blob = await d.createUnderSrk(teeKeyTemplate('rsa'));
        await refused(await attestWith(d, ak.ak, forgedKey(d, { publicArea: blob.publicArea, certified: blob, certifier: other.ak })), /tee_key: CERTIFY_SIGNATURE_INVALID/);
      } finally {
        await other.release();
      }
    });
  });

  it('a key with sign set, and a key created duplicable (no fixedTPM)', async () => {
    await withTpm(swtpm, async (d, ak) => {
      const signer = await d.createUnderSrk(teeKeyTemplate('rsa', { attributes: TEE_KEY_ATTRIBUTES | OBJECT_ATTRIBUTE.sign, scheme: 'null' }));
      await refused(await attestWith(d, ak.ak, forgedKey(d, { publicArea: signer.publicArea, certified: signer, certifier: ak.ak })), /TEE_KEY_ATTRIBUTES_INVALID: tee key is a signing key/);
      const dup = await d.createUnderSrk(teeKeyTemplate('ecc', { attributes: TEE_KEY_ATTRIBUTES & ~OBJECT_ATTRIBUTE.fixedTPM & ~OBJECT_ATTRIBUTE.fixedParent }));
      await refused(await attestWith(d, ak.ak, forgedKey(d, { publicArea: dup.publicArea, certified: dup, certifier: ak.ak })), /TEE_KEY_ATTRIBUTES_INVALID: tee key is not fixedTPM/);
    });
  });

  it('a certifiedName of another key', async () => {
    await withTpm(swtpm, async (d, ak) => {
      const certified = await d.createUnderSrk(teeKeyTemplate('rsa'));
      const shown = await d.createUnderSrk(teeKeyTemplate('rsa'));
      await refused(await attestWith(d, ak.ak, forgedKey(d, { publicArea: shown.publicArea, certified, certifier: ak.ak })), /CERTIFY_NAME_MISMATCH/);
    });
  });

  it('a policy digest that does not match the quoted PCRs', async () => {
    await withTpm(swtpm, async (d, ak) => {
      const blob = await d.createUnderSrk(teeKeyTemplate('rsa', { authPolicy: await sealedPolicy(d, [0, 16]) }));
      await d.extendPcr(16, [{ alg: 'sha256', digest: new Uint8Array(randomBytes(32)) }]);
      await refused(await attestWith(d, ak.ak, forgedKey(d, { publicArea: blob.publicArea, certified: blob, certifier: ak.ak, sealedPcrs: [0, 16] })), /TEE_KEY_POLICY_MISMATCH/);
    });
  });

  it('a tee-pubkey JWK that is not the certified key', async () => {
    await withTpm(swtpm, async (d, ak) => {
      const key = await new TpmTeeKeySource({ tpm: d, ak: ak.ak, alg: 'rsa' }).create();
      const soft = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'jwk' });
      await refused(await attestWith(d, ak.ak, key, { kty: 'RSA', alg: 'RSA-OAEP-256', n: soft.n!, e: soft.e! }), /TEE_KEY_JWK_MISMATCH/);
    });
  });
});

describe('sealed secret cache (--cache-dir)', () => {
  it('a PCR extended after attestation: the sealed key cannot decrypt (its cached JWE stays unreadable); the unsealed one still can', async () => {
    const sealedCache = join(dir, 'cache-sealed');
    const plainCache = join(dir, 'cache-plain');
    const sealedArgs = ['--tee-key', 'tpm-ecc', '--seal-to-pcrs', '0,16', '--cache-dir', sealedCache];
    const plainArgs = ['--tee-key', 'tpm-rsa', '--cache-dir', plainCache];
    const fetch = (url: string, args: string[]) => runNodeCli(AGENT_BIN, ['get-resource', `kbs:///${PLAIN}`, '--url', url, '--tcti', swtpm.tcti, '--no-ek-identity', ...args]);
    for (const args of [sealedArgs, plainArgs]) expect((await fetch(kbs.url, args)).stdout).toBe(SECRET);
    // Restart without the KBS: both open their cached JWE in the TPM.
    for (const args of [sealedArgs, plainArgs]) {
      const r = await fetch(DEAD_KBS, args);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toBe(SECRET);
    }
    await withTpm(swtpm, async (d, ak) => {
      await d.extendPcr(16, [{ alg: 'sha256', digest: new Uint8Array(randomBytes(32)) }]);
      const cache = new SealedJweCache({ dir: sealedCache, keys: new TpmTeeKeySource({ tpm: d, ak: ak.ak, alg: 'ecc' }) });
      const err = await cache.open(`/kbs/v0/resource/${PLAIN}`).catch((e: unknown) => e);
      expect((err as { code?: string }).code).toBe('TPM_POLICY_FAILED');
    });
    const sealed = await fetch(DEAD_KBS, sealedArgs);
    expect(sealed.code).toBe(1);
    expect(sealed.stdout).toBe('');
    expect(sealed.stderr).toContain('KBS_UNREACHABLE');
    expect((await fetch(DEAD_KBS, plainArgs)).stdout).toBe(SECRET);
    // Back online the KBS appraises the new state and the sealed key is made (and cached) again.
    expect((await fetch(kbs.url, sealedArgs)).stdout).toBe(SECRET);
    expect((await fetch(DEAD_KBS, sealedArgs)).stdout).toBe(SECRET);
  });
});
