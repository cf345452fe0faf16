import { constants, createReadStream } from 'node:fs';
import { open, readFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { OcicryptError } from '../errors.js';
import { MEDIA_TYPE_OCI_MANIFEST } from '../media-types.js';
import {
  hexOf,
  ImageIndexSchema,
  ImageManifestSchema,
  OCI_LAYOUT_VERSION,
  parseJsonWith,
  REF_NAME_ANNOTATION,
  type Descriptor,
  type ImageIndex,
  type ImageManifest,
} from './descriptor.js';
import { DigestVerifier } from './verify-stream.js';

/** Largest index.json or manifest read into memory (containers/image's manifest limit). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const READ_CHUNK_BYTES = 1024 * 1024;

/**
 * Read side of an OCI image layout directory (image-spec image-layout.md). Every blob read goes
 * through size and digest verification.
 */
export class OciLayoutReader {
  readonly dir: string;
  readonly index: ImageIndex;

  private constructor(dir: string, index: ImageIndex) {
    this.dir = dir;
    this.index = index;
  }

  /** Open a layout: checks `oci-layout` and parses `index.json`. */
  static async open(dir: string): Promise<OciLayoutReader> {
    let layout: unknown;
    try {
      layout = JSON.parse(await readFile(join(dir, 'oci-layout'), 'utf8'));
    } catch (cause) {
      throw new OcicryptError('OCI_LAYOUT_INVALID', 'not an OCI image layout (oci-layout missing or not JSON)', { cause });
    }
    // SECURITY: refuse layout versions we do not understand rather than guess (image-layout.md).
    if (typeof layout !== 'object' || layout === null || (layout as { imageLayoutVersion?: unknown }).imageLayoutVersion !== OCI_LAYOUT_VERSION) {
      throw new OcicryptError('OCI_LAYOUT_INVALID', 'unsupported imageLayoutVersion');
    }
    const bytes = await readSmallFile(join(dir, 'index.json'), MAX_MANIFEST_BYTES, 'OCI_LAYOUT_INVALID', 'index.json');
    return new OciLayoutReader(dir, parseJsonWith(ImageIndexSchema, bytes, 'OCI_LAYOUT_INVALID', 'index.json'));
  }

  /** The manifest descriptor tagged `tag` (`org.opencontainers.image.ref.name`). */
  resolve(tag: string): Descriptor {
    const hits = this.index.manifests.filter((d) => d.annotations?.[REF_NAME_ANNOTATION] === tag);
    // SECURITY: an unknown tag is an error, never "the first image in the layout".
    if (hits.length === 0) throw new OcicryptError('OCI_REF_NOT_FOUND', `no image tagged ${JSON.stringify(tag.slice(0, 128))} in the layout`);
    // SECURITY: an ambiguous tag could make two tools pick different images (image-layout.md).
    if (hits.length > 1) throw new OcicryptError('OCI_LAYOUT_INVALID', 'tag names more than one manifest');
    const desc = hits[0] as Descriptor;
    // SECURITY: only single-platform OCI manifests are handled; an index or Docker manifest is
    // refused rather than misread.
    if (desc.mediaType !== MEDIA_TYPE_OCI_MANIFEST) {
      throw new OcicryptError('OCI_UNSUPPORTED_MEDIA_TYPE', `tag points to ${JSON.stringify(desc.mediaType)}, not an OCI image manifest`);
    }
    return desc;
  }

  /** Read and verify a blob that fits in memory (manifests, configs). */
  async readBlob(desc: Descriptor, maxBytes = MAX_MANIFEST_BYTES): Promise<Buffer> {
    // SECURITY: check the declared size before allocating (STYLE §6).
    if (desc.size > maxBytes) throw new OcicryptError('OCI_TOO_LARGE', 'blob is larger than allowed for an in-memory read');
    const chunks: Buffer[] = [];
    await pipeline(await this.openBlob(desc), async (src: AsyncIterable<Buffer>) => {
      for await (const c of src) chunks.push(c);
    });
    return Buffer.concat(chunks);
  }

  /** Read, verify and parse the image manifest `desc` points to. */
  async readManifest(desc: Descriptor): Promise<{ manifest: ImageManifest; bytes: Buffer }> {
    const bytes = await this.readBlob(desc);
    const manifest = parseJsonWith(ImageManifestSchema, bytes, 'OCI_MANIFEST_INVALID', 'image manifest');
    // SECURITY: a manifest that declares another media type than its descriptor is refused
    // (image-spec manifest.md, "mediaType" must match the descriptor).
    if (manifest.mediaType !== undefined && manifest.mediaType !== desc.mediaType) {
      throw new OcicryptError('OCI_MANIFEST_INVALID', 'manifest mediaType differs from its descriptor');
    }
    return { manifest, bytes };
  }

  /**
   * A stream of the blob's bytes that errors (typed) if the blob is missing, not a regular
   * file, or its size or digest differ from the descriptor. Consume it with `pipeline`.
   */
  async openBlob(desc: Descriptor): Promise<Readable> {
    const fh = await this.openBlobHandle(desc);
    const stream = createReadStream('', { fd: fh, highWaterMark: READ_CHUNK_BYTES });
    const verifier = new DigestVerifier(desc.digest, desc.size);
    stream.on('error', (err) => verifier.destroy(new OcicryptError('OCI_BLOB_NOT_FOUND', 'blob could not be read', { cause: err })));
    verifier.on('close', () => stream.destroy());
    return stream.pipe(verifier);
  }

  /**
   * The blob's file, opened for reading (a regular file, never a symlink, FIFO or device). The
   * caller reads it and verifies size and digest itself (a `DigestCheck`); the caller closes it.
   */
  openBlobHandle(desc: Descriptor): Promise<FileHandle> {
    return openRegularFile(join(this.dir, 'blobs', 'sha256', hexOf(desc.digest)), 'OCI_BLOB_NOT_FOUND', 'blob');
  }
}

async function openRegularFile(path: string, code: 'OCI_BLOB_NOT_FOUND' | 'OCI_LAYOUT_INVALID', what: string): Promise<FileHandle> {
  let fh: FileHandle;
  try {
    // SECURITY: O_NOFOLLOW + regular-file check: a blob that is a symlink, FIFO or device is
    // refused, so a hostile layout cannot make us read other files or block forever.
    fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (cause) {
    throw new OcicryptError(code, `${what} not found or not readable`, { cause });
  }
  const st = await fh.stat();
  if (!st.isFile()) {
    await fh.close();
    throw new OcicryptError(code, `${what} is not a regular file`);
  }
  return fh;
}

async function readSmallFile(path: string, maxBytes: number, code: 'OCI_LAYOUT_INVALID', what: string): Promise<Buffer> {
  const fh = await openRegularFile(path, code, what);
  try {
    const st = await fh.stat();
    // SECURITY: bound in-memory reads of layout metadata (STYLE §6).
    if (st.size > maxBytes) throw new OcicryptError('OCI_TOO_LARGE', `${what} is too large`);
    return await fh.readFile();
  } finally {
    await fh.close();
  }
}
