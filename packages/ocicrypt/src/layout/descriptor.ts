import * as z from 'zod';
import { OcicryptError } from '../errors.js';

// SECURITY: only sha256 digests with exactly 64 lowercase hex digits are accepted, so a digest
// can never name a path outside blobs/sha256/ (OCI image-spec descriptor.md, "Digests").
const DIGEST = /^sha256:[a-f0-9]{64}$/;

export const DigestSchema = z.string().regex(DIGEST, 'sha256:<64 lowercase hex>');

/** An OCI content descriptor (image-spec descriptor.md). Unknown members are kept. */
export const DescriptorSchema = z.looseObject({
  mediaType: z.string().min(1).max(255),
  digest: DigestSchema,
  // SECURITY: sizes are non-negative safe integers so byte counting cannot overflow.
  size: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  annotations: z.record(z.string(), z.string()).optional(),
});
export type Descriptor = z.infer<typeof DescriptorSchema>;

export const ImageIndexSchema = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  // SECURITY: bound the number of entries a hostile index.json can make us walk.
  manifests: z.array(DescriptorSchema).max(10_000),
});
export type ImageIndex = z.infer<typeof ImageIndexSchema>;

export const ImageManifestSchema = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  config: DescriptorSchema,
  // SECURITY: bound the layer count (containers/image caps manifests at 4 MiB; this is tighter).
  layers: z.array(DescriptorSchema).max(4096),
  annotations: z.record(z.string(), z.string()).optional(),
});
export type ImageManifest = z.infer<typeof ImageManifestSchema>;

export const OCI_LAYOUT_VERSION = '1.0.0';
export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';

export function hexOf(digest: string): string {
  // SECURITY: re-checked where a digest becomes a file name (path traversal; image-layout.md).
  if (!DIGEST.test(digest)) throw new OcicryptError('OCI_MANIFEST_INVALID', 'digest is not sha256:<64 hex>');
  return digest.slice('sha256:'.length);
}

/** Parse JSON bytes through a schema; any failure is the given typed error. */
export function parseJsonWith<T>(schema: z.ZodType<T>, bytes: Uint8Array, code: 'OCI_LAYOUT_INVALID' | 'OCI_MANIFEST_INVALID', what: string): T {
  let value: unknown;
  // SECURITY: layout metadata goes through a schema before any field is trusted (STYLE §6).
  try {
    value = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (cause) {
    throw new OcicryptError(code, `${what} is not JSON`, { cause });
  }
  const r = schema.safeParse(value);
  if (!r.success) throw new OcicryptError(code, `${what} is malformed: ${r.error.issues[0]?.message ?? 'invalid'}`);
  return r.data;
}
