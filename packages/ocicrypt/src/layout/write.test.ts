import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
});
