/**
 * The adapter contract the KBS uses. Every backend (embedded files, Redis, Vault) implements it and
 * passes the same conformance suite.
 *
 * Names are KBS resource paths `repo/type/tag`. Each write creates a new version (1, 2, 3, ...);
 * versions are never renumbered or reused while the resource exists (after `delete`, a new history
 * starts again at 1). Older versions stay readable by number until pruned to the resource's
 * `keepVersions`. Values are opaque bytes and never appear in metadata, listings or errors.
 */
export interface SecretStore {
  /** Which backend this is (for logs and health output). */
  readonly backend: 'embedded' | 'redis' | 'vault';
  /** Store `value` as a new version of `name`; returns that version's metadata. */
  put(name: string, value: Uint8Array, options?: PutOptions): Promise<SecretMetadata>;
  /** The latest version, or the given one. KMS_NOT_FOUND when absent or pruned. */
  get(name: string, options?: GetOptions): Promise<Secret>;
  /** Remove the resource and all its versions. KMS_NOT_FOUND when absent. */
  delete(name: string): Promise<void>;
  /** Metadata of the latest version of every resource, sorted by name. Never values. */
  list(): Promise<SecretMetadata[]>;
  /** Metadata of every retained version of `name`, oldest first. KMS_NOT_FOUND when absent. */
  versions(name: string): Promise<SecretMetadata[]>;
  /** Store a fresh random key of `bytes` bytes as a new version, with an optional rotation period. */
  generate(name: string, options: GenerateOptions): Promise<SecretMetadata>;
  /**
   * Replace a generated key by a fresh random key of the same length, keeping its labels,
   * rotation period and keep count. KMS_CONFLICT when `name` was not generated (or `ifVersion`
   * no longer names the latest version).
   */
  rotate(name: string, options?: RotateOptions): Promise<SecretMetadata>;
  /** Release connections and timers. The store must not be used afterwards. */
  close(): Promise<void>;
}

/** Metadata of one version. `list` and `versions` read it without decrypting; `get` authenticates it. */
export interface SecretMetadata {
  readonly name: string;
  readonly version: number;
  readonly createdAt: Date;
  readonly labels: Readonly<Record<string, string>>;
  /** How many versions the store keeps for this resource (older ones are pruned on write). */
  readonly keepVersions: number;
  /** Set for keys made by `generate`/`rotate`. */
  readonly generated?: {
    readonly bytes: number;
    /** When set, a RotationScheduler rotates the key once it is this old. */
    readonly rotationPeriodMs?: number;
  };
}

export interface Secret {
  readonly value: Uint8Array;
  readonly metadata: SecretMetadata;
}

export interface PutOptions {
  /** Up to 32 labels; keys match ^[A-Za-z0-9_.-]{1,63}$, values are at most 256 characters. */
  readonly labels?: Readonly<Record<string, string>>;
  /** Versions to keep (1..1000); defaults to the store's `defaultKeepVersions`. */
  readonly keepVersions?: number;
  /**
   * Compare-and-set: the write happens only if the latest version is this number (0 = the resource
   * must not exist); otherwise KMS_CONFLICT.
   */
  readonly ifVersion?: number;
}

export interface GetOptions {
  readonly version?: number;
}

export interface GenerateOptions extends PutOptions {
  /** Key length in bytes, 16..1024. */
  readonly bytes: number;
  /** Rotate automatically once a version is this old (at least 1000 ms). */
  readonly rotationPeriodMs?: number;
}

export interface RotateOptions {
  /** Rotate only if the latest version is still this one (KMS_CONFLICT otherwise). */
  readonly ifVersion?: number;
}

/** Limits shared by every backend; safe defaults. */
export interface StoreLimits {
  /** Largest value accepted by `put` (default 1 MiB, the KBS's body limit). */
  readonly maxValueBytes?: number;
  /** Versions kept per resource when a write does not say (default 10). */
  readonly defaultKeepVersions?: number;
}
