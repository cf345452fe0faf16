import type { ImaCheckpointRecord } from '../../attestation/tpm/ima-checkpoint-store.js';
import { checkImaNodeKey, decodeImaRecord, encodeImaRecord } from '../ima-record.js';
import type { ImaCheckpointState } from '../ports.js';
import type { RedisContext } from './redis-connection.js';

/** Default lifetime of a checkpoint in Redis (losing one only costs a full appraisal). */
export const DEFAULT_IMA_CHECKPOINT_TTL_MS = 7 * 24 * 3600_000;

/** IMA checkpoints: one key per node, `{P:ima:<node>}`, JSON, with a TTL renewed on every write. */
export class RedisImaCheckpoints implements ImaCheckpointState {
  readonly #ctx: RedisContext;
  readonly #ttlMs: number;

  constructor(ctx: RedisContext, ttlMs = DEFAULT_IMA_CHECKPOINT_TTL_MS) {
    if (!Number.isSafeInteger(ttlMs) || ttlMs < 1000) throw new TypeError('imaCheckpointTtlMs must be an integer of at least 1000');
    this.#ctx = ctx;
    this.#ttlMs = ttlMs;
  }

  async get(node: string): Promise<ImaCheckpointRecord | undefined> {
    checkImaNodeKey(node);
    const s = await this.#ctx.op(() => this.#ctx.client.get(this.#ctx.tag(`ima:${node}`)));
    return s === null ? undefined : decodeImaRecord(s);
  }

  async set(node: string, record: ImaCheckpointRecord): Promise<void> {
    checkImaNodeKey(node);
    const json = encodeImaRecord(record);
    await this.#ctx.op(() => this.#ctx.client.set(this.#ctx.tag(`ima:${node}`), json, 'PX', this.#ttlMs));
  }

  async delete(node: string): Promise<void> {
    checkImaNodeKey(node);
    await this.#ctx.op(() => this.#ctx.client.del(this.#ctx.tag(`ima:${node}`)));
  }
}
