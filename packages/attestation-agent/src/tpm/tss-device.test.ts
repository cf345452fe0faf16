import { execFile } from 'node:child_process';
import { X509Certificate, createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSwtpm, tpm2ToolsPcrFile, SWTPM_LOCALCA_ISSUER_CERT, type RunningSwtpm } from '@keyhold/test-harness';
import { AgentError, TpmError } from '../errors.js';
import { bindInitData, collectTpmEvidence } from '../evidence/tpm-evidence.js';
import { loadOrCreateAk } from './ak-store.js';
import { EK_CERT_NV_INDEX, type TpmDevice, type KeyAlg } from './device.js';
import { openTpmDevice } from './tss-device.js';
import { tpm2bPublicToSpkiDer } from './public-area.js';

const run = promisify(execFile);
const ALL = Array.from({ length: 24 }, (_, i) => i);

let plain: RunningSwtpm;
let mfg: RunningSwtpm;
let work: string;

/** Run a tpm2-tools command against a swtpm (our device must be closed: swtpm serves one client). */
async function tool(tpm: RunningSwtpm | undefined, cmd: string, args: string[]): Promise<string> {
  const env = { ...process.env, TPM2TOOLS_TCTI: tpm?.tcti ?? 'none' };
  const { stdout } = await run(cmd, args, { env, cwd: work });
  return stdout;
}

async function withDevice<T>(tpm: RunningSwtpm, fn: (d: TpmDevice) => Promise<T>): Promise<T> {
  const d = await openTpmDevice({ tcti: tpm.tcti });
  try {
    return await fn(d);
  } finally {
    await d.close();
  }
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'keyhold-tpm-test-'));
  [plain, mfg] = await Promise.all([startSwtpm(), startSwtpm({ ekCert: true })]);
}, 60_000);

afterAll(async () => {
  await Promise.all([plain?.stop(), mfg?.stop()]);
  await rm(work, { recursive: true, force: true });
});

describe('openTpmDevice', () => {
  it('rejects an unreachable or unknown TCTI with TPM_UNAVAILABLE', async () => {
    for (const tcti of ['swtpm:host=127.0.0.1,port=1', 'mssim:host=127.0.0.1,port=1', 'nonsense:foo', 'device:/nonexistent/tpm']) {
      const err = await openTpmDevice({ tcti }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TpmError);
      expect((err as TpmError).code).toBe('TPM_UNAVAILABLE');
    }
    await expect(openTpmDevice({ tcti: '' })).rejects.toBeInstanceOf(TypeError);
  });

  it('refuses calls after close()', async () => {
    const d = await openTpmDevice({ tcti: plain.tcti });
    await d.close();
    await d.close();
    await expect(d.getRandom(8)).rejects.toMatchObject({ code: 'TPM_CLOSED' });
  });
});

describe('random and PCRs', () => {
  it('returns random bytes of the requested length', async () => {
    const [a, b] = await withDevice(plain, async (d) => [await d.getRandom(100), await d.getRandom(100)]);
    expect(a).toHaveLength(100);
    expect(Buffer.from(a!).equals(Buffer.from(b!))).toBe(false);
    expect(a!.some((x) => x !== 0)).toBe(true);
  });

  it('reads every bank like tpm2_pcrread, and extends are reflected', async () => {
    const d1 = new Uint8Array(32).fill(0xa5);
    const d2 = new Uint8Array(20).fill(0x5a);
    const before = await withDevice(plain, async (d) => {
      const v = await d.readPcrs('sha256', [16]);
      await d.extendPcr(16, [
        { alg: 'sha256', digest: d1 },
        { alg: 'sha1', digest: d2 },
      ]);
      return v[0]!;
    });
    for (const bank of ['sha1', 'sha256', 'sha384'] as const) {
      const ours = await withDevice(plain, (d) => d.readPcrs(bank, ALL));
      await tool(plain, 'tpm2_pcrread', [`${bank}:${ALL.join(',')}`, '-o', `pcrs-${bank}.bin`]);
      expect(Buffer.concat(ours)).toEqual(await readFile(join(work, `pcrs-${bank}.bin`)));
    }
    const after = await withDevice(plain, (d) => d.readPcrs('sha256', [16, 3]));
    expect(Buffer.from(after[0]!)).toEqual(createHash('sha256').update(before).update(d1).digest());
    expect(after[1]).toHaveLength(32);
  });

  it('rejects bad PCR arguments and an unallocated bank', async () => {
    await withDevice(mfg, async (d) => {
      await expect(d.readPcrs('sha256', [24])).rejects.toBeInstanceOf(TypeError);
      await expect(d.readPcrs('sha256', [1, 1])).rejects.toBeInstanceOf(TypeError);
      await expect(d.extendPcr(0, [{ alg: 'sha256', digest: new Uint8Array(20) }])).rejects.toBeInstanceOf(TypeError);
      // swtpm_setup activates only the SHA-256 bank.
      await expect(d.readPcrs('sha1', [0])).rejects.toMatchObject({ code: 'TPM_COMMAND_FAILED' });
      expect(await d.readPcrs('sha256', [0])).toHaveLength(1);
    });
  });
});

