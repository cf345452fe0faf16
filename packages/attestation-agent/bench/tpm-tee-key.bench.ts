/**
 * Benchmark: what a TPM-resident tee key adds to one attested release, on swtpm through tpm2-tss.
 * Per flow the agent creates the key, certifies it with the AK (TPM2_Certify) and unwraps the KBS's
 * JWE (TPM2_RSA_Decrypt / TPM2_ECDH_ZGen + software KDF/AES). Baselines, measured in the same run:
 * the default software tee key (`ec`: P-256 generate + jose ECDH-ES+A256KW decrypt) and the software
 * key of the same kind (`rsa` is RSA-3072 in software, RSA-2048 in the TPM). The quote every flow
 * already makes is printed for scale. Medians over N rounds.
 *
 *   node --import tsx packages/attestation-agent/bench/tpm-tee-key.bench.ts [--rounds 10]
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { FlattenedEncrypt, importJWK } from 'jose';
import type { ResourceResponse, TeePubkey } from '@keyhold/protocol';
import { startSwtpm } from '@keyhold/test-harness';
import { collectTpmEvidence, loadOrCreateAk, openTpmDevice, softwareTeeKeys, TpmTeeKeySource, type TeeKey, type TeeKeySource } from '../src/index.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '10' } } });
const ROUNDS = Number(values.rounds);
if (!Number.isInteger(ROUNDS) || ROUNDS < 1) throw new TypeError('--rounds must be a positive integer');

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (n: number): string => `${n.toFixed(1).padStart(8)} ms`;
const SECRET = randomBytes(32);

async function jweTo(jwk: TeePubkey): Promise<ResourceResponse> {
  const alg = jwk.kty === 'RSA' ? 'RSA-OAEP-256' : 'ECDH-ES+A256KW';
  const jwe = await new FlattenedEncrypt(SECRET).setProtectedHeader({ alg, enc: 'A256GCM' }).encrypt(await importJWK({ ...jwk, alg }, alg));
  return { protected: jwe.protected!, encrypted_key: jwe.encrypted_key!, iv: jwe.iv!, ciphertext: jwe.ciphertext, tag: jwe.tag! };
}

interface Steps {
  create: number[];
  certify: number[];
  decrypt: number[];
}

async function measure(source: TeeKeySource): Promise<Steps> {
  const s: Steps = { create: [], certify: [], decrypt: [] };
  for (let i = 0; i < ROUNDS; i++) {
    let t = performance.now();
    const key: TeeKey = await source.create();
    s.create.push(performance.now() - t);
    if (key.residencyEvidence !== undefined) {
      t = performance.now();
      await key.residencyEvidence(new Uint8Array(randomBytes(32)));
      s.certify.push(performance.now() - t);
    }
    const jwe = await jweTo(key.publicJwk);
    t = performance.now();
    const plain = await key.decrypt(jwe);
    s.decrypt.push(performance.now() - t);
    if (!Buffer.from(plain).equals(SECRET)) throw new Error('decrypted the wrong secret');
  }
  return s;
}

const total = (s: Steps): number => median(s.create) + (s.certify.length > 0 ? median(s.certify) : 0) + median(s.decrypt);

async function main(): Promise<void> {
  const swtpm = await startSwtpm();
  const tpm = await openTpmDevice({ tcti: swtpm.tcti });
  try {
    const ak = await loadOrCreateAk(tpm, { persistentHandle: 0x81010002, persist: true });
    const quote: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const t = performance.now();
      await collectTpmEvidence(tpm, ak.ak, new Uint8Array(randomBytes(32)));
      quote.push(performance.now() - t);
    }
    const software = { rsa: await measure(softwareTeeKeys('rsa')), ec: await measure(softwareTeeKeys('ec')) };
    const rows: [string, Steps, Steps][] = [];
    for (const [name, alg, soft] of [['rsa', 'rsa', 'rsa'], ['ecc', 'ecc', 'ec']] as const) {
      rows.push([`tpm-${name}`, await measure(new TpmTeeKeySource({ tpm, ak: ak.ak, alg })), software[soft]]);
      rows.push([`tpm-${name} sealed 0-23`, await measure(new TpmTeeKeySource({ tpm, ak: ak.ak, alg, sealToPcrs: Array.from({ length: 24 }, (_, i) => i) })), software[soft]]);
    }
    await ak.release();

    const base = total(software.ec);
    console.log(`TPM-resident tee keys on swtpm (${ROUNDS} rounds, medians)`);
    console.log(`quote (PCRs 0-23, every flow already pays it): ${fmt(median(quote))}`);
    console.log(`software baselines (create + decrypt): ec (default) ${fmt(total(software.ec))}, rsa (RSA-3072) ${fmt(total(software.rsa))}`);
    console.log('');
    console.log(`${'flow'.padEnd(22)}${'create'.padStart(11)}${'certify'.padStart(11)}${'decrypt'.padStart(11)}${'total'.padStart(11)}${'added vs ec'.padStart(14)}${'vs same kind'.padStart(14)}`);
    for (const [name, s, same] of rows) {
      console.log(`${name.padEnd(22)}${fmt(median(s.create))}${fmt(median(s.certify))}${fmt(median(s.decrypt))}${fmt(total(s))}${fmt(total(s) - base).padStart(14)}${fmt(total(s) - total(same)).padStart(14)}`);
    }
  } finally {
    await tpm.close();
    await swtpm.stop();
  }
}

await main();
