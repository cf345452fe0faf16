import { createCipheriv, createDecipheriv, createHash, createHmac, timingSafeEqual, type Cipher, type Decipher, type Hash, type Hmac } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { OcicryptError } from '../errors.js';
import { wipe } from '../internal/bytes.js';
import { NONCE_BYTES, SYMKEY_BYTES } from './options.js';

/** Bytes seen so far, for progress reporting. */
export type ByteCounter = (bytes: number) => void;

function checkKey(symkey: Uint8Array, nonce: Uint8Array): void {
  if (symkey.byteLength !== SYMKEY_BYTES) throw new TypeError(`symkey must be ${SYMKEY_BYTES} bytes`);
  if (nonce.byteLength !== NONCE_BYTES) throw new TypeError(`nonce must be ${NONCE_BYTES} bytes`);
}

/** A synchronous chunk transform: `update` per chunk (returns a new, exclusively owned buffer), then `final`. */
export interface ChunkTransform {
  update(chunk: Buffer): Buffer;
  /** The last bytes; throws (typed) if the whole input was not acceptable. */
  final(): Buffer;
  /**
   * Set (`sha256:<hex>`) once `final` returned when the transform itself hashed every byte it
   * returned and checked that digest; a writer may then use it instead of hashing the output again.
   */
  readonly verifiedOutputDigest?: string | undefined;
}

/**
 * ocicrypt's layer encryption (blockcipher_aes_ctr.go): ciphertext = AES-256-CTR(symkey,
 * counter block = nonce) of the plaintext, same length; then-MAC: HMAC-SHA256 keyed with the
 * same symkey over the whole ciphertext. `hmac` is readable after `final`.
 */
export class LayerEncryptor implements ChunkTransform {
  readonly #cipher: Cipher;
  readonly #mac: Hmac;
  #tag: Buffer | undefined;

  constructor(symkey: Uint8Array, nonce: Uint8Array) {
    checkKey(symkey, nonce);
    this.#cipher = createCipheriv('aes-256-ctr', symkey, nonce);
    this.#mac = createHmac('sha256', symkey);
  }

  update(chunk: Buffer): Buffer {
    const ct = this.#cipher.update(chunk);
    this.#mac.update(ct);
    return ct;
  }

  final(): Buffer {
    const rest = this.#cipher.final();
    if (rest.length > 0) this.#mac.update(rest);
    this.#tag = this.#mac.digest();
    return rest;
  }

  get hmac(): Buffer {
    if (this.#tag === undefined) throw new Error('LayerEncryptor read before final()');
    return this.#tag;
  }
}

/**
 * Inverse of {@link LayerEncryptor} with ocicrypt's checks, enforced by `final` (before the last
 * plaintext bytes are released, so a consumer that publishes its output only on success never
 * publishes unauthenticated data): HMAC-SHA256(symkey, ciphertext) must equal the pubopts `hmac`
 * (constant-time compare), and the plaintext must hash to the digest in the private options.
 */
export class LayerDecryptor implements ChunkTransform {
  readonly #decipher: Decipher;
  readonly #mac: Hmac;
  readonly #plainHash: Hash = createHash('sha256');
  readonly #expectedHmac: Buffer;
  readonly #expectedDigest: string;
  #verifiedDigest: string | undefined;
  #size = 0;

  constructor(opts: { symkey: Uint8Array; nonce: Uint8Array; hmac: Uint8Array; digest: string }) {
    checkKey(opts.symkey, opts.nonce);
    this.#decipher = createDecipheriv('aes-256-ctr', opts.symkey, opts.nonce);
    this.#mac = createHmac('sha256', opts.symkey);
    this.#expectedHmac = Buffer.from(opts.hmac);
    this.#expectedDigest = opts.digest;
  }

  update(chunk: Buffer): Buffer {
    this.#mac.update(chunk);
    const pt = this.#decipher.update(chunk);
    this.#plainHash.update(pt);
    this.#size += pt.length;
    return pt;
  }

  final(): Buffer {
    const rest = this.#decipher.final();
    this.#plainHash.update(rest);
    this.#size += rest.length;
    const mac = this.#mac.digest();
    // SECURITY: encrypt-then-MAC verification: a modified, truncated or swapped ciphertext, or a
    // wrong key, is refused before the last plaintext byte is released (ocicrypt
    // blockcipher_aes_ctr.go compares with hmac.Equal before returning EOF).
    const ok = mac.length === this.#expectedHmac.length && timingSafeEqual(mac, this.#expectedHmac);
    wipe(mac);
    if (!ok) throw new OcicryptError('LAYER_HMAC_MISMATCH', 'layer ciphertext failed HMAC authentication');
    // SECURITY: the plaintext must be the blob the owner encrypted (the digest travels inside the
    // wrapped, authenticated options; containers/image verifies it the same way).
    if ('sha256:' + this.#plainHash.digest('hex') !== this.#expectedDigest) {
      throw new OcicryptError('LAYER_DIGEST_MISMATCH', 'decrypted layer does not match the digest in its key options');
    }
    this.#verifiedDigest = this.#expectedDigest;
    return rest;
  }

  /** The plaintext's digest, once `final` verified it over exactly the bytes `update`/`final` returned. */
  get verifiedOutputDigest(): string | undefined {
    return this.#verifiedDigest;
  }

  /** Plaintext size, valid after `final`. */
  get size(): number {
    return this.#size;
  }
}

/** {@link LayerEncryptor} as a Transform stream. */
export class LayerEncryptStream extends Transform {
  readonly #enc: LayerEncryptor;
  readonly #onBytes: ByteCounter | undefined;

  constructor(symkey: Uint8Array, nonce: Uint8Array, onBytes?: ByteCounter) {
    super();
    this.#enc = new LayerEncryptor(symkey, nonce);
    this.#onBytes = onBytes;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const ct = this.#enc.update(chunk);
    this.#onBytes?.(chunk.length);
    cb(null, ct);
  }

  override _flush(cb: TransformCallback): void {
    const rest = this.#enc.final();
    cb(null, rest.length > 0 ? rest : undefined);
  }

  get hmac(): Buffer {
    return this.#enc.hmac;
  }
}

/** {@link LayerDecryptor} as a Transform stream: the checks fail the stream at its end. */
export class LayerDecryptStream extends Transform {
  readonly #dec: LayerDecryptor;
  readonly #onBytes: ByteCounter | undefined;

  constructor(opts: { symkey: Uint8Array; nonce: Uint8Array; hmac: Uint8Array; digest: string }, onBytes?: ByteCounter) {
    super();
    this.#dec = new LayerDecryptor(opts);
    this.#onBytes = onBytes;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const pt = this.#dec.update(chunk);
    this.#onBytes?.(chunk.length);
    cb(null, pt);
  }

  override _flush(cb: TransformCallback): void {
    let rest: Buffer;
    try {
      rest = this.#dec.final();
    } catch (err) {
      cb(err as Error);
      return;
    }
    cb(null, rest.length > 0 ? rest : undefined);
  }

  /** Plaintext size, valid after the stream ends. */
  get size(): number {
    return this.#dec.size;
  }
}
