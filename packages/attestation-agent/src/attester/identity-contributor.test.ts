import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KbsClientError } from '../kbs-client/errors.js';
import { loadOrCreateAk } from '../tpm/ak-store.js';
import { EK_CERT_NV_INDEX, type TpmDevice, type TpmKey } from '../tpm/device.js';
import { createSoftwareTpm } from '../tpm/software-tpm.js';
import { IdentityContributor, identityContributorFor } from './identity-contributor.js';

const run = promisify(execFile);
let work: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'keyhold-identity-contrib-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** tpm2_makecredential (tpm2-tools, offline) for the EK public area and AK name: an independent implementation. */
async function makeCredential(ek: Uint8Array, akName: Uint8Array, secret: Uint8Array): Promise<{ credential_blob: string; encrypted_secret: string }> {
  const tag = randomBytes(4).toString('hex');
  await writeFile(join(work, `ek-${tag}.pub`), ek);
  await writeFile(join(work, `secret-${tag}.bin`), secret);
  await run('tpm2_makecredential', ['-T', 'none', '-e', `ek-${tag}.pub`, '-s', `secret-${tag}.bin`, '-n', Buffer.from(akName).toString('hex'), '-o', `cred-${tag}.out`], { cwd: work });
  const out = await readFile(join(work, `cred-${tag}.out`));
  // tpm2-tools credential file: magic (4), version (4), TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET.
  const idLen = 2 + out.readUInt16BE(8);
  return { credential_blob: out.subarray(8, 8 + idLen).toString('base64'), encrypted_secret: out.subarray(8 + idLen).toString('base64') };
}

async function node(nv?: Map<number, Uint8Array>): Promise<{ tpm: TpmDevice; ak: TpmKey }> {
  const tpm = createSoftwareTpm(nv !== undefined ? { nv } : {});
  const { ak } = await loadOrCreateAk(tpm, { persistentHandle: 0x81010002, persist: true });
  return { tpm, ak };
}

describe('IdentityContributor', () => {
  it('names the EK public, the EK certificate from NV and the AK public in the /auth extra-params', async () => {
    const cert = new Uint8Array(randomBytes(600));
    const { tpm, ak } = await node(new Map([[EK_CERT_NV_INDEX.rsa, cert]]));
    const c = new IdentityContributor({ tpm, ak });
    const extra = await c.requestExtraParams();
    const id = extra['tpm-identity'] as Record<string, string>;
    expect(Object.keys(id).sort()).toEqual(['ak_tpm2b_public', 'ek_cert', 'ek_tpm2b_public']);
    expect(Buffer.from(id['ak_tpm2b_public']!, 'base64')).toEqual(Buffer.from(ak.publicArea));
    expect(Buffer.from(id['ek_cert']!, 'base64')).toEqual(Buffer.from(cert));
    // Without a credential in the challenge the evidence repeats the identity and answers nothing.
    expect(await c.evidenceFields({})).toEqual(id);
    await c.close();
  });

  it('leaves the certificate out when NV holds none', async () => {
    const { tpm, ak } = await node();
    const c = new IdentityContributor({ tpm, ak });
    expect(Object.keys((await c.requestExtraParams())['tpm-identity'] as object).sort()).toEqual(['ak_tpm2b_public', 'ek_tpm2b_public']);
    await c.close();
  });

  it('answers a credential made for its EK and AK with TPM2_ActivateCredential, and nothing made for another AK', async () => {
    const { tpm, ak } = await node();
    const c = new IdentityContributor({ tpm, ak });
    const id = await c.identity();
    const secret = new Uint8Array(randomBytes(32));
    const cred = await makeCredential(Buffer.from(id.ek_tpm2b_public, 'base64'), ak.name, secret);
    const ev = await c.evidenceFields({ 'tpm-credential': cred });
    expect(Buffer.from(ev['activated_credential'] as string, 'base64')).toEqual(Buffer.from(secret));
    expect(ev['ek_tpm2b_public']).toBe(id.ek_tpm2b_public);

    const other = await loadOrCreateAk(tpm, { persistentHandle: 0x81010003, persist: true });
    const forOther = await makeCredential(Buffer.from(id.ek_tpm2b_public, 'base64'), other.ak.name, secret);
    await expect(c.evidenceFields({ 'tpm-credential': forOther })).rejects.toMatchObject({ code: 'TPM_COMMAND_FAILED' });
    await c.close();
  });

  it('refuses malformed credential challenges before touching the TPM', async () => {
    const { tpm, ak } = await node();
    const c = new IdentityContributor({ tpm, ak });
    const good = Buffer.alloc(40, 1).toString('base64');
    for (const bad of [
      'x',
      null,
      { credential_blob: good },
      { credential_blob: 'not base64!', encrypted_secret: good },
      { credential_blob: Buffer.alloc(4096).toString('base64'), encrypted_secret: good },
      { credential_blob: good, encrypted_secret: Buffer.alloc(600).toString('base64') },
      { credential_blob: 'AA', encrypted_secret: good },
    ]) {
      const err = await c.evidenceFields({ 'tpm-credential': bad }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(KbsClientError);
      expect((err as KbsClientError).code).toBe('KBS_PROTOCOL');
    }
    await c.close();
  });

  it('creates the EK once, flushes it on close, and never flushes an EK it was given', async () => {
    const { tpm, ak } = await node();
    const before = (await tpm.transientHandles()).length;
    const own = new IdentityContributor({ tpm, ak });
    await own.requestExtraParams();
    await own.requestExtraParams();
    expect((await tpm.transientHandles()).length).toBe(before + 1);
    await own.close();
    expect((await tpm.transientHandles()).length).toBe(before);

    const ek = await tpm.createEk('rsa');
    const given = identityContributorFor(tpm, { ak, ek }, 'rsa');
    await given.requestExtraParams();
    await given.close();
    expect((await tpm.transientHandles()).length).toBe(before + 1);
    expect(() => new IdentityContributor({ tpm, ak, ek, ekAlg: 'ecc' })).toThrow(TypeError);
  });
});