describe('EK', () => {
  it.each(['rsa', 'ecc'] as const)('%s EK matches tpm2_createek', async (alg) => {
    const ours = await withDevice(mfg, async (d) => (await d.createEk(alg)).publicArea);
    await tool(mfg, 'tpm2_createek', ['-G', alg, '-u', `ek-${alg}.pub`, '-c', `ek-${alg}.ctx`]);
    await tool(mfg, 'tpm2_flushcontext', ['-t']);
    expect(Buffer.from(ours)).toEqual(await readFile(join(work, `ek-${alg}.pub`)));
  });

  it('reads the EK certificate from NV like tpm2_nvread, signed by the swtpm local CA', async () => {
    const [rsaCert, p384Cert] = await withDevice(mfg, async (d) => [await d.readNv(EK_CERT_NV_INDEX.rsa), await d.readNv(EK_CERT_NV_INDEX.ecc384)]);
    await tool(mfg, 'tpm2_nvread', ['0x01c00002', '-C', '0x01c00002', '-o', 'nv.bin']);
    const raw = await readFile(join(work, 'nv.bin'));
    expect(raw.subarray(0, rsaCert!.length)).toEqual(Buffer.from(rsaCert!));
    expect(raw.subarray(rsaCert!.length).every((b) => b === 0 || b === 0xff)).toBe(true);
    const issuer = new X509Certificate(await readFile(SWTPM_LOCALCA_ISSUER_CERT));
    for (const der of [rsaCert!, p384Cert!]) expect(new X509Certificate(der).verify(issuer.publicKey)).toBe(true);
    const ekSpki = await withDevice(mfg, async (d) => tpm2bPublicToSpkiDer((await d.createEk('rsa')).publicArea));
    const certSpki = new X509Certificate(rsaCert!).publicKey.export({ type: 'spki', format: 'der' });
    expect(Buffer.from(ekSpki)).toEqual(certSpki);
  });

  it('reports an undefined NV index as TPM_NV_NOT_FOUND', async () => {
    // swtpm 0.7 stores its ECC EK certificate (P-384) at 0x01c00016, not at the P-256 index.
    await withDevice(mfg, async (d) => {
      await expect(d.readNv(EK_CERT_NV_INDEX.ecc)).rejects.toMatchObject({ code: 'TPM_NV_NOT_FOUND' });
      await expect(d.readNv(0x81000000)).rejects.toBeInstanceOf(TypeError);
    });
  });
});

