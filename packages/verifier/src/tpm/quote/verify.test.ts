import { createHash, createPublicKey, generateKeyPairSync, sign, constants, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { VerifierError, type VerifierErrorCode } from '../../errors.js';
import { verifyQuote, isVerifiedQuote, type VerifyQuoteInput } from './verify.js';

// Corpus: real tpm2-tools / keylime quotes (see /work/shared/corpus/README.md for provenance).
const repoRoot = fileURLToPath(new URL('../../../../../', import.meta.url));
const corpus = path.resolve(repoRoot, '../shared/corpus/quotes');
const haveCorpus = existsSync(corpus);
if (!haveCorpus) console.warn(`skipping corpus quote tests: ${corpus} is absent`);

/**
 * Test-side reader of the tpm2-tools PCR file (tpm2_quote -o), independent of the package's own
 * decoder: little-endian TPML_PCR_SELECTION (4 + 16×8 bytes), UINT32 n, n × TPML_DIGEST
 * (4 + 8×(2+64) bytes). Returns the single bank's values by index.
 */
function readPcrFileForTest(buf: Buffer): { hashAlg: number; values: Map<number, Uint8Array> } {
  expect(buf.readUInt32LE(0)).toBe(1);
  const hashAlg = buf.readUInt16LE(4);
  const sizeofSelect = buf[6] as number;
  const indices: number[] = [];
  for (let p = 0; p < sizeofSelect * 8; p++) if (((buf[7 + (p >> 3)] as number) >> (p & 7)) & 1) indices.push(p);
  const digests: Uint8Array[] = [];
  const lists = buf.readUInt32LE(132);
  for (let l = 0; l < lists; l++) {
    const base = 136 + l * 532;
    for (let d = 0; d < buf.readUInt32LE(base); d++) {
      const slot = base + 4 + d * 66;
      digests.push(Uint8Array.from(buf.subarray(slot + 2, slot + 2 + buf.readUInt16LE(slot))));
    }
  }
  expect(digests.length).toBe(indices.length);
  return { hashAlg, values: new Map(indices.map((i, k) => [i, digests[k] as Uint8Array])) };
}

function pemToSpkiDer(pem: Buffer): Uint8Array {
  return createPublicKey(pem).export({ format: 'der', type: 'spki' });
}

interface CorpusQuote {
  name: string;
  input: VerifyQuoteInput;
}

function loadCorpus(): CorpusQuote[] {
  const kc = path.join(corpus, 'keylime-checkquote');
  const ki = path.join(corpus, 'keylime-inline');
  const kcPcrs = readPcrFileForTest(readFileSync(path.join(kc, 'quotepcr.out')));
  const kiPcrs = readPcrFileForTest(readFileSync(path.join(ki, 'pcrblob.bin')));
  expect(kcPcrs.hashAlg).toBe(0x000b);
  expect(kiPcrs.hashAlg).toBe(0x000b);
  return [
    {
      name: 'keylime-checkquote',
      input: {
        message: readFileSync(path.join(kc, 'quote.out')),
        signature: readFileSync(path.join(kc, 'quotesig.out')),
        akPublicKeyDer: pemToSpkiDer(readFileSync(path.join(kc, 'akpub.pem'))),
        pcrs: { bank: 'sha256', values: kcPcrs.values },
        expectedExtraData: readFileSync(path.join(kc, 'rand.out')),
      },
    },
    {
      name: 'keylime-inline',
      input: {
        message: readFileSync(path.join(ki, 'quote.bin')),
        signature: readFileSync(path.join(ki, 'sig.bin')),
        akPublicKeyDer: pemToSpkiDer(readFileSync(path.join(ki, 'ak.pem'))),
        pcrs: { bank: 'sha256', values: kiPcrs.values },
        expectedExtraData: Buffer.from('Ai5M5SjYjnkyv4P7itH1', 'ascii'),
      },
    },
  ];
}

function flip(bytes: Uint8Array, index: number, mask = 0x01): Uint8Array {
  const out = Uint8Array.from(bytes);
  out[index] = (out[index] as number) ^ mask;
  return out;
}

function codeOf(fn: () => unknown): VerifierErrorCode | 'accepted' {
  try {
    fn();
    return 'accepted';
  } catch (err) {
    if (err instanceof VerifierError) return err.code;
    throw err;
  }
}

describe.skipIf(!haveCorpus)('verifyQuote on corpus quotes', () => {
  const quotes = haveCorpus ? loadCorpus() : [];

  for (const { name, input } of quotes) {
    describe(name, () => {
      it('accepts the valid quote and returns what the TPM signed', () => {
        const v = verifyQuote(input);
        expect(isVerifiedQuote(v)).toBe(true);
        expect(v.signatureScheme).toBe('rsassa');
        expect(v.hashAlgorithm).toBe('sha256');
        expect(v.pcrBank).toBe('sha256');
        expect(Buffer.from(v.extraData)).toEqual(Buffer.from(input.expectedExtraData));
        expect([...v.pcrs.keys()]).toEqual([...input.pcrs.values.keys()].sort((a, b) => a - b));
        const readme = JSON.parse(readFileSync(path.join(corpus, name, 'README.json'), 'utf8'));
        expect(Buffer.from(v.pcrDigest).toString('hex')).toBe(readme.decoded_quote.pcrDigest);
        expect(Number(v.clockInfo.clock)).toBe(readme.decoded_quote.clockInfo.clock);
        expect(`0x${v.firmwareVersion.toString(16).padStart(16, '0')}`).toBe(readme.decoded_quote.firmwareVersion);
      });

      it('rejects every single-bit flip of the message', () => {
        const codes = new Set<string>();
        for (let i = 0; i < input.message.byteLength; i++) {
          for (let bit = 0; bit < 8; bit++) {
            const code = codeOf(() => verifyQuote({ ...input, message: flip(input.message, i, 1 << bit) }));
            expect(code, `byte ${i} bit ${bit}`).not.toBe('accepted');
            codes.add(code);
          }
        }
        // A flip inside the signed body (clock) is caught by the signature.
        expect(codeOf(() => verifyQuote({ ...input, message: flip(input.message, 0x44) }))).toBe('QUOTE_SIGNATURE_INVALID');
        expect(codes).toContain('QUOTE_BAD_MAGIC');
        expect(codes).toContain('QUOTE_WRONG_TYPE');
      });

      it('rejects every single-bit flip of the signature value', () => {
        for (let i = 6; i < input.signature.byteLength; i++) {
          for (let bit = 0; bit < 8; bit += 3) {
            expect(codeOf(() => verifyQuote({ ...input, signature: flip(input.signature, i, 1 << bit) }))).toBe('QUOTE_SIGNATURE_INVALID');
          }
        }
      });

      it('rejects a flipped bit in any PCR value', () => {
        for (const [index, value] of input.pcrs.values) {
          const values = new Map(input.pcrs.values);
          values.set(index, flip(value, 7, 0x80));
          expect(codeOf(() => verifyQuote({ ...input, pcrs: { bank: 'sha256', values } }))).toBe('QUOTE_PCR_DIGEST_MISMATCH');
        }
      });

      it('rejects a flipped bit in the nonce, and a shorter or longer nonce', () => {
        const n = input.expectedExtraData;
        expect(codeOf(() => verifyQuote({ ...input, expectedExtraData: flip(n, 0) }))).toBe('QUOTE_EXTRA_DATA_MISMATCH');
        expect(codeOf(() => verifyQuote({ ...input, expectedExtraData: n.subarray(0, n.length - 1) }))).toBe('QUOTE_EXTRA_DATA_MISMATCH');
        expect(codeOf(() => verifyQuote({ ...input, expectedExtraData: Buffer.concat([n, Buffer.of(0)]) }))).toBe('QUOTE_EXTRA_DATA_MISMATCH');
        expect(codeOf(() => verifyQuote({ ...input, expectedExtraData: new Uint8Array(0) }))).toBe('QUOTE_EXTRA_DATA_MISMATCH');
      });

      it('rejects a PCR set that is not exactly the quoted selection', () => {
        const quoted = [...input.pcrs.values.keys()];
        const missing = new Map(input.pcrs.values);
        missing.delete(quoted[0] as number);
        const extra = new Map(input.pcrs.values);
        extra.set(0, new Uint8Array(32));
        const moved = new Map([...input.pcrs.values].map(([i, v]) => [i === quoted[0] ? 1 : i, v]));
        for (const values of [missing, extra, moved, new Map<number, Uint8Array>()]) {
          expect(codeOf(() => verifyQuote({ ...input, pcrs: { bank: 'sha256', values } }))).toBe('QUOTE_PCR_SELECTION_MISMATCH');
        }
        const sha1 = new Map([...input.pcrs.values].map(([i, v]) => [i, v.subarray(0, 20)]));
        expect(codeOf(() => verifyQuote({ ...input, pcrs: { bank: 'sha1', values: sha1 } }))).toBe('QUOTE_PCR_SELECTION_MISMATCH');
        const sha384 = new Map([...input.pcrs.values].map(([i, v]) => [i, Buffer.concat([v, Buffer.alloc(16)])]));
        expect(codeOf(() => verifyQuote({ ...input, pcrs: { bank: 'sha384', values: sha384 } }))).toBe('QUOTE_PCR_SELECTION_MISMATCH');
      });

      it('rejects PCR values of the wrong length for the bank', () => {
        const [first, value] = [...input.pcrs.values][0] as [number, Uint8Array];
        for (const bad of [value.subarray(0, 31), Buffer.concat([value, Buffer.of(0)]), new Uint8Array(0)]) {
          const values = new Map(input.pcrs.values).set(first, bad);
          expect(codeOf(() => verifyQuote({ ...input, pcrs: { bank: 'sha256', values } }))).toBe('QUOTE_PCR_VALUE_LENGTH');
        }
      });

      it('rejects trailing bytes after the message or the signature', () => {
        expect(codeOf(() => verifyQuote({ ...input, message: Buffer.concat([input.message, Buffer.of(0)]) }))).toBe('TPM_TRAILING_BYTES');
        expect(codeOf(() => verifyQuote({ ...input, signature: Buffer.concat([input.signature, Buffer.of(0)]) }))).toBe('TPM_TRAILING_BYTES');
      });

      it('rejects every truncation of the message and of the signature with a typed error', () => {
        for (let len = 0; len < input.message.byteLength; len++) {
          expect(codeOf(() => verifyQuote({ ...input, message: input.message.subarray(0, len) }))).not.toBe('accepted');
        }
        for (let len = 0; len < input.signature.byteLength; len++) {
          expect(codeOf(() => verifyQuote({ ...input, signature: input.signature.subarray(0, len) }))).toBe('TPM_TRUNCATED');
        }
      });

      it('rejects a SHA-1 signature hash and unsupported schemes', () => {
        const sha1 = Uint8Array.from(input.signature);
        sha1.set([0x00, 0x04], 2);
        expect(codeOf(() => verifyQuote({ ...input, signature: sha1 }))).toBe('TPM_UNSUPPORTED_ALGORITHM');
        const hmac = Uint8Array.from(input.signature);
        hmac.set([0x00, 0x05], 0);
        expect(codeOf(() => verifyQuote({ ...input, signature: hmac }))).toBe('TPM_UNSUPPORTED_ALGORITHM');
      });

      it('rejects the quote under another key', () => {
        const ek = pemToSpkiDer(readFileSync(path.join(corpus, 'keylime-checkquote', 'ekpub.pem')));
        expect(codeOf(() => verifyQuote({ ...input, akPublicKeyDer: ek }))).toBe('QUOTE_SIGNATURE_INVALID');
        const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'der', type: 'spki' });
        expect(codeOf(() => verifyQuote({ ...input, akPublicKeyDer: ec }))).toBe('QUOTE_SCHEME_MISMATCH');
      });

      it('rejects an unusable AK public key', () => {
        const good = input.akPublicKeyDer;
        expect(codeOf(() => verifyQuote({ ...input, akPublicKeyDer: new Uint8Array(0) }))).toBe('QUOTE_INVALID_AK');
        expect(codeOf(() => verifyQuote({ ...input, akPublicKeyDer: good.subarray(0, 100) }))).toBe('QUOTE_INVALID_AK');
        expect(codeOf(() => verifyQuote({ ...input, akPublicKeyDer: Buffer.concat([good, Buffer.of(0)]) }))).toBe('QUOTE_INVALID_AK');
        expect(codeOf(() => verifyQuote({ ...input, akPublicKeyDer: new Uint8Array(4096) }))).toBe('TPM_LENGTH_EXCEEDED');
        const rsa1024 = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'der', type: 'spki' });
        expect(codeOf(() => verifyQuote({ ...input, akPublicKeyDer: rsa1024 }))).toBe('TPM_UNSUPPORTED_ALGORITHM');
        const ed = generateKeyPairSync('ed25519').publicKey.export({ format: 'der', type: 'spki' });
        expect(codeOf(() => verifyQuote({ ...input, akPublicKeyDer: ed }))).toBe('TPM_UNSUPPORTED_ALGORITHM');
        const k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).publicKey.export({ format: 'der', type: 'spki' });
        expect(codeOf(() => verifyQuote({ ...input, akPublicKeyDer: k1 }))).toBe('TPM_UNSUPPORTED_ALGORITHM');
      });

      it('throws TypeError for programmer misuse', () => {
        expect(() => verifyQuote({ ...input, message: 'x' as unknown as Uint8Array })).toThrow(TypeError);
        expect(() => verifyQuote({ ...input, pcrs: { bank: 'md5' as 'sha1', values: input.pcrs.values } })).toThrow(TypeError);
        expect(() => verifyQuote({ ...input, pcrs: { bank: 'sha256', values: new Map([[32, new Uint8Array(32)]]) } })).toThrow(TypeError);
      });
    });
  }
});

