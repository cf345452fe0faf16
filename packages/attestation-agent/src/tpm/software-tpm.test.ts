import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tpm2ToolsPcrFile } from '@keyhold/test-harness';
import { createSoftwareTpm } from './software-tpm.js';
import { decodeUnverifiedQuoteAttest } from './quote-format.js';
import { tpm2bPublicToSpkiDer } from './public-area.js';
import type { KeyAlg } from './device.js';

const run = promisify(execFile);
const ALL = Array.from({ length: 24 }, (_, i) => i);
let work: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'keyhold-swtpm-soft-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('createSoftwareTpm', () => {
  it('activates a credential made by tpm2_makecredential for an RSA EK, bound to the AK name', async () => {
    const tpm = createSoftwareTpm();
    const ek = await tpm.createEk('rsa');
    const { key: ak } = await tpm.createAk(ek, 'ecc');
    const { key: otherAk } = await tpm.createAk(ek, 'ecc');
    await writeFile(join(work, 'soft-ek.pub'), ek.publicArea);
    await writeFile(join(work, 'soft-secret.bin'), Buffer.from('software credential'));
    await run('tpm2_makecredential', ['-T', 'none', '-e', 'soft-ek.pub', '-s', 'soft-secret.bin', '-n', Buffer.from(ak.name).toString('hex'), '-o', 'soft-cred.out'], { cwd: work });
    const out = await readFile(join(work, 'soft-cred.out'));
    const idLen = 2 + out.readUInt16BE(8);
    const blob = out.subarray(8, 8 + idLen);
    const secret = out.subarray(8 + idLen);
    expect(Buffer.from(await tpm.activateCredential(ak, ek, blob, secret)).toString()).toBe('software credential');
    // SECURITY negatives: another AK, a tampered blob, a truncated secret.
    await expect(tpm.activateCredential(otherAk, ek, blob, secret)).rejects.toMatchObject({ code: 'TPM_COMMAND_FAILED' });
    const tampered = Buffer.from(blob);
    tampered[tampered.length - 1]! ^= 1;
    await expect(tpm.activateCredential(ak, ek, tampered, secret)).rejects.toMatchObject({ code: 'TPM_COMMAND_FAILED' });
    await expect(tpm.activateCredential(ak, ek, blob, secret.subarray(0, 10))).rejects.toMatchObject({ code: 'TPM_COMMAND_FAILED' });
  });

  it.each(['rsa', 'ecc'] as KeyAlg[])('produces %s quotes that tpm2_checkquote accepts', async (alg) => {
    const akKey =
      alg === 'rsa'
        ? generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey
        : generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const tpm = createSoftwareTpm({ akKeys: { [alg]: akKey }, ekKeys: { ecc: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey } });
    await tpm.extendPcr(3, [{ alg: 'sha256', digest: new Uint8Array(32).fill(9) }]);
    const ek = await tpm.createEk('ecc');
    const { key: ak } = await tpm.createAk(ek, alg);
    const nonce = new Uint8Array(32).fill(0x42);
    const q = await tpm.quote(ak, 'sha256', ALL, nonce);
    const pcrs = await tpm.readPcrs('sha256', ALL);
    const spki = Buffer.from(tpm2bPublicToSpkiDer(ak.publicArea)).toString('base64');
    await writeFile(join(work, `${alg}.pem`), `-----BEGIN PUBLIC KEY-----\n${spki}\n-----END PUBLIC KEY-----\n`);
    await writeFile(join(work, `${alg}.msg`), q.message);
    await writeFile(join(work, `${alg}.sig`), q.signature);
    await writeFile(join(work, `${alg}.pcrs`), tpm2ToolsPcrFile(0x000b, pcrs));
    const args = ['-u', `${alg}.pem`, '-m', `${alg}.msg`, '-s', `${alg}.sig`, '-f', `${alg}.pcrs`, '-g', 'sha256'];
    await run('tpm2_checkquote', [...args, '-q', Buffer.from(nonce).toString('hex')], { cwd: work });
    await expect(run('tpm2_checkquote', [...args, '-q', '00'.repeat(32)], { cwd: work })).rejects.toThrow();
    const a = decodeUnverifiedQuoteAttest(q.message);
    expect(Buffer.from(a.qualifiedSigner)).toEqual(Buffer.from(ak.name));
    expect(pcrs[17]!.every((b) => b === 0xff)).toBe(true);
  });

  it('keeps the TPM semantics tests depend on, and refuses what a TPM refuses', async () => {
    const tpm = createSoftwareTpm({ nv: new Map([[0x01c00002, Uint8Array.of(1, 2, 3)]]) });
    const ek = await tpm.createEk('ecc');
    const { key, blob } = await tpm.createAk(ek, 'ecc');
    expect(await tpm.transientHandles()).toHaveLength(2);
    await tpm.flushKey(key);
    const again = await tpm.loadAk(ek, blob);
    expect(Buffer.from(again.publicArea)).toEqual(Buffer.from(blob.publicArea));
    // SECURITY negative: a blob from another instance does not load.
    const other = createSoftwareTpm();
    const otherEk = await other.createEk('ecc');
    await expect(other.loadAk(otherEk, blob)).rejects.toMatchObject({ code: 'TPM_COMMAND_FAILED' });
    expect(await tpm.readNv(0x01c00002)).toEqual(Uint8Array.of(1, 2, 3));
    await expect(tpm.readNv(0x01c0000a)).rejects.toMatchObject({ code: 'TPM_NV_NOT_FOUND' });
    await expect(tpm.loadPersistentKey()).rejects.toMatchObject({ code: 'TPM_NO_AK' });
    const p = await tpm.persistKey(again, 0x81010002);
    expect((await tpm.loadPersistentKey(0x81010002)).publicArea).toEqual(p.publicArea);
    await expect(tpm.activateCredential(again, ek, new Uint8Array(), new Uint8Array())).rejects.toMatchObject({ code: 'TPM_UNSUPPORTED' });
    await expect(tpm.readPcrs('sha256', [24])).rejects.toBeInstanceOf(TypeError);
    const weak = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
    const weakTpm = createSoftwareTpm({ akKeys: { rsa: weak } });
    await expect(weakTpm.createAk(await weakTpm.createEk('ecc'), 'rsa')).rejects.toThrow(/RSA 2048/);
    await expect(weakTpm.createAk(ek, 'ecc')).rejects.toThrow(/does not belong/);
    await tpm.close();
    await expect(tpm.getRandom(4)).rejects.toMatchObject({ code: 'TPM_CLOSED' });
  });
});
