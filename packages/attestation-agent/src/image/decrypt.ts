import { createPrivateKey, type KeyObject } from 'node:crypto';
import { mkdtemp, readdir, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import {
  COCO_KEY_PROVIDER,
  decryptImage,
  JWE_ANNOTATION,
  jweUnwrapper,
  keyProviderAnnotation,
  OcicryptError,
  type ImageResult,
  type OciImageRef,
  type ProgressListener,
  type Unwrapper,
} from '@keyhold/ocicrypt';
import { parseResourceUri } from '@keyhold/protocol';
import { KbsClientError } from '../kbs-client/errors.js';
import { asKeyProviderError, kekFetchError, KeyProviderError } from '../keyprovider/errors.js';
import type { KekSource, UnwrapService } from '../keyprovider/unwrap-service.js';

/** Largest private key accepted from a file or a KBS resource. */
const MAX_PRIVATE_KEY_BYTES = 64 * 1024;

export interface NodeDecryptOptions {
  readonly input: OciImageRef;
  readonly output: OciImageRef;
  /** Unwraps `provider.attestation-agent` packets (KEKs from the KBS). */
  readonly service: UnwrapService;
  /** Private keys for ocicrypt `jwe` recipients. */
  readonly jweKeys?: readonly KeyObject[];
  readonly onProgress?: ProgressListener;
  /** Called with the private staging directory once it exists (for signal-time cleanup). */
  readonly onStaging?: (dir: string | undefined) => void;
}

/**
 * The node's unwrapper: for each layer, the key provider packets (attestation-agent) and, when
 * private keys are given, the JWE recipients, in that order; the first scheme that yields
 * optsdata wins (ocicrypt tries its key wrappers the same way). Failures keep the first error.
 */
export function nodeUnwrapper(service: UnwrapService, jweKeys: readonly KeyObject[] = []): Unwrapper {
  const providerAnnotation = keyProviderAnnotation(COCO_KEY_PROVIDER);
  const provider = service.layerUnwrapper(COCO_KEY_PROVIDER);
  const jwe = jweKeys.length > 0 ? jweUnwrapper(jweKeys) : undefined;
  return async (annotations) => {
    const tries: Unwrapper[] = [];
    if (annotations[providerAnnotation] !== undefined) tries.push(provider);
    if (jwe !== undefined && annotations[JWE_ANNOTATION] !== undefined) tries.push(jwe);
    // SECURITY: a layer with no key this node can use is refused, never passed through.
    if (tries.length === 0) {
      const schemes = Object.keys(annotations).filter((k) => k.startsWith('org.opencontainers.image.enc.keys.')).map((k) => k.slice('org.opencontainers.image.enc.keys.'.length));
      throw new KeyProviderError('PACKET_INVALID', `layer has no key for this node (schemes present: ${schemes.join(', ') || 'none'}${jwe === undefined && schemes.includes('jwe') ? '; pass --decryption-key for jwe' : ''})`);
    }
    let first: unknown;
    for (const t of tries) {
      try {
        return await t(annotations);
      } catch (err) {
        first ??= err;
      }
    }
    throw first;
  };
}

/**
 * Load a JWE private key (PEM, or DER PKCS#8) from `kbs:///REPO/TYPE/TAG` through the KBS
 * client (attesting as needed) or from a local file. The fetched bytes are zeroed once the
 * KeyObject exists.
 */
export async function loadDecryptionKey(spec: string, source: KekSource): Promise<KeyObject> {
  let bytes: Uint8Array;
  if (spec.startsWith('kbs:')) {
    let path;
    try {
      path = parseResourceUri(spec);
    } catch (cause) {
      throw new KeyProviderError('KID_INVALID', 'decryption key is not a kbs:///REPO/TYPE/TAG resource URI', { cause });
    }
    try {
      bytes = await source.getResource(path, path.version !== undefined ? { version: path.version } : {});
    } catch (err) {
      throw err instanceof KbsClientError ? kekFetchError(err, spec) : asKeyProviderError(err);
    }
  } else {
    bytes = await readFile(spec);
  }
  try {
    // SECURITY: bound the key material parsed (STYLE §6).
    if (bytes.byteLength > MAX_PRIVATE_KEY_BYTES) throw new KeyProviderError('DECRYPTION_KEY_INVALID', 'decryption key is too large');
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    try {
      return buf.includes('-----BEGIN') ? createPrivateKey({ key: buf, format: 'pem' }) : createPrivateKey({ key: buf, format: 'der', type: 'pkcs8' });
    } catch (cause) {
      // SECURITY: only private keys are accepted; a public key or junk never reaches the JWE code.
      throw new KeyProviderError('DECRYPTION_KEY_INVALID', 'decryption key is not a PEM or DER (PKCS#8) private key', { cause });
    }
  } finally {
    bytes.fill(0);
  }
}

async function isEmptyOrMissing(dir: string): Promise<boolean> {
  try {
    return (await readdir(dir)).length === 0;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw err;
  }
}

/**
 * Decrypt an image on the node into a plain OCI layout (see @keyhold/ocicrypt decryptImage for
 * the per-layer guarantees: HMAC, plaintext digest, verified blobs). When the output directory
 * is new, the whole layout is built in a private 0700 directory beside it and renamed into place
 * only on success; on any failure that directory is removed, so no plaintext layer stays on disk.
 * Into an existing layout, decryptImage's own staging gives the same guarantee.
 */
export async function decryptImageOnNode(opts: NodeDecryptOptions): Promise<ImageResult> {
  const unwrap = nodeUnwrapper(opts.service, opts.jweKeys);
  const run = async (output: OciImageRef): Promise<ImageResult> => {
    try {
      return await decryptImage({ input: opts.input, output, unwrap, ...(opts.onProgress !== undefined ? { onProgress: opts.onProgress } : {}) });
    } catch (err) {
      // decryptImage wraps an unwrapper's own errors; report the key provider's reason.
      if (err instanceof OcicryptError && err.code === 'UNWRAP_FAILED' && err.cause instanceof KeyProviderError) throw err.cause;
      throw err;
    }
  };
  if (!(await isEmptyOrMissing(opts.output.dir))) return run(opts.output);
  const staging = await mkdtemp(join(dirname(opts.output.dir), `.${basename(opts.output.dir)}.keyhold-decrypt-`));
  opts.onStaging?.(staging);
  try {
    const res = await run({ dir: join(staging, 'layout'), tag: opts.output.tag });
    await rename(join(staging, 'layout'), opts.output.dir);
    return res;
  } finally {
    await rm(staging, { recursive: true, force: true });
    opts.onStaging?.(undefined);
  }
}