// ---- Synthetic quotes, signed with software keys, to reach checks a corpus quote cannot reach
// (e.g. a bad magic under a *valid* signature: the AK signed non-TPM-generated data).

interface AttestParts {
  magic?: number;
  type?: number;
  extraData?: Uint8Array;
  selections?: { hashAlg: number; bitmap: number[] }[];
  pcrDigest?: Uint8Array;
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}
function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

function buildAttest(p: AttestParts): Buffer {
  const sel = p.selections ?? [{ hashAlg: 0x000b, bitmap: [0x03, 0x00, 0x00] }];
  const extra = p.extraData ?? Buffer.from('nonce');
  const digest = p.pcrDigest ?? new Uint8Array(32);
  return Buffer.concat([
    u32(p.magic ?? 0xff544347),
    u16(p.type ?? 0x8018),
    u16(4), Buffer.from([0x40, 0, 0, 1]), // qualifiedSigner: a handle-sized name
    u16(extra.length), extra,
    Buffer.alloc(8, 1), u32(2), u32(0), Buffer.of(1), // clockInfo
    Buffer.alloc(8, 2), // firmwareVersion
    u32(sel.length),
    ...sel.flatMap((s) => [u16(s.hashAlg), Buffer.of(s.bitmap.length), Buffer.from(s.bitmap)]),
    u16(digest.length), digest,
  ]);
}

