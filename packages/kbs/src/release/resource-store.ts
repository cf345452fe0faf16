import type { ResourcePath } from '@keyhold/protocol';
import type { ResourceMetadata } from './resource-metadata.js';

export type { ResourceMetadata } from './resource-metadata.js';

/**
 * Where the KBS keeps secrets. Implementations throw KbsError('STORAGE_UNAVAILABLE') when their
 * backend is down, so the KBS answers 503 rather than a wrong 404.
 */
export interface ResourceStore {
  /** The secret storage backend's name, for health output (e.g. `embedded`, `redis`, `vault`). */
  readonly backend?: string;
  get(path: ResourcePath, version?: number): Promise<Uint8Array | undefined>;
  put(path: ResourcePath, value: Uint8Array): Promise<{ version: number }>;
  delete(path: ResourcePath): Promise<boolean>;
  /** Store a fresh random key of `bytes` bytes as a new version; rotated on schedule when a period is given. */
  generate(path: ResourcePath, opts: { bytes: number; rotationPeriodMs?: number; keepVersions?: number }): Promise<{ version: number }>;
  /** Replace a generated key by a fresh one of the same length (older versions stay readable until pruned). */
  rotate(path: ResourcePath): Promise<{ version: number }>;
  /** Metadata (never values) of the latest version of every resource, sorted by path. */
  list?(): Promise<ResourceMetadata[]>;
  /** Metadata of every retained version of `path`, oldest first; undefined when absent. */
  versions?(path: ResourcePath): Promise<ResourceMetadata[] | undefined>;
}
