import { formatResourcePath, type ResourcePath } from '@keyhold/protocol';
import { KmsError, type SecretMetadata, type SecretStore } from '@keyhold/kms-adapter';
import { KbsError } from '../errors.js';
import type { ResourceMetadata, ResourceStore } from './resource-store.js';

/** The KBS's resource port over a KMS adapter, translating its typed errors into KBS ones. */
export function kmsResourceStore(store: SecretStore): ResourceStore {
  return {
    backend: store.backend,
    async get(path: ResourcePath, version?: number) {
      try {
        const s = await store.get(formatResourcePath(path), version !== undefined ? { version } : {});
        return s.value;
      } catch (err) {
        if (err instanceof KmsError && err.code === 'KMS_NOT_FOUND') return undefined;
        throw translate(err);
      }
    },
    async put(path: ResourcePath, value: Uint8Array) {
      try {
        const meta = await store.put(formatResourcePath(path), value);
        return { version: meta.version };
      } catch (err) {
        throw translate(err);
      }
    },
    async generate(path: ResourcePath, opts: { bytes: number; rotationPeriodMs?: number; keepVersions?: number }) {
      try {
        const meta = await store.generate(formatResourcePath(path), {
          bytes: opts.bytes,
          ...(opts.rotationPeriodMs !== undefined ? { rotationPeriodMs: opts.rotationPeriodMs } : {}),
          ...(opts.keepVersions !== undefined ? { keepVersions: opts.keepVersions } : {}),
        });
        return { version: meta.version };
      } catch (err) {
        throw translate(err);
      }
    },
    async rotate(path: ResourcePath) {
      try {
        const meta = await store.rotate(formatResourcePath(path));
        return { version: meta.version };
      } catch (err) {
        if (err instanceof KmsError && err.code === 'KMS_NOT_FOUND') throw new KbsError('RESOURCE_NOT_FOUND', `resource ${formatResourcePath(path)} not found`, { cause: err });
        throw translate(err);
      }
    },
    async delete(path: ResourcePath) {
      try {
        await store.delete(formatResourcePath(path));
        return true;
      } catch (err) {
        if (err instanceof KmsError && err.code === 'KMS_NOT_FOUND') return false;
        throw translate(err);
      }
    },
    async list() {
      try {
        return (await store.list()).map(metadataOf);
      } catch (err) {
        throw translate(err);
      }
    },
    async versions(path: ResourcePath) {
      try {
        return (await store.versions(formatResourcePath(path))).map(metadataOf);
      } catch (err) {
        if (err instanceof KmsError && err.code === 'KMS_NOT_FOUND') return undefined;
        throw translate(err);
      }
    },
  };
}

/** Metadata only: the KMS's list/versions never decrypt, and no value field is copied. */
function metadataOf(m: SecretMetadata): ResourceMetadata {
  return {
    path: m.name,
    version: m.version,
    createdAt: m.createdAt.toISOString(),
    labels: { ...m.labels },
    keepVersions: m.keepVersions,
    ...(m.generated !== undefined ? { generated: { ...m.generated } } : {}),
  };
}

function translate(err: unknown): unknown {
  if (!(err instanceof KmsError)) return err;
  switch (err.code) {
    case 'KMS_UNAVAILABLE':
      return new KbsError('STORAGE_UNAVAILABLE', 'secret storage is unavailable, retry later', { cause: err });
    case 'KMS_TOO_LARGE':
      return new KbsError('PAYLOAD_TOO_LARGE', 'secret is larger than the store accepts', { cause: err });
    case 'KMS_INVALID_NAME':
      return new KbsError('INVALID_RESOURCE_PATH', 'invalid resource path', { cause: err });
    case 'KMS_INVALID_ARGUMENT':
      return new KbsError('BAD_REQUEST', err.message, { cause: err });
    case 'KMS_CONFLICT':
      return new KbsError('BAD_REQUEST', 'resource is not a generated key, or it changed concurrently', { cause: err });
    default:
      // KMS_CORRUPT, KMS_CONFIG, KMS_CONFLICT, KMS_BACKEND_ERROR: nothing is released; a generic 500.
      return new KbsError('INTERNAL', 'secret storage error', { cause: err });
  }
}
