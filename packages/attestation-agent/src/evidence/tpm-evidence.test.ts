import { createHash, createPublicKey, generateKeyPairSync, verify } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { TpmError } from '../errors.js';
import type { TpmDevice } from '../tpm/device.js';
import { createSoftwareTpm } from '../tpm/software-tpm.js';
import { decodeUnverifiedQuoteAttest } from '../tpm/quote-format.js';
import { bindInitData, collectTpmEvidence, readEvidencePcrs } from './tpm-evidence.js';

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;

async function setup(): Promise<{ tpm: TpmDevice; ak: Awaited<ReturnType<TpmDevice['createAk']>>['key'] }> {
  const tpm = createSoftwareTpm({ akKeys: { rsa } });
  const ek = await tpm.createEk('ecc');
  const { key } = await tpm.createAk(ek, 'rsa');
  return { tpm, ak: key };
}

describe('collectTpmEvidence', () => {
  it("produces Trustee's shape, bound to the report data, with the quoted PCR values", async () => {
    const { tpm, ak } = await setup();
    const initDigest = createHash('sha256').update('init-data').digest();
    await bindInitData(tpm, initDigest);
    const reportData = new Uint8Array(32).fill(0x11);
    const ev = await collectTpmEvidence(tpm, ak, reportData);
    expect(Object.keys(ev).sort()).toEqual(['ak_public', 'tpm_quote']);
    expect(Object.keys(ev.tpm_quote).sort()).toEqual(['message', 'pcrs', 'signature']);
    expect(ev.tpm_quote.pcrs).toHaveLength(24);
    for (const p of ev.tpm_quote.pcrs) expect(p).toMatch(/^[0-9a-f]{64}$/);
    expect(ev.tpm_quote.pcrs[8]).toBe(createHash('sha256').update(new Uint8Array(32)).update(initDigest).digest('hex'));
    for (const b of [ev.ak_public, ev.tpm_quote.message, ev.tpm_quote.signature]) expect(b).toMatch(/^[A-Za-z0-9+/]+={0,2}$/);
    const message = Buffer.from(ev.tpm_quote.message, 'base64');
    const sig = Buffer.from(ev.tpm_quote.signature, 'base64');
    const akKey = createPublicKey({ key: Buffer.from(ev.ak_public, 'base64'), format: 'der', type: 'spki' });
    expect(verify('sha256', message, akKey, sig.subarray(6))).toBe(true);
    const attest = decodeUnverifiedQuoteAttest(message);
    expect(Buffer.from(attest.extraData)).toEqual(Buffer.from(reportData));
    const digest = createHash('sha256');
    for (const p of ev.tpm_quote.pcrs) digest.update(Buffer.from(p, 'hex'));
    expect(Buffer.from(attest.pcrDigest)).toEqual(digest.digest());
  });

  it('retries once when a PCR changes between read and quote, then fails with TPM_PCR_CHANGED', async () => {
    const { tpm, ak } = await setup();
    let races = 1;
    const racy: TpmDevice = {
      ...tpm,
      async quote(...args) {
        if (races-- > 0) await tpm.extendPcr(10, [{ alg: 'sha256', digest: new Uint8Array(32).fill(1) }]);
        return tpm.quote(...args);
      },
    };
    const ev = await collectTpmEvidence(racy, ak, new Uint8Array(32));
    expect(ev.tpm_quote.pcrs[10]).not.toBe('00'.repeat(32));
    races = 2;
    await expect(collectTpmEvidence(racy, ak, new Uint8Array(32))).rejects.toMatchObject({ code: 'TPM_PCR_CHANGED' });
  });

  it('reports PCR values read earlier only when the quote covers them: a stale early read is read again, and is no attempt', async () => {
    const { tpm, ak } = await setup();
    const early = readEvidencePcrs(tpm);
    await early;
    await tpm.extendPcr(10, [{ alg: 'sha256', digest: new Uint8Array(32).fill(2) }]);
    const now = await tpm.readPcrs('sha256', [10]);
    const ev = await collectTpmEvidence(tpm, ak, new Uint8Array(32), { pcrsReadEarlier: early });
    expect(ev.tpm_quote.pcrs[10]).toBe(Buffer.from(now[0]!).toString('hex'));
    // A stale early read plus one race still succeeds (two fresh attempts remain); a failed early read is read again.
    let races = 1;
    const racy: TpmDevice = {
      ...tpm,
      async quote(...args) {
        if (races-- > 0) await tpm.extendPcr(10, [{ alg: 'sha256', digest: new Uint8Array(32).fill(3) }]);
        return tpm.quote(...args);
      },
    };
    const stale = readEvidencePcrs(tpm);
    await stale;
    await tpm.extendPcr(10, [{ alg: 'sha256', digest: new Uint8Array(32).fill(4) }]);
    await expect(collectTpmEvidence(racy, ak, new Uint8Array(32), { pcrsReadEarlier: stale })).resolves.toBeDefined();
    await expect(collectTpmEvidence(tpm, ak, new Uint8Array(32), { pcrsReadEarlier: Promise.reject(new Error('TPM busy')) })).resolves.toBeDefined();
  });

  it('refuses a quote that is not bound to the report data or covers other PCRs', async () => {
    const { tpm, ak } = await setup();
    const wrongNonce: TpmDevice = { ...tpm, quote: (k, b, i) => tpm.quote(k, b, i, new Uint8Array(32).fill(9)) };
    await expect(collectTpmEvidence(wrongNonce, ak, new Uint8Array(32))).rejects.toBeInstanceOf(TpmError);
    const fewer: TpmDevice = { ...tpm, quote: (k, b, _i, q) => tpm.quote(k, b, [0, 1], q) };
    await expect(collectTpmEvidence(fewer, ak, new Uint8Array(32))).rejects.toMatchObject({ code: 'TPM_BAD_RESPONSE' });
    await expect(collectTpmEvidence(tpm, ak, new Uint8Array(48))).rejects.toBeInstanceOf(TypeError);
    await expect(bindInitData(tpm, new Uint8Array(31))).rejects.toBeInstanceOf(TypeError);
  });
});
