import { randomBytes } from 'node:crypto';
import type { Clock } from '../clock.js';
import { systemClock } from '../clock.js';
import { KmsError } from '../errors.js';
import { checkVersion, MAX_VERSION, parseResourceName } from '../resource-name.js';
import type {
  GenerateOptions,
  GetOptions,
  PutOptions,
  RotateOptions,
  Secret,
  SecretMetadata,
  SecretStore,
  StoreLimits,
} from '../secret-store.js';
import { KeyedMutex } from './keyed-mutex.js';
import { readRecordMetadata, type RecordCodec, type RecordFields } from './record-codec.js';
import { toStoredMeta } from './stored-meta.js';
import { checkIfVersion, checkKeepVersions, checkKeyBytes, checkLabels, checkRotationPeriod, checkValue } from './write-options.js';

/**
 * What a backend must provide: records addressed by (name, version) and one atomic primitive,
 * `commit`, that creates version `expected + 1` only if `expected` is still the latest. All
 * validation, encryption, versioning and rotation logic lives in VersionedStore, once.
 * Drivers throw KmsError (KMS_UNAVAILABLE when the backend cannot be reached).
 */
export interface StorageDriver {
  readonly backend: SecretStore['backend'];
  /** Latest version number of `name`, 0 when it does not exist. */
  latestVersion(name: string): Promise<number>;
  /** The latest record, or undefined. */
  readLatest(name: string): Promise<{ version: number; fields: RecordFields } | undefined>;
  read(name: string, version: number): Promise<RecordFields | undefined>;
  /** Every retained version, oldest first. */
  readAll(name: string): Promise<Array<{ version: number; fields: RecordFields }>>;
  /** Names of all resources with at least one version (any order). */
  names(): Promise<string[]>;
  /**
   * Atomically create version `expected + 1` with `fields` iff the latest version is `expected`,
   * then prune to the newest `keep` versions. False when another writer got there first.
   */
  commit(name: string, expected: number, fields: RecordFields, keep: number): Promise<boolean>;
  /** Remove every version; false when there was none. */
  remove(name: string): Promise<boolean>;
  close(): Promise<void>;
}

export interface VersionedStoreOptions extends StoreLimits {
  readonly clock?: Clock;
  /** CAS attempts before giving up with KMS_CONFLICT (cross-process contention only). */
  readonly maxCommitAttempts?: number;
  /** Extra cleanup on close (e.g. a key wrapper's connection the factory created). */
  readonly onClose?: () => Promise<void>;
}

const DEFAULT_MAX_VALUE_BYTES = 1024 * 1024;
const DEFAULT_KEEP_VERSIONS = 10;

/** The SecretStore every backend shares: it validates, encrypts, versions and rotates. */
export class VersionedStore implements SecretStore {
  readonly backend: SecretStore['backend'];
  readonly #driver: StorageDriver;
  readonly #codec: RecordCodec;
  readonly #clock: Clock;
  readonly #maxValueBytes: number;
  readonly #defaultKeep: number;
  readonly #maxAttempts: number;
  readonly #onClose: (() => Promise<void>) | undefined;
  // Writers to one name in this process queue up, so in-process contention never costs a CAS retry.
  readonly #writers = new KeyedMutex();
  #closed = false;