describe('AK', () => {
  it('creates an AK once, stores it 0600 and reloads the same key in a second session', async () => {
    const stateDir = join(work, 'state');
    const first = await withDevice(mfg, async (d) => {
      const l = await loadOrCreateAk(d, { stateDir });
      expect(l.created).toBe(true);
      return l.ak.publicArea;
    });
    for (const f of ['ak-rsa.priv', 'ak-rsa.pub']) expect((await stat(join(stateDir, f))).mode & 0o777).toBe(0o600);
    const second = await withDevice(mfg, async (d) => {
      const l = await loadOrCreateAk(d, { stateDir });
      expect(l.created).toBe(false);
      const q = await d.quote(l.ak, 'sha256', [0], new Uint8Array(8));
      expect(q.signature.length).toBeGreaterThan(256);
      await l.release();
      return l.ak.publicArea;
    });
    expect(Buffer.from(second)).toEqual(Buffer.from(first));
    // The stored files are what tpm2-tools writes, so tpm2_load can use them too.
    expect(Buffer.from(await readFile(join(stateDir, 'ak-rsa.pub')))).toEqual(Buffer.from(first));
  });

  it('refuses stored AK files that are not an AK', async () => {
    const stateDir = join(work, 'bad-state');
    await withDevice(mfg, async (d) => {
      const made = await loadOrCreateAk(d, { stateDir, alg: 'ecc' });
      await made.release();
      const ek = await d.createEk('rsa');
      await writeFile(join(stateDir, 'ak-ecc.pub'), ek.publicArea);
      await expect(loadOrCreateAk(d, { stateDir, alg: 'ecc' })).rejects.toMatchObject({ code: 'AK_STORE_FAILED' });
      await writeFile(join(stateDir, 'ak-ecc.pub'), Buffer.from([0, 50, 1]));
      const err = await loadOrCreateAk(d, { stateDir, alg: 'ecc' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AgentError);
      expect((err as AgentError).code).toBe('AK_STORE_FAILED');
      await d.flushKey(ek);
    });
  });

  it('persists an AK at a handle and finds it again in a new session', async () => {
    const handle = 0x81010002;
    try {
      const made = await withDevice(mfg, async (d) => {
        await expect(d.loadPersistentKey(handle)).rejects.toMatchObject({ code: 'TPM_NO_AK' });
        const l = await loadOrCreateAk(d, { persistentHandle: handle, persist: true });
        expect(l.created).toBe(true);
        return l.ak.publicArea;
      });
      const again = await withDevice(mfg, async (d) => {
        const l = await loadOrCreateAk(d, { persistentHandle: handle });
        expect(l.created).toBe(false);
        expect(l.ak.persistentHandle).toBe(handle);
        return l.ak.publicArea;
      });
      expect(Buffer.from(again)).toEqual(Buffer.from(made));
      expect(await tool(mfg, 'tpm2_getcap', ['handles-persistent'])).toContain('0x81010002');
      // SECURITY negative: a decrypt key (the EK) at the AK handle is refused.
      await withDevice(mfg, async (d) => {
        const ek = await d.createEk('rsa');
        await d.persistKey(ek, 0x81010003);
        await expect(loadOrCreateAk(d, { persistentHandle: 0x81010003 })).rejects.toMatchObject({ code: 'TPM_NO_AK' });
      });
    } finally {
      await withDevice(mfg, async (d) => {
        await d.evictPersistent(handle);
        await d.evictPersistent(0x81010003);
      });
    }
    await withDevice(mfg, (d) => expect(d.loadPersistentKey(handle)).rejects.toMatchObject({ code: 'TPM_NO_AK' }));
  });
});

describe('quote', () => {
  async function checkquote(prefix: string, ev: Awaited<ReturnType<typeof collectTpmEvidence>>, qualification: Uint8Array): Promise<void> {
    const pem = `-----BEGIN PUBLIC KEY-----\n${ev.ak_public}\n-----END PUBLIC KEY-----\n`;
    await writeFile(join(work, `${prefix}.pem`), pem);
    await writeFile(join(work, `${prefix}.msg`), Buffer.from(ev.tpm_quote.message, 'base64'));
    await writeFile(join(work, `${prefix}.sig`), Buffer.from(ev.tpm_quote.signature, 'base64'));
    const values = ev.tpm_quote.pcrs.map((h) => Buffer.from(h, 'hex'));
    await writeFile(join(work, `${prefix}.pcrs`), tpm2ToolsPcrFile(0x000b, values));
    await tool(undefined, 'tpm2_checkquote', [
      '-u', `${prefix}.pem`, '-m', `${prefix}.msg`, '-s', `${prefix}.sig`, '-f', `${prefix}.pcrs`,
      '-g', 'sha256', '-q', Buffer.from(qualification).toString('hex'),
    ]);
  }

  it.each(['rsa', 'ecc'] as KeyAlg[])('a %s AK quote passes tpm2_checkquote, and tampering fails it', async (alg) => {
    const nonce = new Uint8Array(32).fill(alg === 'rsa' ? 1 : 2);
    const ev = await withDevice(mfg, async (d) => {
      const l = await loadOrCreateAk(d, { stateDir: join(work, `q-${alg}`), alg });
      return collectTpmEvidence(d, l.ak, nonce);
    });
    expect(ev.tpm_quote.pcrs).toHaveLength(24);
    await checkquote(alg, ev, nonce);
    await expect(checkquote(`${alg}-q`, ev, new Uint8Array(32))).rejects.toThrow();
    const pcrs = [...ev.tpm_quote.pcrs];
    pcrs[7] = 'ff'.repeat(32);
    await expect(checkquote(`${alg}-p`, { ...ev, tpm_quote: { ...ev.tpm_quote, pcrs } }, nonce)).rejects.toThrow();
  });

  it('binds init-data into PCR8 as the verifier expects on a fresh TPM', async () => {
    const fresh = await startSwtpm();
    try {
      const digest = createHash('sha256').update('[data]').digest();
      const pcr8 = await withDevice(fresh, async (d) => {
        await bindInitData(d, digest);
        return (await d.readPcrs('sha256', [8]))[0]!;
      });
      expect(Buffer.from(pcr8)).toEqual(createHash('sha256').update(new Uint8Array(32)).update(digest).digest());
    } finally {
      await fresh.stop();
    }
  });

  it('leaks no transient object or session over 200 quotes', async () => {
    await withDevice(mfg, async (d) => {
      const l = await loadOrCreateAk(d, { stateDir: join(work, 'leak') });
      const baseline = await d.transientHandles();
      expect(baseline).toHaveLength(2);
      for (let i = 0; i < 200; i++) await d.quote(l.ak, 'sha256', ALL, new Uint8Array(32).fill(i));
      for (let i = 0; i < 5; i++) await d.flushKey(await d.loadAk(l.ek!, { alg: 'rsa', privateBlob: await readFile(join(work, 'leak', 'ak-rsa.priv')), publicArea: l.ak.publicArea }));
      expect(await d.transientHandles()).toEqual(baseline);
      await expect(d.quote(l.ak, 'sha256', ALL, new Uint8Array(65))).rejects.toBeInstanceOf(TypeError);
    });
    expect(await tool(mfg, 'tpm2_getcap', ['handles-transient'])).toBe('');
    expect(await tool(mfg, 'tpm2_getcap', ['handles-loaded-session'])).toBe('');
  });
});

describe('activateCredential', () => {
  it('recovers a secret made with tpm2_makecredential for the AK name, and refuses a tampered blob', async () => {
    await withDevice(mfg, async (d) => {
      const l = await loadOrCreateAk(d, { stateDir: join(work, 'cred') });
      await writeFile(join(work, 'cred-ek.pub'), l.ek!.publicArea);
      await writeFile(join(work, 'cred-secret.bin'), Buffer.from('keyhold credential secret'));
      await tool(undefined, 'tpm2_makecredential', [
        '-T', 'none', '-e', 'cred-ek.pub', '-s', 'cred-secret.bin', '-n', Buffer.from(l.ak.name).toString('hex'), '-o', 'cred.out',
      ]);
      const out = await readFile(join(work, 'cred.out'));
      // tpm2-tools file: magic 0xBADCC0DE, version 1, then TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET.
      const idLen = 2 + out.readUInt16BE(8);
      const blob = out.subarray(8, 8 + idLen);
      const secret = out.subarray(8 + idLen);
      const got = await d.activateCredential(l.ak, l.ek!, blob, secret);
      expect(Buffer.from(got).toString()).toBe('keyhold credential secret');
      const tampered = Buffer.from(blob);
      tampered[10]! ^= 1;
      await expect(d.activateCredential(l.ak, l.ek!, tampered, secret)).rejects.toMatchObject({ code: 'TPM_COMMAND_FAILED' });
      await expect(d.activateCredential(l.ak, l.ek!, blob.subarray(0, 5), secret)).rejects.toMatchObject({ code: 'TPM_COMMAND_FAILED' });
      await l.release();
      expect(await d.transientHandles()).toEqual([]);
    });
  });
});

describe('high-range ECC P-384 EK (template H-3)', () => {
  /** Split a tpm2_makecredential output file (magic 0xBADCC0DE, version 1, TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET). */
  async function makeCredential(prefix: string, ekPublic: Uint8Array, akName: Uint8Array, secret: string): Promise<{ blob: Buffer; secret: Buffer }> {
    await writeFile(join(work, `${prefix}-ek.pub`), ekPublic);
    await writeFile(join(work, `${prefix}-secret.bin`), Buffer.from(secret));
    await tool(undefined, 'tpm2_makecredential', [
      '-T', 'none', '-e', `${prefix}-ek.pub`, '-s', `${prefix}-secret.bin`, '-n', Buffer.from(akName).toString('hex'), '-o', `${prefix}.out`,
    ]);
    const out = await readFile(join(work, `${prefix}.out`));
    const idLen = 2 + out.readUInt16BE(8);
    return { blob: out.subarray(8, 8 + idLen), secret: out.subarray(8 + idLen) };
  }

  it('creates the EK that swtpm certified at NV 0x01c00016 and persisted at 0x81010016', async () => {
    const { ek, cert } = await withDevice(mfg, async (d) => {
      const key = await d.createEk('ecc384');
      return { ek: key, cert: await d.readNv(EK_CERT_NV_INDEX.ecc384) };
    });
    const certKey = new X509Certificate(cert).publicKey;
    expect(certKey.asymmetricKeyDetails?.namedCurve).toBe('secp384r1');
    expect(Buffer.from(tpm2bPublicToSpkiDer(ek.publicArea))).toEqual(certKey.export({ type: 'spki', format: 'der' }));
    // swtpm_setup keeps the EK it certified at 0x81010016: byte-for-byte the same public area.
    await tool(mfg, 'tpm2_readpublic', ['-c', '0x81010016', '-o', 'ek384-persisted.pub']);
    expect(Buffer.from(ek.publicArea)).toEqual(await readFile(join(work, 'ek384-persisted.pub')));
    expect(ek.alg).toBe('ecc');
    expect(ek.name.subarray(0, 2)).toEqual(Uint8Array.of(0x00, 0x0c));
  });

  it('creates and reloads an AK under it and recovers a credential made with tpm2_makecredential (SHA-384 PolicyOR session)', async () => {
    await withDevice(mfg, async (d) => {
      const stateDir = join(work, 'cred384');
      const made = await loadOrCreateAk(d, { stateDir, alg: 'ecc', ekAlg: 'ecc384' });
      expect(made.created).toBe(true);
      await made.release();
      const l = await loadOrCreateAk(d, { stateDir, alg: 'ecc', ekAlg: 'ecc384' });
      expect(l.created).toBe(false);
      const cred = await makeCredential('cred384', l.ek!.publicArea, l.ak.name, 'keyhold p384 secret');
      // TPM2B_ID_OBJECT: size, integrity HMAC with the EK's nameAlg (SHA-384: 48 bytes), encrypted TPM2B secret.
      expect(cred.blob.length).toBe(2 + (2 + 48) + (2 + 'keyhold p384 secret'.length));
      expect(Buffer.from(await d.activateCredential(l.ak, l.ek!, cred.blob, cred.secret)).toString()).toBe('keyhold p384 secret');

      // SECURITY negative: a credential bound to another object's name is refused by the TPM (integrity HMAC).
      const other = await makeCredential('cred384-other', l.ek!.publicArea, l.ek!.name, 'not for this AK');
      await expect(d.activateCredential(l.ak, l.ek!, other.blob, other.secret)).rejects.toMatchObject({ code: 'TPM_COMMAND_FAILED' });
      const tampered = Buffer.from(cred.blob);
      tampered[tampered.length - 1]! ^= 1;
      await expect(d.activateCredential(l.ak, l.ek!, tampered, cred.secret)).rejects.toMatchObject({ code: 'TPM_COMMAND_FAILED' });
      // A key that is not an EK from a TCG template cannot stand in as the activation key.
      await expect(d.activateCredential(l.ak, l.ak, cred.blob, cred.secret)).rejects.toBeInstanceOf(TypeError);
      await l.release();
      expect(await d.transientHandles()).toEqual([]);
    });
    expect(await tool(mfg, 'tpm2_getcap', ['handles-loaded-session'])).toBe('');
  });
});
