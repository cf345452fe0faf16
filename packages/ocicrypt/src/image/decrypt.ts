import { OcicryptError } from '../errors.js';
import { wipe } from '../internal/bytes.js';
import { LayerDecryptor } from '../layer/cipher-stream.js';
import { parsePrivateOptions, parsePublicOptions } from '../layer/options.js';
import type { Descriptor } from '../layout/descriptor.js';
import { OciLayoutReader } from '../layout/read.js';
import { OciLayoutWriter } from '../layout/write.js';
import { decryptedMediaType, isEncryptedMediaType, MEDIA_TYPE_OCI_MANIFEST } from '../media-types.js';
import { PUBOPTS_ANNOTATION, type Unwrapper } from '../recipients/types.js';
import { ProgressTracker } from './progress.js';
import type { ImageResult, LayerResult, OciImageRef, ProgressListener } from './types.js';

export interface DecryptImageOptions {
  readonly input: OciImageRef;
  readonly output: OciImageRef;
  /** Recovers each encrypted layer's optsdata from its annotations. */
  readonly unwrap: Unwrapper;
  readonly onProgress?: ProgressListener;
}

/** Annotations ocicrypt owns; dropped from decrypted layers (ocicrypt FilterOutAnnotations). */
const ENC_ANNOTATION_PREFIX = 'org.opencontainers.image.enc.';

/**
 * Decrypt every encrypted layer of an image, streaming, into a plain layout.
 *
 * Guarantees, per encrypted layer: the ciphertext blob matches its descriptor digest and size;
 * the cipher is AES_256_CTR_HMAC_SHA256; the optsdata from `unwrap` is well-formed (32-byte
 * key, 16-byte nonce, sha256 digest); HMAC-SHA256(symkey, ciphertext) equals pubopts `hmac`
 * (constant time); the plaintext hashes to the digest in the optsdata, which becomes the
 * layer's digest. Plain layers and the config are copied with digest verification. Nothing
 * is written to `output` unless every layer passed: output is staged and renamed into place,
 * and the staging area is removed on any failure, so no plaintext is left behind.
 *
 * Not checked: that the plaintext's uncompressed digest matches the config's diff_ids (the
 * runtime that unpacks does that), or who encrypted the image.
 */
export async function decryptImage(opts: DecryptImageOptions): Promise<ImageResult> {
  const reader = await OciLayoutReader.open(opts.input.dir);
  const manifestDesc = reader.resolve(opts.input.tag);
  const { manifest } = await reader.readManifest(manifestDesc);
  const plainTypes = manifest.layers.map((l) => (isEncryptedMediaType(l.mediaType) ? decryptedMediaType(l.mediaType) : undefined));
  const progress = new ProgressTracker(opts.onProgress, manifest.layers.length, manifest.layers.reduce((n, l) => n + l.size, 0));

  const writer = await OciLayoutWriter.begin(opts.output.dir);
  try {
    await writer.writeStream(await reader.openBlob(manifest.config));
    const layers: Descriptor[] = [];
    const results: LayerResult[] = [];
    for (const [i, layer] of manifest.layers.entries()) {
      progress.startLayer(i);
      const plainType = plainTypes[i];
      if (plainType === undefined) {
        const w = await writer.writeBlob(reader, layer, undefined, progress.add);
        layers.push(layer);
        results.push({ index: i, mediaType: layer.mediaType, digest: w.digest, size: w.size, transformed: false });
        continue;
      }
      const annotations = layer.annotations ?? {};
      const pub = parsePublicOptions(annotations[PUBOPTS_ANNOTATION]);
      let optsData: Uint8Array;
      try {
        optsData = await opts.unwrap(annotations);
      } catch (err) {
        throw err instanceof OcicryptError ? err : new OcicryptError('UNWRAP_FAILED', 'layer key could not be unwrapped', { cause: err });
      }
      let priv: ReturnType<typeof parsePrivateOptions> | undefined;
      try {
        priv = parsePrivateOptions(optsData);
        const dec = new LayerDecryptor({ symkey: priv.symkey, nonce: priv.nonce, hmac: pub.hmac, digest: priv.digest });
        const w = await writer.writeBlob(reader, layer, dec, progress.add);
        const kept = Object.entries(annotations).filter(([k]) => !k.startsWith(ENC_ANNOTATION_PREFIX));
        const { annotations: _drop, ...rest } = layer;
        layers.push({ ...rest, mediaType: plainType, digest: w.digest, size: w.size, ...(kept.length > 0 ? { annotations: Object.fromEntries(kept) } : {}) });
        results.push({ index: i, mediaType: plainType, digest: w.digest, size: w.size, transformed: true });
      } finally {
        wipe(optsData, priv?.symkey);
      }
    }
    const m = await writer.writeBytes(Buffer.from(JSON.stringify({ ...manifest, layers }), 'utf8'));
    const desc = { mediaType: MEDIA_TYPE_OCI_MANIFEST, digest: m.digest, size: m.size };
    await writer.commit(opts.output.tag, desc);
    return { manifest: desc, layers: results };
  } catch (err) {
    await writer.abort();
    throw err;
  }
}
