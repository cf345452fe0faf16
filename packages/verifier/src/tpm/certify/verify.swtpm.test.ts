/**
 * Cross-check with a real TPM: keys created, sealed and certified by tpm2-tools 5.4 on swtpm verify
 * with verifyTeeKeyCertification, and TPM2_PolicyPCR digests computed here equal tpm2_createpolicy's.
 * (tpm2_certify 5.4 has no qualifying-data option: it always signs 0x00ff55aa into extraData.)
 */
import { createPublicKey } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startSwtpm, type RunningSwtpm } from '@keyhold/test-harness';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VerifierError } from '../../errors.js';
import { policyPcrDigest } from '../policy-pcr.js';
import { verifyQuote, type VerifiedQuote } from '../quote/verify.js';
import { verifyTeeKeyCertification } from './verify.js';

const haveTools = existsSync('/usr/bin/swtpm') && existsSync('/usr/bin/tpm2_certify');
if (!haveTools) console.warn('skipping swtpm / tpm2_certify cross-checks: swtpm or tpm2-tools missing');

const TPM2_CERTIFY_EXTRA_DATA = Buffer.from('00ff55aa', 'hex');
const NONCE = '5ca1ab1e'.repeat(8);
const ALL = [...Array(24).keys()].join(',');
const TEE_ATTRS = 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|decrypt';
const SEALED_ATTRS = 'fixedtpm|fixedparent|sensitivedataorigin|decrypt';