  constructor(driver: StorageDriver, codec: RecordCodec, options: VersionedStoreOptions = {}) {
    this.backend = driver.backend;
    this.#driver = driver;
    this.#codec = codec;
    this.#clock = options.clock ?? systemClock;
    this.#maxValueBytes = options.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES;
    this.#defaultKeep = options.defaultKeepVersions ?? DEFAULT_KEEP_VERSIONS;
    this.#maxAttempts = options.maxCommitAttempts ?? 100;
    this.#onClose = options.onClose;
    if (!Number.isInteger(this.#maxValueBytes) || this.#maxValueBytes < 1 || this.#maxValueBytes > 64 * 1024 * 1024) {
      throw new TypeError('maxValueBytes is an integer in 1..64 MiB');
    }
    if (!Number.isInteger(this.#defaultKeep) || this.#defaultKeep < 1 || this.#defaultKeep > 1000) {
      throw new TypeError('defaultKeepVersions is an integer in 1..1000');
    }
  }

  async put(name: string, value: Uint8Array, options: PutOptions = {}): Promise<SecretMetadata> {
    this.#open();
    const path = parseResourceName(name).path;
    checkValue(value, this.#maxValueBytes);
    const labels = checkLabels(options.labels);
    const keepVersions = options.keepVersions === undefined ? this.#defaultKeep : checkKeepVersions(options.keepVersions);
    return this.#write(path, value, { labels, keepVersions }, checkIfVersion(options.ifVersion));
  }

  async get(name: string, options: GetOptions = {}): Promise<Secret> {
    this.#open();
    const path = parseResourceName(name).path;
    if (options.version !== undefined) {
      const version = checkVersion(options.version);
      const fields = await this.#driver.read(path, version);
      if (fields === undefined) throw notFound(path, version);
      return this.#codec.decode(path, version, fields);
    }
    const latest = await this.#driver.readLatest(path);
    if (latest === undefined) throw notFound(path);
    return this.#codec.decode(path, latest.version, latest.fields);
  }

  async delete(name: string): Promise<void> {
    this.#open();
    const path = parseResourceName(name).path;
    const removed = await this.#writers.run(path, () => this.#driver.remove(path));
    if (!removed) throw notFound(path);
  }

  async list(): Promise<SecretMetadata[]> {
    this.#open();
    const names = [...new Set(await this.#driver.names())].sort();
    const out: SecretMetadata[] = [];
    for (const n of names) {
      const latest = await this.#driver.readLatest(n);
      if (latest !== undefined) out.push(readRecordMetadata(n, latest.version, latest.fields));
    }
    return out;
  }

  async versions(name: string): Promise<SecretMetadata[]> {
    this.#open();
    const path = parseResourceName(name).path;
    const all = await this.#driver.readAll(path);
    if (all.length === 0) throw notFound(path);
    return all.map(({ version, fields }) => readRecordMetadata(path, version, fields));
  }

  async generate(name: string, options: GenerateOptions): Promise<SecretMetadata> {
    this.#open();
    const path = parseResourceName(name).path;
    if (typeof options !== 'object' || options === null) throw new KmsError('KMS_INVALID_ARGUMENT', 'generate needs options');
    const bytes = checkKeyBytes(options.bytes);
    const rotationPeriodMs = options.rotationPeriodMs === undefined ? undefined : checkRotationPeriod(options.rotationPeriodMs);
    const labels = checkLabels(options.labels);
    const keepVersions = options.keepVersions === undefined ? this.#defaultKeep : checkKeepVersions(options.keepVersions);
    const generated = rotationPeriodMs === undefined ? { bytes } : { bytes, rotationPeriodMs };
    const key = randomBytes(bytes);
    try {
      return await this.#write(path, key, { labels, keepVersions, generated }, checkIfVersion(options.ifVersion));
    } finally {
      key.fill(0);
    }
  }

  async rotate(name: string, options: RotateOptions = {}): Promise<SecretMetadata> {
    this.#open();
    const path = parseResourceName(name).path;
    const ifVersion = checkIfVersion(options.ifVersion);
    // Read through `get` so the rotation policy we copy is authenticated, not just parsed.
    const current = await this.get(path);
    (current.value as Buffer).fill(0);
    const { metadata } = current;
    if (metadata.generated === undefined) {
      throw new KmsError('KMS_CONFLICT', `${path} was not generated by the store and cannot be rotated`);
    }
    if (ifVersion !== undefined && ifVersion !== metadata.version) {
      throw new KmsError('KMS_CONFLICT', `${path} is no longer at version ${ifVersion}`);
    }
    const key = randomBytes(metadata.generated.bytes);
    try {
      return await this.#write(
        path,
        key,
        { labels: metadata.labels, keepVersions: metadata.keepVersions, generated: metadata.generated },
        metadata.version,
      );
    } finally {
      key.fill(0);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.#driver.close();
    } finally {
      await this.#onClose?.();
    }
  }

  #open(): void {
    if (this.#closed) throw new TypeError('the secret store is closed');
  }

  #write(
    path: string,
    value: Uint8Array,
    meta: Pick<SecretMetadata, 'labels' | 'keepVersions' | 'generated'>,
    ifVersion: number | undefined,
  ): Promise<SecretMetadata> {
    return this.#writers.run(path, async () => {
      for (let attempt = 0; attempt < this.#maxAttempts; attempt++) {
        const current = await this.#driver.latestVersion(path);
        // SECURITY: compare-and-set lets admins and the rotation scheduler avoid overwriting a
        // newer value they have not seen (lost update).
        if (ifVersion !== undefined && current !== ifVersion) {
          throw new KmsError('KMS_CONFLICT', `${path} is at version ${current}, not ${ifVersion}`);
        }
        if (current >= MAX_VERSION) throw new KmsError('KMS_CONFLICT', `${path} has used up its version numbers`);
        const metadata: SecretMetadata = {
          name: path,
          version: current + 1,
          createdAt: new Date(this.#clock.now()),
          labels: meta.labels,
          keepVersions: meta.keepVersions,
          ...(meta.generated === undefined ? {} : { generated: meta.generated }),
        };
        const fields = await this.#codec.encode(path, metadata.version, toStoredMeta(metadata), value);
        if (await this.#driver.commit(path, current, fields, meta.keepVersions)) return metadata;
        // Another process won the race: back off a little (randomised) and try the next version.
        await new Promise((r) => setTimeout(r, Math.floor(Math.random() * Math.min(50, 2 + attempt * 2))));
      }
      throw new KmsError('KMS_CONFLICT', `${path}: too many concurrent writers, gave up`);
    });
  }
}

function notFound(path: string, version?: number): KmsError {
  return new KmsError('KMS_NOT_FOUND', version === undefined ? `${path} not found` : `${path} version ${version} not found`);
}