function signRsassa(key: KeyObject, msg: Uint8Array, hash: 'sha256' | 'sha384' = 'sha256'): Buffer {
  const sig = sign(hash, msg, { key, padding: constants.RSA_PKCS1_PADDING });
  return Buffer.concat([u16(0x0014), u16(hash === 'sha256' ? 0x000b : 0x000c), u16(sig.length), sig]);
}

describe('verifyQuote on synthetic quotes (software keys)', () => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const rsaDer = rsa.publicKey.export({ format: 'der', type: 'spki' });
  const pcr0 = new Uint8Array(32).fill(0xaa);
  const pcr1 = new Uint8Array(32).fill(0xbb);
  const values = new Map([[0, pcr0], [1, pcr1]]);
  const digest256 = createHash('sha256').update(pcr0).update(pcr1).digest();
  const input = (message: Uint8Array, signature: Uint8Array): VerifyQuoteInput => ({
    message, signature, akPublicKeyDer: rsaDer, pcrs: { bank: 'sha256', values }, expectedExtraData: Buffer.from('nonce'),
  });

  it('accepts a well-formed quote (control for the cases below)', () => {
    const msg = buildAttest({ pcrDigest: digest256 });
    expect(isVerifiedQuote(verifyQuote(input(msg, signRsassa(rsa.privateKey, msg))))).toBe(true);
  });

  it('rejects a validly signed structure whose magic is not TPM_GENERATED_VALUE', () => {
    const msg = buildAttest({ magic: 0xff544348, pcrDigest: digest256 });
    expect(codeOf(() => verifyQuote(input(msg, signRsassa(rsa.privateKey, msg))))).toBe('QUOTE_BAD_MAGIC');
  });

  it('rejects a validly signed attestation of another type (TPM_ST_ATTEST_CERTIFY)', () => {
    const msg = buildAttest({ type: 0x8017, pcrDigest: digest256 });
    expect(codeOf(() => verifyQuote(input(msg, signRsassa(rsa.privateKey, msg))))).toBe('QUOTE_WRONG_TYPE');
  });

  it('rejects a selection with two entries, even when the second is empty or repeats the bank', () => {
    for (const second of [{ hashAlg: 0x0004, bitmap: [0, 0, 0] }, { hashAlg: 0x000b, bitmap: [0, 0, 0] }, { hashAlg: 0x000b, bitmap: [0x04, 0, 0] }]) {
      const msg = buildAttest({ selections: [{ hashAlg: 0x000b, bitmap: [0x03, 0, 0] }, second], pcrDigest: digest256 });
      expect(codeOf(() => verifyQuote(input(msg, signRsassa(rsa.privateKey, msg))))).toBe('QUOTE_PCR_SELECTION_MISMATCH');
    }
  });

  it('rejects an empty selection', () => {
    const msg = buildAttest({ selections: [{ hashAlg: 0x000b, bitmap: [0, 0, 0] }], pcrDigest: createHash('sha256').digest() });
    const empty = { ...input(msg, signRsassa(rsa.privateKey, msg)), pcrs: { bank: 'sha256' as const, values: new Map() } };
    expect(codeOf(() => verifyQuote(empty))).toBe('QUOTE_PCR_SELECTION_MISMATCH');
  });

  it('computes pcrDigest with the signature hash: SHA-384 signature over the SHA-256 bank', () => {
    const d384 = createHash('sha384').update(pcr0).update(pcr1).digest();
    const msg = buildAttest({ pcrDigest: d384 });
    const v = verifyQuote(input(msg, signRsassa(rsa.privateKey, msg, 'sha384')));
    expect(v.hashAlgorithm).toBe('sha384');
    const wrong = buildAttest({ pcrDigest: digest256 });
    expect(codeOf(() => verifyQuote(input(wrong, signRsassa(rsa.privateKey, wrong, 'sha384'))))).toBe('QUOTE_PCR_DIGEST_MISMATCH');
  });

  it('accepts RSAPSS with salt = hash length and with maximum salt; rejects PSS bytes labelled RSASSA', () => {
    const msg = buildAttest({ pcrDigest: digest256 });
    for (const saltLength of [32, constants.RSA_PSS_SALTLEN_MAX_SIGN]) {
      const sig = sign('sha256', msg, { key: rsa.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength });
      expect(verifyQuote(input(msg, Buffer.concat([u16(0x0016), u16(0x000b), u16(sig.length), sig]))).signatureScheme).toBe('rsapss');
      expect(codeOf(() => verifyQuote(input(msg, Buffer.concat([u16(0x0014), u16(0x000b), u16(sig.length), sig]))))).toBe('QUOTE_SIGNATURE_INVALID');
    }
  });

  it('accepts ECDSA P-384 with short (leading-zero-stripped) r/s and rejects oversized ones', () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const ecDer = ec.publicKey.export({ format: 'der', type: 'spki' });
    const msg = buildAttest({ pcrDigest: digest256 });
    let ok = 0;
    for (let attempt = 0; attempt < 8; attempt++) {
      const rs = sign('sha256', msg, { key: ec.privateKey, dsaEncoding: 'ieee-p1363' });
      const r = rs.subarray(0, 48);
      const s = rs.subarray(48);
      const tpmSig = (rr: Uint8Array, ss: Uint8Array): Buffer =>
        Buffer.concat([u16(0x0018), u16(0x000b), u16(rr.length), rr, u16(ss.length), ss]);
      const stripped = (v: Uint8Array): Uint8Array => v.subarray(v.findIndex((b) => b !== 0));
      const base = { ...input(msg, tpmSig(stripped(r), stripped(s))), akPublicKeyDer: ecDer };
      expect(verifyQuote(base).signatureScheme).toBe('ecdsa');
      const oversized = Buffer.concat([Buffer.of(1), r]);
      expect(codeOf(() => verifyQuote({ ...base, signature: tpmSig(oversized, s) }))).toBe('QUOTE_SIGNATURE_INVALID');
      expect(codeOf(() => verifyQuote({ ...base, signature: tpmSig(s, r) }))).toBe('QUOTE_SIGNATURE_INVALID');
      expect(codeOf(() => verifyQuote({ ...base, akPublicKeyDer: rsaDer }))).toBe('QUOTE_SCHEME_MISMATCH');
      ok++;
    }
    expect(ok).toBe(8);
  });
});
