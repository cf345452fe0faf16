import type { ResourcePath } from '@keyhold/protocol';

/**
 * Where the KBS keeps secrets. Implementations throw KbsError('STORAGE_UNAVAILABLE') when their
 * backend is down, so the KBS answers 503 rather than a wrong 404.
 */
export interface ResourceStore {
  get(path: ResourcePath, version?: number): Promise<Uint8Array | undefined>;
  put(path: ResourcePath, value: Uint8Array): Promise<{ version: number }>;
  delete(path: ResourcePath): Promise<boolean>;
}
