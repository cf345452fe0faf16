import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OciLayoutReader } from './read.js';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'ocicrypt-read-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const digestOf = (b: Buffer): string => 'sha256:' + createHash('sha256').update(b).digest('hex');

async function layout(name: string, index: unknown, blobs: Buffer[] = []): Promise<string> {
  const dir = join(root, name);
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  await writeFile(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  await writeFile(join(dir, 'index.json'), typeof index === 'string' ? index : JSON.stringify(index));
  for (const b of blobs) await writeFile(join(dir, 'blobs', 'sha256', digestOf(b).slice(7)), b);
  return dir;
}

const manifestDesc = (b: Buffer, tag = 'latest', mediaType = 'application/vnd.oci.image.manifest.v1+json') => ({
  mediaType,
  digest: digestOf(b),
  size: b.length,
  annotations: { 'org.opencontainers.image.ref.name': tag },
});

describe('OCI layout reading', () => {
  it('resolves a tag and reads a verified manifest', async () => {
    const cfg = Buffer.from('{}');
    const m = Buffer.from(JSON.stringify({ schemaVersion: 2, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestOf(cfg), size: 2 }, layers: [] }));
    const dir = await layout('ok', { schemaVersion: 2, manifests: [manifestDesc(m)] }, [cfg, m]);
    const r = await OciLayoutReader.open(dir);
    const { manifest } = await r.readManifest(r.resolve('latest'));
    expect(manifest.config.digest).toBe(digestOf(cfg));
    expect((await r.readBlob(manifest.config)).toString()).toBe('{}');
    expect(() => r.resolve('nope')).toThrow(expect.objectContaining({ code: 'OCI_REF_NOT_FOUND' }));
  });

  it('refuses a blob whose bytes do not match its digest, or whose size differs', async () => {
    const b = Buffer.from('hello');
    const dir = await layout('tamper', { schemaVersion: 2, manifests: [] }, [b]);
    await writeFile(join(dir, 'blobs', 'sha256', digestOf(b).slice(7)), 'hellp');
    const r = await OciLayoutReader.open(dir);
    await expect(r.readBlob({ mediaType: 'x', digest: digestOf(b), size: 5 })).rejects.toMatchObject({ code: 'OCI_BLOB_DIGEST_MISMATCH' });
    await expect(r.readBlob({ mediaType: 'x', digest: digestOf(b), size: 4 })).rejects.toMatchObject({ code: 'OCI_BLOB_SIZE_MISMATCH' });
    await expect(r.readBlob({ mediaType: 'x', digest: digestOf(b), size: 6 })).rejects.toMatchObject({ code: 'OCI_BLOB_SIZE_MISMATCH' });
    await expect(r.readBlob({ mediaType: 'x', digest: digestOf(Buffer.from('absent')), size: 6 })).rejects.toMatchObject({ code: 'OCI_BLOB_NOT_FOUND' });
    await expect(r.readBlob({ mediaType: 'x', digest: digestOf(b), size: 5_000_000_000 })).rejects.toMatchObject({ code: 'OCI_TOO_LARGE' });
  });

  it('refuses a blob that is a symlink (even to matching content)', async () => {
    const b = Buffer.from('linked');
    const dir = await layout('symlink', { schemaVersion: 2, manifests: [] });
    await writeFile(join(root, 'outside'), b);
    await symlink(join(root, 'outside'), join(dir, 'blobs', 'sha256', digestOf(b).slice(7)));
    const r = await OciLayoutReader.open(dir);
    await expect(r.readBlob({ mediaType: 'x', digest: digestOf(b), size: b.length })).rejects.toMatchObject({ code: 'OCI_BLOB_NOT_FOUND' });
  });

  it.each([
    ['not JSON', '{'],
    ['wrong schemaVersion', { schemaVersion: 1, manifests: [] }],
    ['path traversal digest', { schemaVersion: 2, manifests: [{ mediaType: 'm', digest: 'sha256:../../../../etc/passwd', size: 1 }] }],
    ['sha512 digest', { schemaVersion: 2, manifests: [{ mediaType: 'm', digest: 'sha512:' + 'a'.repeat(128), size: 1 }] }],
    ['negative size', { schemaVersion: 2, manifests: [{ mediaType: 'm', digest: 'sha256:' + 'a'.repeat(64), size: -1 }] }],
  ])('refuses an index.json that is %s', async (name, index) => {
    const dir = await layout(`bad-${name.replace(/\W/g, '')}`, index);
    await expect(OciLayoutReader.open(dir)).rejects.toMatchObject({ code: 'OCI_LAYOUT_INVALID' });
  });

  it('refuses a missing or unknown oci-layout', async () => {
    const dir = await layout('nolayout', { schemaVersion: 2, manifests: [] });
    await writeFile(join(dir, 'oci-layout'), '{"imageLayoutVersion":"2.0.0"}');
    await expect(OciLayoutReader.open(dir)).rejects.toMatchObject({ code: 'OCI_LAYOUT_INVALID' });
    await expect(OciLayoutReader.open(join(root, 'absent'))).rejects.toMatchObject({ code: 'OCI_LAYOUT_INVALID' });
  });

  it('refuses ambiguous tags, image indexes behind a tag, and manifests that lie about their type', async () => {
    const m = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', config: { mediaType: 'c', digest: 'sha256:' + 'a'.repeat(64), size: 1 }, layers: [] }));
    const dup = await layout('dup', { schemaVersion: 2, manifests: [manifestDesc(m), manifestDesc(m)] }, [m]);
    await expect(OciLayoutReader.open(dup).then((r) => r.resolve('latest'))).rejects.toMatchObject({ code: 'OCI_LAYOUT_INVALID' });
    const idx = await layout('idx', { schemaVersion: 2, manifests: [manifestDesc(m, 'latest', 'application/vnd.oci.image.index.v1+json')] }, [m]);
    await expect(OciLayoutReader.open(idx).then((r) => r.resolve('latest'))).rejects.toMatchObject({ code: 'OCI_UNSUPPORTED_MEDIA_TYPE' });
    const lie = await layout('lie', { schemaVersion: 2, manifests: [manifestDesc(m)] }, [m]);
    const r = await OciLayoutReader.open(lie);
    await expect(r.readManifest(r.resolve('latest'))).rejects.toMatchObject({ code: 'OCI_MANIFEST_INVALID' });
  });
});
