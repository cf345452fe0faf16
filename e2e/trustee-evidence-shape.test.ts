/**
 * A Trustee-shaped `tpm` evidence fixture made only with tpm2-tools (tpm2_createek, tpm2_createak,
 * tpm2_quote, tpm2_pcrread) on swtpm is accepted by the KBS, and the secret comes back wrapped to
 * the tee key bound into the quote — the independent cross-check of Keyhold's evidence format.
 */
import { execFile } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { flattenedDecrypt, type FlattenedJWE } from 'jose';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { fitReportData, runtimeDataDigest } from '@keyhold/protocol';
import { generateTeeKeyPair } from '@keyhold/attestation-agent';
import { startSwtpm, type RunningSwtpm } from '@keyhold/test-harness';
import { createAdminKeys } from './harness/admin-keys.js';
import { startKbsProcess, type KbsProcess } from './harness/kbs-process.js';
import { attest, auth, getResource, http, variantOf } from './harness/raw-flow.js';

const run = promisify(execFile);
let dir: string;
let swtpm: RunningSwtpm;
let kbs: KbsProcess;
let env: NodeJS.ProcessEnv;

async function tools(cmd: string, args: string[]): Promise<void> {
  await run(cmd, args, { env, cwd: dir });
  await run('tpm2_flushcontext', ['-t'], { env, cwd: dir });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'keyhold-trustee-'));
  swtpm = await startSwtpm();
  env = { ...process.env, TPM2TOOLS_TCTI: swtpm.tcti };
  const admin = await createAdminKeys(dir);
  kbs = await startKbsProcess({ dataDir: join(dir, 'kbs'), adminPublicKeyFile: admin.publicKeyFile });
  await tools('tpm2_createek', ['-c', 'ek.ctx', '-G', 'rsa', '-u', 'ek.pub']);
  await tools('tpm2_createak', ['-C', 'ek.ctx', '-c', 'ak.ctx', '-G', 'rsa', '-g', 'sha256', '-s', 'rsassa', '-u', 'ak.pem', '-f', 'pem', '-n', 'ak.name']);
  const akDer = createPublicKey(await readFile(join(dir, 'ak.pem'))).export({ format: 'der', type: 'spki' });
  const token = await admin.token();
  const payload = Buffer.from(JSON.stringify({ trusted_ak: [akDer.toString('base64')] })).toString('base64');
  const headers = { authorization: `Bearer ${token}` };
  expect((await http(`${kbs.url}/kbs/v0/reference-value`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify({ version: '0.1.0', type: 'sample', payload }) })).status).toBe(200);
  expect((await http(`${kbs.url}/kbs/v0/resource/default/key/tools`, { method: 'POST', headers, body: 'made-by-tpm2-tools' })).status).toBe(200);
}, 120_000);

afterAll(async () => {
  await kbs?.stop();
  await swtpm?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

async function toolsEvidence(qualifyingHex: string): Promise<Record<string, unknown>> {
  const sel = `sha256:${Array.from({ length: 24 }, (_, i) => i).join(',')}`;
  await tools('tpm2_quote', ['-c', 'ak.ctx', '-l', sel, '-q', qualifyingHex, '-m', 'quote.msg', '-s', 'quote.sig', '-g', 'sha256']);
  await run('tpm2_pcrread', [sel, '-o', 'pcrs.bin'], { env, cwd: dir });
  const pcrs = await readFile(join(dir, 'pcrs.bin'));
  expect(pcrs.length).toBe(24 * 32);
  const akDer = createPublicKey(await readFile(join(dir, 'ak.pem'))).export({ format: 'der', type: 'spki' });
  return {
    ak_public: akDer.toString('base64'),
    tpm_quote: {
      message: (await readFile(join(dir, 'quote.msg'))).toString('base64'),
      signature: (await readFile(join(dir, 'quote.sig'))).toString('base64'),
      pcrs: Array.from({ length: 24 }, (_, i) => pcrs.subarray(i * 32, i * 32 + 32).toString('hex')),
    },
  };
}

it('accepts a tpm2-tools quote in Trustee’s evidence shape and releases to the bound key', async () => {
  const s = await auth(kbs.url);
  const teeKey = await generateTeeKeyPair('ec');
  const q = fitReportData(runtimeDataDigest({ nonce: s.nonce, teePubkey: teeKey.publicJwk, additionalEvidence: '' }));
  const evidence = await toolsEvidence(Buffer.from(q).toString('hex'));
  const r = await attest(kbs.url, s.cookie, { 'runtime-data': { nonce: s.nonce, 'tee-pubkey': teeKey.publicJwk }, 'tee-evidence': { primary_evidence: evidence, additional_evidence: '' } });
  expect(r.status, r.text).toBe(200);
  const res = await getResource(kbs.url, 'default/key/tools', { cookie: s.cookie });
  expect(res.status).toBe(200);
  const { plaintext } = await flattenedDecrypt(res.json as FlattenedJWE, teeKey.privateKey);
  expect(Buffer.from(plaintext).toString()).toBe('made-by-tpm2-tools');
});

it('refuses the same tpm2-tools quote when it was made for another tee key', async () => {
  const s = await auth(kbs.url);
  const teeKey = await generateTeeKeyPair('ec');
  const other = await generateTeeKeyPair('ec');
  const q = fitReportData(runtimeDataDigest({ nonce: s.nonce, teePubkey: other.publicJwk, additionalEvidence: '' }));
  const evidence = await toolsEvidence(Buffer.from(q).toString('hex'));
  const r = await attest(kbs.url, s.cookie, { 'runtime-data': { nonce: s.nonce, 'tee-pubkey': teeKey.publicJwk }, 'tee-evidence': { primary_evidence: evidence, additional_evidence: '' } });
  expect(r.status).toBe(401);
  expect(variantOf(r)).toBe('AttestationFailed');
});
