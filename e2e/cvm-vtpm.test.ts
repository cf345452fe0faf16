/**
 * Issue 17 end to end: an "Azure SEV-SNP confidential VM" made of a real swtpm (its RSA AK persisted
 * at 0x81000003, as Azure's vTPM has it) and a SYNTHETIC AMD chain (test ARK/ASK/VCEK from
 * @keyhold/test-harness): the test plays the paravisor and writes an HCL report — variable data
 * publishing the swtpm AK, bound into an SNP report the synthetic VCEK signed — into NV 0x01400001.
 * The KBS runs as its own process with the synthetic ARK/ASK configured as `[cvm] amd_ark_dir`; the
 * agent CLI attests with `--tee az-snp-vtpm` (VCEK from a file: there is no Azure IMDS here) and gets
 * the secret. The vTPM quote is real, so the session nonce binding is exercised end to end.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AzVtpmAttester, FileVcekSource, generateTeeKeyPair, loadOrCreateAk, openTpmDevice, AZURE_VTPM_AK_HANDLE } from '@keyhold/attestation-agent';
import { PROTOCOL_VERSION, runtimeDataDigest, type TeePubkey } from '@keyhold/protocol';
import { createSyntheticAmdChain, startSwtpmVtpm, synthesizeSnpHclReport, type SwtpmVtpm } from '@keyhold/test-harness';
import { createAdminKeys } from './harness/admin-keys.js';
import { startKbsProcess, type KbsProcess } from './harness/kbs-process.js';
import { attest, auth, variantOf } from './harness/raw-flow.js';
import { AGENT_BIN, CLI_BIN } from './harness/repo.js';
import { runNodeCli, type CliResult } from './harness/run-cli.js';

const haveTools = existsSync('/usr/bin/swtpm') && existsSync('/usr/bin/tpm2_nvwrite');
if (!haveTools) console.warn('skipping cvm-vtpm e2e: swtpm or tpm2-tools missing');

const SECRET = 'keyhold-cvm-vtpm-secret-41d7';
const SECRET_PATH = 'default/key/cvm';

let dir: string;
let vtpm: SwtpmVtpm;
let kbs: KbsProcess;
let vcekFile: string;

function agent(url: string, ...args: string[]): Promise<CliResult> {
  return runNodeCli(AGENT_BIN, [...args, '--url', url, '--tcti', vtpm.tcti, '--vcek-file', vcekFile]);
}

describe.skipIf(!haveTools)('Azure CVM vTPM (az-snp-vtpm) on swtpm with a synthetic AMD chain', () => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'keyhold-e2e-cvm-'));
    vtpm = await startSwtpmVtpm();
    const chain = await createSyntheticAmdChain({ generation: 'Milan' });
    const vcek = await chain.issueVcek();
    await mkdir(join(dir, 'amd'));
    await writeFile(join(dir, 'amd', 'synthetic-milan.pem'), `${chain.askPem}\n${chain.arkPem}\n`);
    vcekFile = join(dir, 'vcek.pem');
    await writeFile(vcekFile, vcek.pem);
    await vtpm.writeHclReport(synthesizeSnpHclReport({ vcek, akSpkiDer: vtpm.akSpkiDer }).hclReport);

    const admin = await createAdminKeys(dir);
    const tokenFile = join(dir, 'admin.jwt');
    await writeFile(tokenFile, await admin.token({ lifetimeS: 600 }));
    kbs = await startKbsProcess({
      dataDir: join(dir, 'kbs'),
      adminPublicKeyFile: admin.publicKeyFile,
      configToml: `[cvm]\namd_ark_dir = ${JSON.stringify(join(dir, 'amd'))}\n`,
    });
    await writeFile(join(dir, 'secret.bin'), SECRET);
    const r = await runNodeCli(CLI_BIN, ['config', '--url', kbs.url, '--admin-token-file', tokenFile, 'set-resource', '--path', SECRET_PATH, '--resource-file', join(dir, 'secret.bin')]);
    expect(r.code, r.stderr).toBe(0);
  }, 120_000);

  afterAll(async () => {
    await kbs?.stop();
    await vtpm?.stop();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('the agent attests as az-snp-vtpm and receives the secret; no trusted_ak is needed', async () => {
    const r = await agent(kbs.url, 'get-resource', `kbs:///${SECRET_PATH}`, '--tee', 'az-snp-vtpm');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(SECRET);
  });

  it('--tee auto detects the CVM; the token carries the hardware claims and AR4SI vector', async () => {
    const t = await agent(kbs.url, 'token', '--tee', 'auto');
    expect(t.code, t.stderr).toBe(0);
    const cpu0 = (decodeJwt(t.stdout.trim()) as any)['submods']['cpu0'];
    expect(cpu0['ear.status']).toBe('affirming');
    expect(cpu0['ear.trustworthiness-vector']).toMatchObject({ 'instance-identity': 2, hardware: 2, 'runtime-opaque': 2 });
    const claims = cpu0['ear.veraison.annotated-evidence']['az-snp-vtpm'];
    expect(claims['snp']['generation']).toBe('Milan');
    expect(claims['snp']['vmpl']).toBe(0);
    expect(claims['reported_tcb_snp']).toBe('24');
    // The quote carried the whole SHA-384 runtime-data digest.
    expect(claims['report_data']).toMatch(/^[0-9a-f]{96}$/);
    expect(cpu0['ear.veraison.annotated-evidence']['report_data']).toBe(claims['report_data']);
  });

  it('binds the session nonce: evidence made for one session is refused in another', async () => {
    const tpm = await openTpmDevice({ tcti: vtpm.tcti });
    const ak = await loadOrCreateAk(tpm, { alg: 'rsa', persistentHandle: AZURE_VTPM_AK_HANDLE, persist: false });
    try {
      const attester = new AzVtpmAttester({ tee: 'az-snp-vtpm', tpm, ak: ak.ak, vcek: new FileVcekSource(vcekFile) });
      const hello = { version: PROTOCOL_VERSION, tee: 'az-snp-vtpm', 'extra-params': {} };
      const a = await auth(kbs.url, hello);
      const b = await auth(kbs.url, hello);
      expect(a.answer.status).toBe(200);
      const teeKey = await generateTeeKeyPair('ec');
      const evidenceFor = async (nonce: string) => {
        const reportData = runtimeDataDigest({ nonce, teePubkey: teeKey.publicJwk as TeePubkey, additionalEvidence: '' });
        return (await attester.evidence({ nonce, teePubkey: teeKey.publicJwk as TeePubkey, reportData, hashAlgorithm: 'sha384', challengeExtra: {} })).primary;
      };
      const forA = await evidenceFor(a.nonce);
      // Session B, its own nonce in the runtime data, but the quote (and so the evidence) was made for A.
      const replay = await attest(kbs.url, b.cookie, { 'runtime-data': { nonce: b.nonce, 'tee-pubkey': teeKey.publicJwk }, 'tee-evidence': { primary_evidence: forA, additional_evidence: '' } });
      expect(replay.status).toBe(401);
      expect(variantOf(replay)).toBe('AttestationFailed');
      expect(replay.text).toContain('QUOTE_EXTRA_DATA_MISMATCH');
      // The honest attestation for A succeeds.
      const honest = await attest(kbs.url, a.cookie, { 'runtime-data': { nonce: a.nonce, 'tee-pubkey': teeKey.publicJwk }, 'tee-evidence': { primary_evidence: forA, additional_evidence: '' } });
      expect(honest.status, honest.text).toBe(200);
    } finally {
      await ak.release();
      await tpm.close();
    }
  });

  it('a KBS that does not trust the synthetic ARK refuses the same node (SNP_VCEK_UNTRUSTED)', async () => {
    const other = await startKbsProcess({ dataDir: join(dir, 'kbs-default') });
    try {
      const r = await agent(other.url, 'token', '--tee', 'az-snp-vtpm');
      expect(r.code).toBe(3); // refused by the KBS (401)
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain('SNP_VCEK_UNTRUSTED');
    } finally {
      await other.stop();
    }
  });
});
