/**
 * TPM-resident tee keys on swtpm through tpm2-tss: created under the SRK, certified by the AK
 * (verified with @keyhold/verifier), unwrapping what jose encrypts with TPM2_RSA_Decrypt /
 * TPM2_ECDH_ZGen, sealed with PolicyPCR, cached — and cross-checked with tpm2-tools on the same TPM.
 */
import { execFile } from 'node:child_process';
import { constants, createDecipheriv, publicEncrypt, randomBytes } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { FlattenedEncrypt, importJWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSwtpm, type RunningSwtpm } from '@keyhold/test-harness';
import { appraiseTpmEvidence, parseTpm2bPublic, tpmPublicToKeyObject, verifyTeeKeyCertification } from '@keyhold/verifier';
import type { ResourceResponse } from '@keyhold/protocol';
import { TpmError } from '../errors.js';
import { collectTpmEvidence } from '../evidence/tpm-evidence.js';
import { loadOrCreateAk } from '../tpm/ak-store.js';
import type { TpmDevice } from '../tpm/device.js';
import { openTpmDevice } from '../tpm/tss-device.js';
import { SealedJweCache } from './sealed-jwe-cache.js';
import { TEE_KEY_EVIDENCE_FIELD, TpmTeeKeySource, type TpmTeeKey } from './tpm-tee-key.js';

const run = promisify(execFile);
const SECRET = new TextEncoder().encode('released into the TPM');
const AK_HANDLE = 0x81010002;
const SRK_ATTRS = 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|restricted|decrypt';

let a: RunningSwtpm;
let b: RunningSwtpm;
let work: string;

async function withDevice<T>(tpm: RunningSwtpm, fn: (d: TpmDevice) => Promise<T>): Promise<T> {
  const d = await openTpmDevice({ tcti: tpm.tcti });
  try {
    return await fn(d);
  } finally {
    await d.close();
  }
}

/** Run tpm2-tools against a swtpm (our device must be closed: swtpm serves one client), flushing after. */
async function tool(tpm: RunningSwtpm, cmd: string, args: string[]): Promise<void> {
  const env = { ...process.env, TPM2TOOLS_TCTI: tpm.tcti };
  try {
    await run(cmd, args, { env, cwd: work });
  } finally {
    await run('tpm2_flushcontext', ['-t'], { env, cwd: work });
  }
}

async function jweTo(key: TpmTeeKey, alg: string): Promise<ResourceResponse> {
  const jwe = await new FlattenedEncrypt(SECRET).setProtectedHeader({ alg, enc: 'A256GCM' }).encrypt(await importJWK({ ...key.publicJwk, alg }, alg));
  return { protected: jwe.protected!, encrypted_key: jwe.encrypted_key ?? '', iv: jwe.iv!, ciphertext: jwe.ciphertext, tag: jwe.tag! };
}

async function errorOf(p: Promise<unknown>): Promise<{ code?: string; message: string }> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(Error);
  return err as { code?: string; message: string };
}

/**
 * A TCP relay in front of a swtpm (command port and control port = command port + 1, as the swtpm
 * TCTI expects) that records every byte the TPM sends back. It runs in a worker thread: tpm2-tss
 * initialises its TCTI synchronously on this thread, so a relay on this event loop would deadlock.
 */
const RELAY = `
const { createServer, connect } = require('node:net');
const { parentPort, workerData } = require('node:worker_threads');
const chunks = [];
const relay = (to) => createServer((client) => {
  const upstream = connect(to, '127.0.0.1');
  client.on('data', (d) => upstream.write(d));
  upstream.on('data', (d) => { chunks.push(Buffer.from(d)); client.write(d); });
  client.on('close', () => upstream.destroy());
  upstream.on('close', () => client.destroy());
  client.on('error', () => upstream.destroy());
  upstream.on('error', () => client.destroy());
});
const listen = (srv, port) => new Promise((resolve) => { srv.once('error', () => resolve(false)); srv.listen(port, '127.0.0.1', () => resolve(true)); });
(async () => {
  for (;;) {
    const cmd = relay(workerData.port);
    const ctrl = relay(workerData.ctrlPort);
    if (!(await listen(cmd, 0))) continue;
    const port = cmd.address().port;
    if (port < 65535 && (await listen(ctrl, port + 1))) {
      parentPort.on('message', () => parentPort.postMessage(Buffer.concat(chunks)));
      parentPort.postMessage(port);
      return;
    }
    cmd.close();
  }
})();
`;

