import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { LayerDecryptor, LayerEncryptor } from '../layer/cipher-stream.js';
import { OciLayoutReader } from './read.js';
import { OciLayoutWriter } from './write.js';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'ocicrypt-write-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

describe('OCI layout writing', () => {
  it('creates a new layout only on commit, then adds tags to it', async () => {
    const dir = join(root, 'new');
    const w = await OciLayoutWriter.begin(dir);
    const blob = await w.writeStream(Readable.from([Buffer.from('abc')]));
    const m = await w.writeBytes(Buffer.from('{"m":1}'));
    await expect(readdir(dir)).rejects.toThrow();
    await w.commit('v1', { mediaType: MANIFEST, ...m });
    const r = await OciLayoutReader.open(dir);
    expect(r.resolve('v1').digest).toBe(m.digest);
    expect((await r.readBlob({ mediaType: 'x', ...blob })).toString()).toBe('abc');

    const w2 = await OciLayoutWriter.begin(dir);
    const m2 = await w2.writeBytes(Buffer.from('{"m":2}'));
    await w2.commit('v2', { mediaType: MANIFEST, ...m2 });
    const r2 = await OciLayoutReader.open(dir);
    expect(r2.resolve('v1').digest).toBe(m.digest);
    expect(r2.resolve('v2').digest).toBe(m2.digest);
    expect((await readdir(dir)).sort()).toEqual(['blobs', 'index.json', 'oci-layout']);
  });

  it('syncs every staged blob before commit, and the index, oci-layout and directories before commit resolves', async () => {
    // A power loss after commit must not leave the layout naming a short blob (skopeo syncs the same).
    const probe = await open(join(root, 'probe'), 'w');
    const handleProto = Object.getPrototypeOf(probe) as { datasync(): Promise<void>; sync(): Promise<void> };
    await probe.close();
    const datasync = vi.spyOn(handleProto, 'datasync');
    const sync = vi.spyOn(handleProto, 'sync');
    try {
      for (const [name, existing] of [['durable-new', false], ['durable-existing', true]] as const) {
        const dir = join(root, name);
        if (existing) {
          const w0 = await OciLayoutWriter.begin(dir);
          await w0.commit('v0', { mediaType: MANIFEST, ...(await w0.writeBytes(Buffer.from('{"m":0}'))) });
        }
        datasync.mockClear();
        sync.mockClear();
        const w = await OciLayoutWriter.begin(dir);
        await w.writeStream(Readable.from([Buffer.from('layer one')]));
        const source = join(root, `${name}-src`);
        const src = await OciLayoutWriter.begin(source);
        const layer = await src.writeBytes(randomBytes(1000));
        await src.commit('s', { mediaType: MANIFEST, ...(await src.writeBytes(Buffer.from('{"s":1}'))) });
        datasync.mockClear();
        sync.mockClear();
        await w.writeStream(Readable.from([Buffer.from('layer two')]));
        await w.writeBlob(await OciLayoutReader.open(source), { mediaType: 'x', ...layer });
        const m = await w.writeBytes(Buffer.from(`{"m":"${name}"}`));
        expect(datasync).toHaveBeenCalledTimes(3);
        expect(sync).not.toHaveBeenCalled();
        await w.commit('v1', { mediaType: MANIFEST, ...m });
        // New layout: oci-layout and index.json; existing one: index.json.
        expect(datasync).toHaveBeenCalledTimes(existing ? 4 : 5);
        // Directories: blobs/sha256, blobs, the staged layout and its parent; or blobs/sha256 and the layout.
        expect(sync).toHaveBeenCalledTimes(existing ? 2 : 4);
      }
    } finally {
      datasync.mockRestore();
      sync.mockRestore();
    }
  });

  it('abort leaves neither the destination nor staging files behind', async () => {
    const dir = join(root, 'aborted');
    const w = await OciLayoutWriter.begin(dir);
    await w.writeStream(Readable.from([Buffer.from('secret plaintext')]));
    await w.abort();
    expect((await readdir(root)).filter((n) => n.includes('aborted'))).toEqual([]);
  });

  it('a failing stream removes its partial file', async () => {
    const dir = join(root, 'failing');
    await mkdir(dir);
    const w = await OciLayoutWriter.begin(dir);
    const bad = new Readable({
      read() {
        this.push(Buffer.from('partial'));
        this.destroy(new Error('boom'));
      },
    });
    await expect(w.writeStream(bad)).rejects.toThrow('boom');
    await w.abort();
    expect(await readdir(dir)).toEqual([]);
    expect((await readdir(root)).filter((n) => n.includes('failing'))).toEqual(['failing']);
  });

  it('refuses to write into a non-empty directory that is not a layout', async () => {
    const dir = join(root, 'other');
    await mkdir(dir);
    await writeFile(join(dir, 'important.txt'), 'x');
    await expect(OciLayoutWriter.begin(dir)).rejects.toMatchObject({ code: 'OCI_OUTPUT_EXISTS' });
    expect(await readFile(join(dir, 'important.txt'), 'utf8')).toBe('x');
  });

  describe('writeBlob (one pass, one read and one write in flight)', () => {
    const sha = (b: Buffer) => 'sha256:' + createHash('sha256').update(b).digest('hex');
    async function layoutWith(blob: Buffer): Promise<{ reader: OciLayoutReader; desc: { mediaType: string; digest: string; size: number } }> {
      const dir = join(root, `src-${randomBytes(4).toString('hex')}`);
      const w = await OciLayoutWriter.begin(dir);
      const b = await w.writeBytes(blob);
      const m = await w.writeBytes(Buffer.from('{}'));
      await w.commit('t', { mediaType: MANIFEST, ...m });
      return { reader: await OciLayoutReader.open(dir), desc: { mediaType: 'application/octet-stream', ...b } };
    }

    it('encrypts and decrypts a multi-chunk blob, verifying input and releasing each written chunk', async () => {
      const plain = randomBytes(3 * 1024 * 1024 + 17);
      const { reader, desc } = await layoutWith(plain);
      const key = randomBytes(32);
      const nonce = randomBytes(16);
      const enc = new LayerEncryptor(key, nonce);
      const outs: Buffer[] = [];
      const recording = { update: (c: Buffer) => { const o = enc.update(c); outs.push(o); return o; }, final: () => enc.final() };
      let seen = 0;
      const dir = join(root, `enc-${randomBytes(4).toString('hex')}`);
      const w = await OciLayoutWriter.begin(dir);
      const ct = await w.writeBlob(reader, desc, recording, (n) => (seen += n));
      const m = await w.writeBytes(Buffer.from('{}'));
      await w.commit('t', { mediaType: MANIFEST, ...m });
      expect(seen).toBe(plain.length);
      expect(ct.size).toBe(plain.length);
      expect(outs.length).toBeGreaterThan(2);
      // Every full chunk was written before its memory was handed back (the 17-byte tail is too
      // small to bother).
      expect(outs.slice(0, -1).every((o) => o.byteLength === 0)).toBe(true);
      expect(outs.at(-1)!.byteLength).toBe(17);
      const r2 = await OciLayoutReader.open(dir);
      const back = join(root, `dec-${randomBytes(4).toString('hex')}`);
      const w2 = await OciLayoutWriter.begin(back);
      const pt = await w2.writeBlob(r2, { mediaType: 'x', ...ct }, new LayerDecryptor({ symkey: key, nonce, hmac: enc.hmac, digest: desc.digest }));
      const m2 = await w2.writeBytes(Buffer.from('{}'));
      await w2.commit('t', { mediaType: MANIFEST, ...m2 });
      expect(pt.digest).toBe(sha(plain));
      expect((await readFile(join(back, 'blobs', 'sha256', pt.digest.slice(7)))).equals(plain)).toBe(true);
    });

    // SECURITY negative test: a transform that claims to verify its output but names no digest stages nothing.
    it('a transform that verifies its output digest skips the second hash, and one that names none stages nothing', async () => {
      const blob = randomBytes(100 * 1024);
      const { reader, desc } = await layoutWith(blob);
      const dir = join(root, `vd-${randomBytes(4).toString('hex')}`);
      await mkdir(dir);
      const w = await OciLayoutWriter.begin(dir);
      const broken = { update: (c: Buffer) => Buffer.from(c), final: () => Buffer.alloc(0), verifiedOutputDigest: undefined };
      await expect(w.writeBlob(reader, desc, broken)).rejects.toThrow(/verified no output digest/);
      // A transform that claims a digest gets exactly that digest (the decryptor only sets it after
      // checking its own hash of every byte it returned).
      const claiming = { update: (c: Buffer) => Buffer.from(c), final: () => Buffer.alloc(0), verifiedOutputDigest: desc.digest };
      expect((await w.writeBlob(reader, desc, claiming)).digest).toBe(desc.digest);
    });

    it('refuses a blob that is longer, shorter or other than its descriptor, and a failed HMAC, leaving no file', async () => {
      const blob = randomBytes(300 * 1024);
      const { reader, desc } = await layoutWith(blob);
      const dir = join(root, `bad-${randomBytes(4).toString('hex')}`);
      await mkdir(dir);
      const w = await OciLayoutWriter.begin(dir);
      await expect(w.writeBlob(reader, { ...desc, size: desc.size - 1 })).rejects.toMatchObject({ code: 'OCI_BLOB_SIZE_MISMATCH' });
      await expect(w.writeBlob(reader, { ...desc, size: desc.size + 1 })).rejects.toMatchObject({ code: 'OCI_BLOB_SIZE_MISMATCH' });
      const other = { ...desc, digest: sha(Buffer.from('other')) };
      await expect(w.writeBlob(reader, other)).rejects.toMatchObject({ code: 'OCI_BLOB_NOT_FOUND' });
      await writeFile(join(reader.dir, 'blobs', 'sha256', other.digest.slice(7)), blob);
      await expect(w.writeBlob(reader, other)).rejects.toMatchObject({ code: 'OCI_BLOB_DIGEST_MISMATCH' });
      const dec = new LayerDecryptor({ symkey: randomBytes(32), nonce: randomBytes(16), hmac: randomBytes(32), digest: desc.digest });
      await expect(w.writeBlob(reader, desc, dec)).rejects.toMatchObject({ code: 'LAYER_HMAC_MISMATCH' });
      // Nothing but the empty blob directory is left in the staging area.
      expect(await readdir(dirname(w.tempPath()))).toEqual(['sha256']);
      expect(await readdir(join(dirname(w.tempPath()), 'sha256'))).toEqual([]);
      await w.abort();
      expect(await readdir(dir)).toEqual([]);
    });
  });
});
