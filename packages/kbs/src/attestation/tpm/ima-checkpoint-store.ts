import type { ImaCheckpoint } from '@keyhold/verifier';

/**
 * Where a node's last clean IMA appraisal stopped. Valid for the next attestation only when the
 * new log begins with exactly the same text (`prefixChars` characters hashing to `prefixSha256`),
 * the runtime policy is the same (`policyKey`) and the TPM was not reset since (`resetCount`).
 */
export interface ImaCheckpointRecord {
  /** SHA-256 (hex) of the runtime policy values the prefix was appraised against. */
  readonly policyKey: string;
  /** TPMS_CLOCK_INFO.resetCount of the quote that verified the prefix. */
  readonly resetCount: number;
  /** Replay state after the prefix: bank, next entry index, PCR value. */
  readonly checkpoint: ImaCheckpoint;
  /** Length (UTF-16 code units) of the log text covering entries before `checkpoint.nextIndex`; ends with a newline. */
  readonly prefixChars: number;
  /** SHA-256 (hex) of that text, UTF-8 encoded. */
  readonly prefixSha256: string;
}

/** Per-node IMA checkpoints (node key: SHA-256 of the AK's DER SPKI). */
export interface ImaCheckpointStore {
  get(node: string): Promise<ImaCheckpointRecord | undefined>;
  set(node: string, record: ImaCheckpointRecord): Promise<void>;
  delete(node: string): Promise<void>;
}

/** Default bound on the nodes remembered (a record is about 300 bytes). */
export const DEFAULT_IMA_CHECKPOINT_MAX_NODES = 10_000;

/**
 * In-memory checkpoints, least recently used evicted beyond `maxNodes`. Losing a checkpoint only
 * costs a full appraisal, so eviction and restarts are safe.
 */
export class InMemoryImaCheckpointStore implements ImaCheckpointStore {
  readonly #max: number;
  readonly #records = new Map<string, ImaCheckpointRecord>();

  constructor(opts: { maxNodes?: number } = {}) {
    const max = opts.maxNodes ?? DEFAULT_IMA_CHECKPOINT_MAX_NODES;
    if (!Number.isSafeInteger(max) || max < 1) throw new TypeError('maxNodes must be a positive integer');
    this.#max = max;
  }

  get size(): number {
    return this.#records.size;
  }

  async get(node: string): Promise<ImaCheckpointRecord | undefined> {
    const r = this.#records.get(node);
    if (r !== undefined) {
      // Map order is insertion order: re-inserting marks the record as most recently used.
      this.#records.delete(node);
      this.#records.set(node, r);
    }
    return r;
  }

  async set(node: string, record: ImaCheckpointRecord): Promise<void> {
    this.#records.delete(node);
    this.#records.set(node, record);
    // SECURITY: bounded so that many AKs cannot grow memory without limit (denial of service).
    while (this.#records.size > this.#max) {
      const oldest = this.#records.keys().next().value as string;
      this.#records.delete(oldest);
    }
  }

  async delete(node: string): Promise<void> {
    this.#records.delete(node);
  }
}
