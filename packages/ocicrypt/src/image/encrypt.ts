import { randomBytes } from 'node:crypto';
import { toBase64, wipe } from '../internal/bytes.js';
import { CIPHER_AES_256_CTR_HMAC_SHA256, encodePrivateOptions, encodePublicOptions, NONCE_BYTES, SYMKEY_BYTES } from '../layer/options.js';
import { LayerEncryptor } from '../layer/cipher-stream.js';
import type { Descriptor } from '../layout/descriptor.js';
import { OciLayoutReader } from '../layout/read.js';
import { OciLayoutWriter } from '../layout/write.js';
import { encryptedMediaType, MEDIA_TYPE_OCI_MANIFEST } from '../media-types.js';
import { KEYS_ANNOTATION_PREFIX, PUBOPTS_ANNOTATION, type Recipient } from '../recipients/types.js';
import { ProgressTracker } from './progress.js';
import type { ImageResult, LayerResult, OciImageRef, ProgressListener } from './types.js';

export interface EncryptImageOptions {
  readonly input: OciImageRef;
  readonly output: OciImageRef;
  /** At least one; each adds its wrapped key to every layer. */
  readonly recipients: readonly Recipient[];
  readonly onProgress?: ProgressListener;
}

const SCHEME = /^(jwe|pgp|pkcs7|pkcs11|provider\.[A-Za-z0-9_.-]{1,64})$/;

/**
 * Encrypt every layer of an image exactly as ocicrypt does, streaming: per layer a fresh
 * 32-byte key and 16-byte nonce, AES-256-CTR then HMAC-SHA256 over the ciphertext; media type
 * gains `+encrypted`; annotations `org.opencontainers.image.enc.keys.<scheme>` (each
 * recipient's wrap of the optsdata, base64, comma-joined per scheme) and
 * `org.opencontainers.image.enc.pubopts`. The config is copied unchanged (its diff_ids stay
 * those of the plaintext); a new manifest is tagged `output.tag`. The output appears only if
 * the whole image succeeded. Every input blob's digest is verified while it is read.
 */
export async function encryptImage(opts: EncryptImageOptions): Promise<ImageResult> {
  if (opts.recipients.length === 0) throw new TypeError('encryptImage needs at least one recipient');
  for (const r of opts.recipients) if (!SCHEME.test(r.scheme)) throw new TypeError(`invalid recipient scheme ${JSON.stringify(r.scheme)}`);

  const reader = await OciLayoutReader.open(opts.input.dir);
  const manifestDesc = reader.resolve(opts.input.tag);
  const { manifest } = await reader.readManifest(manifestDesc);
  const newTypes = manifest.layers.map((l) => encryptedMediaType(l.mediaType)); // fail before writing anything
  const progress = new ProgressTracker(opts.onProgress, manifest.layers.length, manifest.layers.reduce((n, l) => n + l.size, 0));

  const writer = await OciLayoutWriter.begin(opts.output.dir);
  try {
    await writer.writeStream(await reader.openBlob(manifest.config));
    const layers: Descriptor[] = [];
    const results: LayerResult[] = [];
    for (const [i, layer] of manifest.layers.entries()) {
      progress.startLayer(i);
      const symkey = randomBytes(SYMKEY_BYTES);
      const nonce = randomBytes(NONCE_BYTES);
      let optsData: Buffer | undefined;
      try {
        const enc = new LayerEncryptor(symkey, nonce);
        const written = await writer.writeBlob(reader, layer, enc, progress.add);
        optsData = encodePrivateOptions({ symkey, digest: layer.digest, nonce });
        const wrapped = new Map<string, string[]>();
        for (const r of opts.recipients) {
          const list = wrapped.get(r.scheme) ?? [];
          list.push(toBase64(await r.wrap(optsData)));
          wrapped.set(r.scheme, list);
        }
        const annotations: Record<string, string> = { ...layer.annotations };
        for (const [scheme, list] of wrapped) annotations[KEYS_ANNOTATION_PREFIX + scheme] = list.join(',');
        annotations[PUBOPTS_ANNOTATION] = toBase64(encodePublicOptions({ cipher: CIPHER_AES_256_CTR_HMAC_SHA256, hmac: enc.hmac }));
        const mediaType = newTypes[i] as string;
        layers.push({ ...layer, mediaType, digest: written.digest, size: written.size, annotations: sortKeys(annotations) });
        results.push({ index: i, mediaType, digest: written.digest, size: written.size, transformed: true });
      } finally {
        wipe(symkey, optsData);
      }
    }
    const bytes = Buffer.from(JSON.stringify({ ...manifest, layers }), 'utf8');
    const m = await writer.writeBytes(bytes);
    const desc = { mediaType: MEDIA_TYPE_OCI_MANIFEST, digest: m.digest, size: m.size };
    await writer.commit(opts.output.tag, desc);
    return { manifest: desc, layers: results };
  } catch (err) {
    await writer.abort();
    throw err;
  }
}

/** Go marshals map keys sorted; so do we, for byte-compatible manifests. */
export function sortKeys(o: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
