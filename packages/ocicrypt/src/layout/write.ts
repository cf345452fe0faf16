import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { link, mkdir, open, readdir, rename, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import { syncDir } from '@keyhold/atomic-file';
import { syncFile, writeFileDurably } from './durable-file.js';
import { basename, dirname, join } from 'node:path';
import type { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { OcicryptError } from '../errors.js';
import { hexOf, OCI_LAYOUT_VERSION, REF_NAME_ANNOTATION, type Descriptor, type ImageIndex } from './descriptor.js';
import { releaseBuffer } from '../internal/release-buffer.js';
import type { ChunkTransform } from '../layer/cipher-stream.js';
import { OciLayoutReader } from './read.js';
import { pump, type PumpStep } from './pump.js';
import { DigestCheck, DigestCounter } from './verify-stream.js';

/**
 * Read size of `writeBlob` (two read buffers of it for a transform, three for a plain copy, reused
 * for the whole blob). 384 KiB, measured on the 256 MiB bench layer (bench/image.bench.ts): 256 KiB
 * to 1 MiB run at the same speed; peak RSS is lowest at 384-512 KiB (1 MiB: the chunks in flight
 * weigh; 256 KiB: enough calls per layer that V8 compiles the pump's loop with TurboFan, whose
 * background compile memory stays mapped, ~1.5-2 MiB, once per process).
 */
const PUMP_CHUNK_BYTES = 384 * 1024;

/**
 * Write side of an OCI image layout. Nothing becomes visible at the destination until
 * `commit()`: blobs are staged in a private temp directory on the same file system and renamed
 * into place only when the whole image was produced; `abort()` removes every staged byte. When
 * the destination does not exist (or is an empty directory) the whole layout is built in a
 * sibling temp directory and renamed onto it in one step.
 */
export class OciLayoutWriter {
  readonly dir: string;
  readonly #staging: string;
  readonly #fresh: boolean;
  readonly #existingIndex: ImageIndex | undefined;
  readonly #staged = new Map<string, string>();
  #done = false;

  private constructor(dir: string, staging: string, fresh: boolean, existingIndex: ImageIndex | undefined) {
    this.dir = dir;
    this.#staging = staging;
    this.#fresh = fresh;
    this.#existingIndex = existingIndex;
  }

  static async begin(dir: string): Promise<OciLayoutWriter> {
    const tag = randomBytes(6).toString('hex');
    let entries: string[] | undefined;
    try {
      entries = await readdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new OcicryptError('OCI_LAYOUT_INVALID', 'output path is not a readable directory', { cause: err });
    }
    if (entries === undefined || entries.length === 0) {
      const staging = join(dirname(dir), `.${basename(dir)}.keyhold-tmp-${tag}`);
      await mkdir(join(staging, 'blobs', 'sha256'), { recursive: true, mode: 0o700 });
      return new OciLayoutWriter(dir, staging, true, undefined);
    }
    // SECURITY: never scribble into a non-empty directory that is not an OCI layout.
    const existing = await OciLayoutReader.open(dir).catch((cause: unknown) => {
      throw new OcicryptError('OCI_OUTPUT_EXISTS', 'output directory exists and is not an OCI image layout', { cause });
    });
    const staging = join(dir, `.keyhold-tmp-${tag}`);
    await mkdir(staging, { mode: 0o700 });
    return new OciLayoutWriter(dir, staging, false, existing.index);
  }

  /** A fresh path inside the staging area, for a blob being produced. */
  tempPath(): string {
    return join(this.#fresh ? join(this.#staging, 'blobs') : this.#staging, `tmp-${randomBytes(8).toString('hex')}`);
  }

  /** Record a finished temp file as the blob `digest`. */
  adopt(tempPath: string, digest: string): void {
    hexOf(digest);
    if (this.#staged.has(digest)) {
      void unlink(tempPath).catch(() => undefined);
      return;
    }
    this.#staged.set(digest, tempPath);
  }

  /**
   * Stream `source` (through optional transforms) to a staged blob; returns its descriptor
   * fields. The caller decides what the bytes mean.
   */
  async writeStream(source: Readable, ...transforms: Transform[]): Promise<{ digest: string; size: number }> {
    const tmp = this.tempPath();
    const counter = new DigestCounter();
    try {
      await pipeline([source, ...transforms, counter, createWriteStream(tmp, { mode: 0o600 })]);
      await syncFile(tmp);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    this.adopt(tmp, counter.digest);
    return { digest: counter.digest, size: counter.size };
  }

  /**
   * Copy the blob `desc` of `reader` to a staged blob, through an optional synchronous transform
   * (layer encryption or decryption), in one pass ({@link pump}: chunk k+1 is read and chunk k
   * verified and transformed while chunk k-1 is written; each transformed chunk is released once
   * written). Memory use is a few chunks whatever the blob size. The input's size
   * and digest are verified as it is read; the transform's `final` checks (HMAC, plaintext digest)
   * run before the blob is staged, and any failure removes the partial file. Returns the output's
   * digest and size.
   */
  async writeBlob(reader: OciLayoutReader, desc: Descriptor, transform?: ChunkTransform, onBytes?: (n: number) => void): Promise<{ digest: string; size: number }> {
    const tmp = this.tempPath();
    const check = new DigestCheck(desc.digest, desc.size);
    // A decryptor hashes its plaintext to check it (ocicrypt's digest in the key options): that
    // digest is the output's, so the output is not hashed a second time (one SHA-256 pass less).
    const outHash = transform !== undefined && 'verifiedOutputDigest' in transform ? undefined : createHash('sha256');
    let size = 0;
    const emit = (o: Buffer): Buffer => {
      outHash?.update(o);
      size += o.length;
      return o;
    };
    const step: PumpStep = {
      chunk: (chunk) => {
        check.update(chunk);
        onBytes?.(chunk.length);
        return emit(transform === undefined ? chunk : transform.update(chunk));
      },
      end: () => {
        check.final();
        return emit(transform === undefined ? Buffer.alloc(0) : transform.final());
      },
      // A transform's output is exclusively ours: hand its memory back as soon as it is on disk.
      ...(transform !== undefined ? { written: releaseBuffer } : {}),
    };
    let src: FileHandle | undefined;
    let out: FileHandle | undefined;
    try {
      src = await reader.openBlobHandle(desc);
      out = await open(tmp, 'wx', 0o600);
      await pump(src.fd, out.fd, PUMP_CHUNK_BYTES, step, (cause) => new OcicryptError('OCI_BLOB_NOT_FOUND', 'blob could not be read', { cause }));
      // On disk before commit() renames it into a layout (a power loss never leaves a short blob).
      await out.datasync();
      await out.close();
      out = undefined;
    } catch (err) {
      await out?.close().catch(() => undefined);
      await rm(tmp, { force: true });
      throw err;
    } finally {
      await src?.close().catch(() => undefined);
    }
    const digest = outHash !== undefined ? 'sha256:' + outHash.digest('hex') : transform?.verifiedOutputDigest;
    if (digest === undefined) {
      // SECURITY: never stage a blob under a digest nobody computed (fail closed on a transform bug).
      await rm(tmp, { force: true });
      throw new TypeError('writeBlob: the transform verified no output digest');
    }
    this.adopt(tmp, digest);
    return { digest, size };
  }

  /** Stage an in-memory blob (manifest, config). */
  async writeBytes(bytes: Uint8Array): Promise<{ digest: string; size: number }> {
    const tmp = this.tempPath();
    await writeFileDurably(tmp, bytes);
    const digest = 'sha256:' + createHash('sha256').update(bytes).digest('hex');
    this.adopt(tmp, digest);
    return { digest, size: bytes.byteLength };
  }

  /** Publish every staged blob and point `tag` at `manifest` in index.json. */
  async commit(tag: string, manifest: Descriptor): Promise<void> {
    if (this.#done) throw new Error('OciLayoutWriter already finished');
    this.#done = true;
    const entry: Descriptor = {
      mediaType: manifest.mediaType,
      digest: manifest.digest,
      size: manifest.size,
      annotations: { ...manifest.annotations, [REF_NAME_ANNOTATION]: tag },
    };
    const others = (this.#existingIndex?.manifests ?? []).filter((d) => d.annotations?.[REF_NAME_ANNOTATION] !== tag);
    const index = { ...(this.#existingIndex ?? { schemaVersion: 2 as const }), manifests: [...others, entry] };
    try {
      if (this.#fresh) {
        for (const [digest, tmp] of this.#staged) await rename(tmp, join(this.#staging, 'blobs', 'sha256', hexOf(digest)));
        await writeFileDurably(join(this.#staging, 'oci-layout'), JSON.stringify({ imageLayoutVersion: OCI_LAYOUT_VERSION }), 0o644);
        await writeFileDurably(join(this.#staging, 'index.json'), JSON.stringify(index), 0o644);
        await syncDir(join(this.#staging, 'blobs', 'sha256'));
        await syncDir(join(this.#staging, 'blobs'));
        await syncDir(this.#staging);
        await rename(this.#staging, this.dir);
        await syncDir(dirname(this.dir));
        return;
      }
      await mkdir(join(this.dir, 'blobs', 'sha256'), { recursive: true });
      for (const [digest, tmp] of this.#staged) {
        const dest = join(this.dir, 'blobs', 'sha256', hexOf(digest));
        // Content-addressed: an existing blob with this name already holds these bytes.
        if (await exists(dest)) continue;
        await link(tmp, dest).catch(async () => rename(tmp, dest));
      }
      // The blobs' names are durable before the index that refers to them is replaced.
      await syncDir(join(this.dir, 'blobs', 'sha256'));
      const tmpIndex = join(this.#staging, 'index.json');
      await writeFileDurably(tmpIndex, JSON.stringify(index), 0o644);
      await rename(tmpIndex, join(this.dir, 'index.json'));
      await syncDir(this.dir);
    } catch (err) {
      await this.#cleanup();
      throw err;
    }
    await this.#cleanup();
  }

  /** Drop everything staged; the destination is left as it was. */
  async abort(): Promise<void> {
    this.#done = true;
    await this.#cleanup();
  }

  async #cleanup(): Promise<void> {
    await rm(this.#staging, { recursive: true, force: true });
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
