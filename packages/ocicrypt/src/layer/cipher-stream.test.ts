import { createCipheriv, createHash, createHmac, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { OcicryptError } from '../errors.js';
import { LayerDecryptStream, LayerEncryptStream } from './cipher-stream.js';

async function run(input: Buffer, t: LayerEncryptStream | LayerDecryptStream, chunk = 1000): Promise<Buffer> {
  const out: Buffer[] = [];
  const chunks = [];
  for (let i = 0; i < input.length; i += chunk) chunks.push(input.subarray(i, i + chunk));
  await pipeline(
    Readable.from(chunks),
    t,
    new Writable({
      write(c: Buffer, _e, cb) {
        out.push(c);
        cb();
      },
    }),
  );
  return Buffer.concat(out);
}

const sha = (b: Buffer): string => 'sha256:' + createHash('sha256').update(b).digest('hex');

describe('layer cipher (AES-256-CTR then HMAC-SHA256, ocicrypt blockcipher_aes_ctr.go)', () => {
  const key = randomBytes(32);
  const nonce = randomBytes(16);
  const plain = randomBytes(100_003);

  it('streams the same bytes as one-shot AES-256-CTR, and MACs the ciphertext with the layer key', async () => {
    const enc = new LayerEncryptStream(key, nonce);
    const ct = await run(plain, enc, 4097);
    const c = createCipheriv('aes-256-ctr', key, nonce);
    const expected = Buffer.concat([c.update(plain), c.final()]);
    expect(ct.equals(expected)).toBe(true);
    expect(ct.length).toBe(plain.length);
    expect(enc.hmac.equals(createHmac('sha256', key).update(expected).digest())).toBe(true);
  });

  it('decrypts and verifies, counting bytes', async () => {
    const enc = new LayerEncryptStream(key, nonce);
    const ct = await run(plain, enc);
    let seen = 0;
    const dec = new LayerDecryptStream({ symkey: key, nonce, hmac: enc.hmac, digest: sha(plain) }, (n) => (seen += n));
    const pt = await run(ct, dec, 333);
    expect(pt.equals(plain)).toBe(true);
    expect(dec.size).toBe(plain.length);
    expect(seen).toBe(ct.length);
  });

  it('refuses a flipped ciphertext bit with LAYER_HMAC_MISMATCH', async () => {
    const enc = new LayerEncryptStream(key, nonce);
    const ct = await run(plain, enc);
    ct[5000] = (ct[5000] as number) ^ 1;
    const dec = new LayerDecryptStream({ symkey: key, nonce, hmac: enc.hmac, digest: sha(plain) });
    await expect(run(ct, dec)).rejects.toMatchObject({ code: 'LAYER_HMAC_MISMATCH' });
  });

  it('refuses truncated ciphertext and a wrong key', async () => {
    const enc = new LayerEncryptStream(key, nonce);
    const ct = await run(plain, enc);
    await expect(run(ct.subarray(0, ct.length - 1), new LayerDecryptStream({ symkey: key, nonce, hmac: enc.hmac, digest: sha(plain) }))).rejects.toMatchObject({ code: 'LAYER_HMAC_MISMATCH' });
    await expect(run(ct, new LayerDecryptStream({ symkey: randomBytes(32), nonce, hmac: enc.hmac, digest: sha(plain) }))).rejects.toBeInstanceOf(OcicryptError);
  });

  it('refuses a plaintext whose digest differs from the key options (LAYER_DIGEST_MISMATCH)', async () => {
    const enc = new LayerEncryptStream(key, nonce);
    const ct = await run(plain, enc);
    const dec = new LayerDecryptStream({ symkey: key, nonce, hmac: enc.hmac, digest: sha(Buffer.from('other')) });
    await expect(run(ct, dec)).rejects.toMatchObject({ code: 'LAYER_DIGEST_MISMATCH' });
  });

  it('rejects wrong key and nonce sizes as programmer errors', () => {
    expect(() => new LayerEncryptStream(randomBytes(16), nonce)).toThrow(TypeError);
    expect(() => new LayerEncryptStream(key, randomBytes(12))).toThrow(TypeError);
  });

  it('handles an empty layer', async () => {
    const enc = new LayerEncryptStream(key, nonce);
    const ct = await run(Buffer.alloc(0), enc);
    expect(ct.length).toBe(0);
    const pt = await run(ct, new LayerDecryptStream({ symkey: key, nonce, hmac: enc.hmac, digest: sha(Buffer.alloc(0)) }));
    expect(pt.length).toBe(0);
  });
});
