import { OcicryptError } from '../errors.js';
import { fromBase64, toBase64 } from '../internal/bytes.js';
import { DigestSchema } from '../layout/descriptor.js';

/** The only layer cipher ocicrypt defines (blockcipher.AES256CTR). */
export const CIPHER_AES_256_CTR_HMAC_SHA256 = 'AES_256_CTR_HMAC_SHA256';
export const SYMKEY_BYTES = 32;
export const NONCE_BYTES = 16;
export const HMAC_BYTES = 32;
/** Largest optsdata / pubopts JSON accepted. Real ones are ~150 bytes. */
export const MAX_OPTS_BYTES = 16 * 1024;

/**
 * ocicrypt's PrivateLayerBlockCipherOptions: what a recipient's wrapped key protects.
 * JSON: `{"symkey":b64,"digest":"sha256:…","cipheroptions":{"nonce":b64}}` (Go `[]byte` → std base64).
 */
export interface PrivateLayerOptions {
  /** AES-256 key; also the HMAC-SHA256 key. */
  readonly symkey: Buffer;
  /** Digest of the plaintext layer blob. */
  readonly digest: string;
  /** AES-CTR initial counter block. */
  readonly nonce: Buffer;
}

/** ocicrypt's PublicLayerBlockCipherOptions (`org.opencontainers.image.enc.pubopts`). */
export interface PublicLayerOptions {
  readonly cipher: string;
  /** HMAC-SHA256 over the ciphertext. */
  readonly hmac: Buffer;
}

export function encodePrivateOptions(o: PrivateLayerOptions): Buffer {
  return Buffer.from(
    JSON.stringify({ symkey: toBase64(o.symkey), digest: o.digest, cipheroptions: { nonce: toBase64(o.nonce) } }),
    'utf8',
  );
}

export function encodePublicOptions(o: PublicLayerOptions): Buffer {
  return Buffer.from(JSON.stringify({ cipher: o.cipher, hmac: toBase64(o.hmac), cipheroptions: {} }), 'utf8');
}

function parseObject(bytes: Uint8Array, code: 'LAYER_OPTSDATA_INVALID' | 'LAYER_PUBOPTS_INVALID', what: string): Record<string, unknown> {
  // SECURITY: bound the JSON we parse from an annotation or an unwrapped key (STYLE §6).
  if (bytes.byteLength > MAX_OPTS_BYTES) throw new OcicryptError(code, `${what} is too large`);
  let v: unknown;
  // SECURITY: options must be a JSON object; anything else is refused with a typed error.
  try {
    v = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (cause) {
    throw new OcicryptError(code, `${what} is not JSON`, { cause });
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new OcicryptError(code, `${what} is not a JSON object`);
  return v as Record<string, unknown>;
}

function b64Field(v: unknown, code: 'LAYER_OPTSDATA_INVALID' | 'LAYER_PUBOPTS_INVALID', what: string, bytes: number): Buffer {
  // SECURITY: a missing key, nonce or MAC is refused, never defaulted (ocicrypt generates a
  // random nonce when absent, which on decryption would only produce garbage).
  if (typeof v !== 'string') throw new OcicryptError(code, `${what} is missing`);
  const b = fromBase64(v, code, what, bytes);
  // SECURITY: exact lengths: a short key, nonce or MAC would weaken or break the cipher
  // (ocicrypt blockcipher_aes_ctr.go checks the key length; nonce = AES block size).
  if (b.length !== bytes) throw new OcicryptError(code, `${what} must be ${bytes} bytes`);
  return b;
}

/** Parse optsdata produced by a key unwrap. The caller owns (and should wipe) `symkey`. */
export function parsePrivateOptions(bytes: Uint8Array): PrivateLayerOptions {
  const o = parseObject(bytes, 'LAYER_OPTSDATA_INVALID', 'layer options');
  const symkey = b64Field(o.symkey, 'LAYER_OPTSDATA_INVALID', 'symkey', SYMKEY_BYTES);
  // SECURITY: the plaintext digest is what decrypted bytes are checked against; it must be a
  // well-formed sha256 digest (it also names the output blob file).
  const digest = DigestSchema.safeParse(o.digest);
  if (!digest.success) throw new OcicryptError('LAYER_OPTSDATA_INVALID', 'layer options digest is not sha256:<64 hex>');
  const co = o.cipheroptions;
  if (typeof co !== 'object' || co === null) throw new OcicryptError('LAYER_OPTSDATA_INVALID', 'cipheroptions missing');
  const nonce = b64Field((co as Record<string, unknown>).nonce, 'LAYER_OPTSDATA_INVALID', 'nonce', NONCE_BYTES);
  return { symkey, digest: digest.data, nonce };
}

/**
 * Parse the pubopts annotation value (base64 of JSON). Older ocicrypt put the MAC in
 * `cipheroptions.hmac` instead of `hmac`; both are read, `hmac` first.
 */
export function parsePublicOptions(annotation: string | undefined): PublicLayerOptions {
  // SECURITY: without pubopts there is no MAC to check; such a layer is refused.
  if (annotation === undefined) throw new OcicryptError('LAYER_PUBOPTS_INVALID', 'encrypted layer has no pubopts annotation');
  const json = fromBase64(annotation, 'LAYER_PUBOPTS_INVALID', 'pubopts', MAX_OPTS_BYTES);
  const o = parseObject(json, 'LAYER_PUBOPTS_INVALID', 'pubopts');
  // SECURITY: only the one cipher ocicrypt defines is accepted (blockcipher.go, AES256CTR).
  if (o.cipher !== CIPHER_AES_256_CTR_HMAC_SHA256) throw new OcicryptError('LAYER_CIPHER_UNSUPPORTED', 'unsupported layer cipher');
  const co = typeof o.cipheroptions === 'object' && o.cipheroptions !== null ? (o.cipheroptions as Record<string, unknown>) : {};
  const raw = o.hmac ?? co.hmac;
  return { cipher: CIPHER_AES_256_CTR_HMAC_SHA256, hmac: b64Field(raw, 'LAYER_PUBOPTS_INVALID', 'hmac', HMAC_BYTES) };
}