async function recordingRelay(target: RunningSwtpm): Promise<{ tcti: string; fromTpm: () => Promise<Buffer>; close: () => Promise<number> }> {
  const worker = new Worker(RELAY, { eval: true, workerData: { port: target.port, ctrlPort: target.ctrlPort } });
  const port = await new Promise<number>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  return {
    tcti: `swtpm:host=127.0.0.1,port=${port}`,
    fromTpm: () =>
      new Promise<Buffer>((resolve) => {
        worker.once('message', (b: Uint8Array) => resolve(Buffer.from(b)));
        worker.postMessage('dump');
      }),
    close: () => worker.terminate(),
  };
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'keyhold-tee-key-'));
  [a, b] = await Promise.all([startSwtpm(), startSwtpm()]);
}, 60_000);

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await rm(work, { recursive: true, force: true });
});

describe('TPM-resident tee keys on swtpm', () => {
  it('RSA: certified by the quote AK, unwraps RSA-OAEP-256 in the TPM, flushes every handle; tpm2_rsadecrypt agrees', async () => {
    const { jwe, key } = await withDevice(a, async (d) => {
      const ak = await loadOrCreateAk(d, { persistentHandle: AK_HANDLE, persist: true });
      const key = await new TpmTeeKeySource({ tpm: d, ak: ak.ak, alg: 'rsa' }).create();
      expect(key.publicJwk).toMatchObject({ kty: 'RSA', alg: 'RSA-OAEP-256', e: 'AQAB' });
      // The certification verifies against the quote made with the same qualifying data.
      const qd = new Uint8Array(randomBytes(32));
      const quote = appraiseTpmEvidence(await collectTpmEvidence(d, ak.ak, qd), { expectedReportData: qd, akTrust: { mode: 'not-checked' } }).quote;
      const ev = (await key.residencyEvidence(qd))[TEE_KEY_EVIDENCE_FIELD] as Record<string, string>;
      expect(Object.keys(ev).sort()).toEqual(['certify_info', 'signature', 'tpm2b_public']);
      const v = verifyTeeKeyCertification({
        quote,
        tpm2bPublic: Buffer.from(ev['tpm2b_public']!, 'base64'),
        certifyInfo: Buffer.from(ev['certify_info']!, 'base64'),
        signature: Buffer.from(ev['signature']!, 'base64'),
        expectedExtraData: qd,
        teePubkeyJwk: key.publicJwk,
      });
      expect(v.sealedPcrs).toEqual([]);
      const jwe = await jweTo(key, 'RSA-OAEP-256');
      expect(await key.decrypt(jwe)).toEqual(SECRET);
      expect(await d.transientHandles()).toEqual([]);
      await ak.release();
      return { jwe, key };
    });
    // tpm2-tools: the same SRK from the TCG template (unique = 2 × 32 zero bytes; -u takes tpm2-tss's
    // in-memory TPMS_ECC_POINT: little-endian size, 128-byte buffer, twice), then the same key.
    await writeFile(join(work, 'u.bin'), Buffer.concat([Buffer.of(32, 0), Buffer.alloc(128), Buffer.of(32, 0), Buffer.alloc(128)]));
    await writeFile(join(work, 'k.pub'), key.stored.blob.publicArea);
    await writeFile(join(work, 'k.priv'), key.stored.blob.privateBlob);
    await writeFile(join(work, 'ek.bin'), Buffer.from(jwe.encrypted_key, 'base64url'));
    await tool(a, 'tpm2_createprimary', ['-C', 'o', '-G', 'ecc256:aes128cfb', '-a', SRK_ATTRS, '-u', 'u.bin', '-c', 'srk.ctx']);
    await tool(a, 'tpm2_load', ['-C', 'srk.ctx', '-u', 'k.pub', '-r', 'k.priv', '-c', 'k.ctx']);
    await tool(a, 'tpm2_rsadecrypt', ['-c', 'k.ctx', '-s', 'oaep', '-o', 'cek.bin', 'ek.bin']);
    const cek = await readFile(join(work, 'cek.bin'));
    const d = createDecipheriv('aes-256-gcm', cek, Buffer.from(jwe.iv, 'base64url'));
    d.setAAD(Buffer.from(jwe.protected, 'ascii'));
    d.setAuthTag(Buffer.from(jwe.tag, 'base64url'));
    expect(new Uint8Array(Buffer.concat([d.update(Buffer.from(jwe.ciphertext, 'base64url')), d.final()]))).toEqual(SECRET);
  });

  it('ECC P-256: unwraps ECDH-ES+A256KW and ECDH-ES with TPM2_ECDH_ZGen', async () => {
    await withDevice(a, async (d) => {
      const ak = await loadOrCreateAk(d, { persistentHandle: AK_HANDLE, persist: true });
      const key = await new TpmTeeKeySource({ tpm: d, ak: ak.ak, alg: 'ecc' }).create();
      expect(key.publicJwk).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ECDH-ES+A256KW' });
      expect(await key.decrypt(await jweTo(key, 'ECDH-ES+A256KW'))).toEqual(SECRET);
      expect(await key.decrypt(await jweTo(key, 'ECDH-ES'))).toEqual(SECRET);
      expect(await d.transientHandles()).toEqual([]);
      await ak.release();
    });
  });

  it('sealed to PCRs: decrypts (and opens its cache entry) while they hold; after an extend TPM_POLICY_FAILED, the unsealed key still decrypts', async () => {
    const cacheDir = join(work, 'cache');
    await withDevice(a, async (d) => {
      const ak = await loadOrCreateAk(d, { persistentHandle: AK_HANDLE, persist: true });
      const sealedSource = new TpmTeeKeySource({ tpm: d, ak: ak.ak, alg: 'rsa', sealToPcrs: [16, 0] });
      const sealed = await sealedSource.create();
      const unsealed = await new TpmTeeKeySource({ tpm: d, ak: ak.ak, alg: 'ecc' }).create();
      expect(sealed.stored.sealedPcrs).toEqual([0, 16]);
      const qd = new Uint8Array(randomBytes(32));
      const ev = (await sealed.residencyEvidence(qd))[TEE_KEY_EVIDENCE_FIELD] as Record<string, unknown>;
      expect(ev['sealed_pcrs']).toEqual([0, 16]);
      const sealedJwe = await jweTo(sealed, 'RSA-OAEP-256');
      const unsealedJwe = await jweTo(unsealed, 'ECDH-ES+A256KW');
      expect(await sealed.decrypt(sealedJwe)).toEqual(SECRET);
      const cache = new SealedJweCache({ dir: cacheDir, keys: sealedSource });
      await cache.write('/kbs/v0/resource/a/b/c', sealedJwe, sealed);
      expect(await cache.open('/kbs/v0/resource/a/b/c')).toEqual(SECRET);
      expect(await cache.read('/kbs/v0/resource/a/b/other')).toBeUndefined();

      await d.extendPcr(16, [{ alg: 'sha256', digest: new Uint8Array(32).fill(0x42) }]);
      const refused = await errorOf(sealed.decrypt(sealedJwe));
      expect(refused).toBeInstanceOf(TpmError);
      expect(refused.code).toBe('TPM_POLICY_FAILED');
      expect((await errorOf(cache.open('/kbs/v0/resource/a/b/c'))).code).toBe('TPM_POLICY_FAILED');
      expect(await cache.read('/kbs/v0/resource/a/b/c')).toBeUndefined();
      expect(await unsealed.decrypt(unsealedJwe)).toEqual(SECRET);
      expect(await d.transientHandles()).toEqual([]);
      await ak.release();
    });
    const files = await readdir(cacheDir);
    expect(files).toHaveLength(1);
    expect(await readFile(join(cacheDir, files[0]!), 'utf8')).not.toContain(Buffer.from(SECRET).toString('base64'));
  });

  it('the unwrapped key never crosses the TPM interface in clear (salted session encrypts the response)', async () => {
    const relay = await recordingRelay(a);
    try {
      const d = await openTpmDevice({ tcti: relay.tcti });
      try {
        const ak = await loadOrCreateAk(d, { persistentHandle: AK_HANDLE, persist: true });
        const known = new Uint8Array(randomBytes(32));
        // Control: an unencrypted answer (GetRandom) is visible to the relay.
        const random = await d.getRandom(32);
        for (const [alg, sealToPcrs] of [['rsa', []], ['rsa', [0]]] as const) {
          const key = await new TpmTeeKeySource({ tpm: d, ak: ak.ak, alg, sealToPcrs }).create();
          const rsa = tpmPublicToKeyObject(parseTpm2bPublic(key.stored.blob.publicArea));
          const c = publicEncrypt({ key: rsa, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, known);
          expect(await d.rsaDecrypt(key.stored.blob, c, sealToPcrs.length > 0 ? { bank: 'sha256', indices: sealToPcrs } : undefined)).toEqual(known);
        }
        const ecc = await new TpmTeeKeySource({ tpm: d, ak: ak.ak, alg: 'ecc' }).create();
        expect(await ecc.decrypt(await jweTo(ecc, 'ECDH-ES'))).toEqual(SECRET);
        await ak.release();
        const seen = await relay.fromTpm();
        expect(seen.includes(Buffer.from(random))).toBe(true);
        expect(seen.includes(Buffer.from(known))).toBe(false);
        expect(seen.includes(Buffer.from(known.subarray(0, 8)))).toBe(false);
      } finally {
        await d.close();
      }
    } finally {
      await relay.close();
    }
  });

  it('another TPM cannot load the key: a JWE captured in transit stays closed', async () => {
    const captured = await withDevice(a, async (d) => {
      const ak = await loadOrCreateAk(d, { persistentHandle: AK_HANDLE, persist: true });
      const key = await new TpmTeeKeySource({ tpm: d, ak: ak.ak, alg: 'rsa' }).create();
      await ak.release();
      return { stored: key.stored, jwe: await jweTo(key, 'RSA-OAEP-256') };
    });
    await withDevice(b, async (d) => {
      const ak = await loadOrCreateAk(d, { persistentHandle: AK_HANDLE, persist: true });
      const thief = new TpmTeeKeySource({ tpm: d, ak: ak.ak, alg: 'rsa' }).restore(captured.stored);
      const err = await errorOf(thief.decrypt(captured.jwe));
      expect(err).toBeInstanceOf(TpmError);
      expect(err.code).toBe('TPM_COMMAND_FAILED');
      expect(err.message).toMatch(/Esys_Load/);
      expect(await d.transientHandles()).toEqual([]);
      await ak.release();
    });
  });

  it('without a resource manager: other loaded keys are parked while the SRK and the key need slots, then restored', async () => {
    await withDevice(b, async (d) => {
      // A stored AK (AK and its EK stay loaded) plus another EK: the TPM's three object slots are full.
      const ak = await loadOrCreateAk(d, { stateDir: join(work, 'state') });
      const other = await d.createEk('ecc');
      expect(await d.transientHandles()).toHaveLength(3);
      const key = await new TpmTeeKeySource({ tpm: d, ak: ak.ak, alg: 'ecc' }).create();
      const qd = new Uint8Array(randomBytes(32));
      await key.residencyEvidence(qd);
      expect(await key.decrypt(await jweTo(key, 'ECDH-ES+A256KW'))).toEqual(SECRET);
      // The parked keys came back: the AK still quotes.
      await collectTpmEvidence(d, ak.ak, qd);
      expect(await d.transientHandles()).toHaveLength(3);
      await d.flushKey(other);
      await ak.release();
      expect(await d.transientHandles()).toEqual([]);
    });
  });
});
