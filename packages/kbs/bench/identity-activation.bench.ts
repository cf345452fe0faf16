/**
 * Benchmark: what hardware identity adds to one KBS handshake (auth → attest) on swtpm, with the
 * KBS in-process (startKbs) and the agent library over tpm2-tss FFI. Three modes, N rounds each,
 * measured in the same run:
 *   baseline   no identity named, AK in trusted_ak (Trustee path)
 *   enrolled   identity named, AK already bound: EK cert chain + allowlist lookups, no activation
 *   activation identity named, binding removed before each round: MakeCredential + ActivateCredential
 * Also prints the TPM steps alone (createEk RSA/ECC, ActivateCredential).
 *
 *   node --import tsx packages/kbs/bench/identity-activation.bench.ts [--rounds 10]
 */
import { generateKeyPairSync } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { SignJWT } from 'jose';
import { pino } from 'pino';
import { IdentityContributor, KbsClient, loadOrCreateAk, openTpmDevice, TpmAttester, tpm2bPublicToSpkiDer } from '@keyhold/attestation-agent';
import { startSwtpm, SWTPM_LOCALCA_ISSUER_CERT, SWTPM_LOCALCA_ROOT_CERT } from '@keyhold/test-harness';
import { loadKbsConfig, startKbs } from '../src/index.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '10' } } });
const ROUNDS = Number(values.rounds);

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (n: number): string => `${n.toFixed(1).padStart(7)} ms`;

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'keyhold-bench-identity-'));
  const swtpm = await startSwtpm({ ekCert: true });
  try {
    const admin = generateKeyPairSync('ed25519');
    await writeFile(join(dir, 'admin.pub.pem'), admin.publicKey.export({ format: 'pem', type: 'spki' }));
    await mkdir(join(dir, 'data', 'ek-ca'), { recursive: true });
    await copyFile(SWTPM_LOCALCA_ROOT_CERT, join(dir, 'data', 'ek-ca', 'root.pem'));
    await copyFile(SWTPM_LOCALCA_ISSUER_CERT, join(dir, 'data', 'ek-ca', 'issuer.pem'));
    const config = await loadKbsConfig(['--insecure-http', '--listen', '127.0.0.1:0', '--data-dir', join(dir, 'data'), '--admin-public-key', join(dir, 'admin.pub.pem')], {});
    const kbs = await startKbs(config, pino({ level: 'silent' }));
    const token = await new SignJWT({}).setProtectedHeader({ alg: 'EdDSA' }).setExpirationTime('10m').sign(admin.privateKey);
    const adminCall = (method: string, path: string, body?: unknown) =>
      fetch(kbs.url + path, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });

    const tpm = await openTpmDevice({ tcti: swtpm.tcti });
    const ak = await loadOrCreateAk(tpm, { persistentHandle: 0x81010002, persist: true });
    const akSpki = Buffer.from(tpm2bPublicToSpkiDer(ak.ak.publicArea)).toString('base64');
    await adminCall('POST', '/kbs/v0/reference-value', { version: '0.1.0', type: 'sample', payload: Buffer.from(JSON.stringify({ trusted_ak: [akSpki] })).toString('base64') });

    const tpmSteps: Record<string, number[]> = { 'createEk rsa': [], 'createEk ecc': [] };
    for (let i = 0; i < ROUNDS; i++) {
      for (const alg of ['rsa', 'ecc'] as const) {
        const t0 = performance.now();
        const ek = await tpm.createEk(alg);
        tpmSteps[`createEk ${alg}`]!.push(performance.now() - t0);
        await tpm.flushKey(ek);
      }
    }

    const contributor = new IdentityContributor({ tpm, ak: ak.ak });
    const nodeId = await (async () => {
      const { ekHash, parseTpm2bPublic, tpmPublicToSpkiDer } = await import('@keyhold/verifier');
      return ekHash(tpmPublicToSpkiDer(parseTpm2bPublic(Buffer.from((await contributor.identity()).ek_tpm2b_public, 'base64'))));
    })();
    const handshake = async (withIdentity: boolean): Promise<number> => {
      const client = new KbsClient({ url: kbs.url, attester: new TpmAttester(tpm, ak.ak, withIdentity ? [contributor] : []) });
      const t0 = performance.now();
      await client.attest();
      return performance.now() - t0;
    };
    const modes: Record<string, number[]> = { baseline: [], enrolled: [], activation: [] };
    await handshake(true); // warm up and enrol
    for (let i = 0; i < ROUNDS; i++) {
      modes['baseline']!.push(await handshake(false));
      modes['enrolled']!.push(await handshake(true));
      await adminCall('DELETE', `/kbs/v0/admin/nodes/${nodeId}`);
      modes['activation']!.push(await handshake(true));
    }
    await contributor.close();
    await ak.release();
    await tpm.close();
    await kbs.close();

    console.log(`identity handshake on swtpm 0.7 (median of ${ROUNDS}; the agent's EK is created once per process and reused)`);
    const base = median(modes['baseline']!);
    for (const [k, v] of Object.entries(modes)) console.log(`  ${k.padEnd(11)} ${fmt(median(v))}  (+${(median(v) - base).toFixed(1)} ms vs baseline)`);
    for (const [k, v] of Object.entries(tpmSteps)) console.log(`  ${k.padEnd(13)} ${fmt(median(v))}`);
  } finally {
    await swtpm.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