describe.skipIf(!haveTools)('verifyTeeKeyCertification on tpm2-tools output (swtpm)', () => {
  let dir = '';
  let swtpm: RunningSwtpm | undefined;
  let quote: VerifiedQuote;
  let pcrs: Map<number, Uint8Array>;

  const tpm2 = (...args: string[]): string => {
    const r = spawnSync(args[0] as string, args.slice(1), { cwd: dir, env: { ...process.env, TPM2TOOLS_TCTI: swtpm?.tcti }, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${args.join(' ')} failed (${r.status}):\n${r.stderr}`);
    // No resource manager: free the TPM's three object and session slots after every command.
    for (const what of ['-t', '-l']) spawnSync('tpm2_flushcontext', [what], { cwd: dir, env: { ...process.env, TPM2TOOLS_TCTI: swtpm?.tcti } });
    return r.stdout;
  };
  const file = (name: string): Buffer => readFileSync(path.join(dir, name));

  /** Create a key under the SRK, certify it with `ak`, and return what the agent would send. */
  const certified = (tag: string, alg: string, attrs: string, opts: { policy?: string; ak?: string } = {}) => {
    tpm2('tpm2_create', '-C', 'srk.ctx', '-G', alg, '-a', attrs, ...(opts.policy !== undefined ? ['-L', opts.policy] : []), '-u', `${tag}.pub`, '-r', `${tag}.priv`);
    tpm2('tpm2_load', '-C', 'srk.ctx', '-u', `${tag}.pub`, '-r', `${tag}.priv`, '-c', `${tag}.ctx`);
    tpm2('tpm2_certify', '-c', `${tag}.ctx`, '-C', opts.ak ?? 'ak.ctx', '-g', 'sha256', '-o', `${tag}.attest`, '-s', `${tag}.sig`);
    tpm2('tpm2_readpublic', '-c', `${tag}.ctx`, '-f', 'pem', '-o', `${tag}.pem`);
    return {
      quote,
      tpm2bPublic: file(`${tag}.pub`),
      certifyInfo: file(`${tag}.attest`),
      signature: file(`${tag}.sig`),
      expectedExtraData: TPM2_CERTIFY_EXTRA_DATA,
      teePubkeyJwk: createPublicKey(file(`${tag}.pem`)).export({ format: 'jwk' }),
    };
  };

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'keyhold-certify-'));
    swtpm = await startSwtpm();
    tpm2('tpm2_pcrextend', `7:sha256=${'ab'.repeat(32)}`);
    tpm2('tpm2_createek', '-c', 'ek.ctx', '-G', 'rsa', '-u', 'ek.pub');
    tpm2('tpm2_createak', '-C', 'ek.ctx', '-c', 'ak.ctx', '-G', 'rsa', '-g', 'sha256', '-s', 'rsassa', '-u', 'ak.pem', '-f', 'pem');
    tpm2('tpm2_createak', '-C', 'ek.ctx', '-c', 'ak2.ctx', '-G', 'rsa', '-g', 'sha256', '-s', 'rsassa', '-u', 'ak2.pem', '-f', 'pem');
    tpm2('tpm2_createprimary', '-C', 'o', '-G', 'ecc256:aes128cfb', '-a', 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|restricted|decrypt', '-c', 'srk.ctx');
    tpm2('tpm2_quote', '-c', 'ak.ctx', '-l', `sha256:${ALL}`, '-q', NONCE, '-m', 'q.msg', '-s', 'q.sig', '-g', 'sha256');
    tpm2('tpm2_pcrread', `sha256:${ALL}`, '-o', 'pcrs.bin');
    const raw = file('pcrs.bin');
    pcrs = new Map([...Array(24).keys()].map((i) => [i, Uint8Array.from(raw.subarray(i * 32, i * 32 + 32))]));
    quote = verifyQuote({
      message: file('q.msg'),
      signature: file('q.sig'),
      akPublicKeyDer: createPublicKey(file('ak.pem')).export({ format: 'der', type: 'spki' }),
      pcrs: { bank: 'sha256', values: pcrs },
      expectedExtraData: Buffer.from(NONCE, 'hex'),
    });
  }, 60_000);

  afterAll(async () => {
    await swtpm?.stop();
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  it('PolicyPCR digests equal tpm2_createpolicy --policy-pcr', () => {
    // (tpm2_createpolicy takes at most 8 PCRs.)
    for (const sel of [[0], [0, 7], [0, 1, 2, 3, 4, 5, 6, 7], [7, 10, 14, 16, 23]]) {
      tpm2('tpm2_createpolicy', '--policy-pcr', '-l', `sha256:${sel.join(',')}`, '-L', 'pol.dat');
      const mine = policyPcrDigest({ hashAlg: 'sha256', bank: 'sha256', values: new Map(sel.map((i) => [i, pcrs.get(i) as Uint8Array])) });
      expect(Buffer.from(mine).toString('hex'), sel.join(',')).toBe(file('pol.dat').toString('hex'));
    }
  });

  it('an RSA-2048 OAEP key and an ECC P-256 ECDH key certified by tpm2_certify verify', () => {
    expect(verifyTeeKeyCertification(certified('rsa', 'rsa2048:oaep-sha256:null', TEE_ATTRS)).type).toBe('rsa');
    expect(verifyTeeKeyCertification(certified('ecc', 'ecc256:ecdh-sha256:null', TEE_ATTRS)).type).toBe('ecc');
  });

  it('a key whose authPolicy tpm2_createpolicy made over PCRs 0,7 verifies as sealed to them', () => {
    tpm2('tpm2_createpolicy', '--policy-pcr', '-l', 'sha256:0,7', '-L', 'seal.dat');
    const v = verifyTeeKeyCertification({ ...certified('sealed', 'rsa2048:oaep-sha256:null', SEALED_ATTRS, { policy: 'seal.dat' }), sealedPcrs: [0, 7] });
    expect(v.sealedPcrs).toEqual([0, 7]);
  });

  it('refuses a certification by another AK of the same TPM, a duplicable key and a signing key', () => {
    const code = (fn: () => unknown): string => {
      try {
        fn();
        return 'accepted';
      } catch (err) {
        if (err instanceof VerifierError) return err.code;
        throw err;
      }
    };
    expect(code(() => verifyTeeKeyCertification(certified('other-ak', 'rsa2048:oaep-sha256:null', TEE_ATTRS, { ak: 'ak2.ctx' })))).toBe('CERTIFY_SIGNATURE_INVALID');
    expect(code(() => verifyTeeKeyCertification(certified('dup', 'rsa2048:oaep-sha256:null', 'sensitivedataorigin|userwithauth|decrypt')))).toBe('TEE_KEY_ATTRIBUTES_INVALID');
    expect(code(() => verifyTeeKeyCertification(certified('signer', 'rsa2048:null:null', `${TEE_ATTRS}|sign`)))).toBe('TEE_KEY_ATTRIBUTES_INVALID');
  });
});
