import { checkNodeCa, decodeStoredNodeCa } from '../node-ca-record.js';
import type { NodeCaState, StoredNodeCa } from '../ports.js';
import type { RedisContext } from './redis-connection.js';

/** KEYS ca; ARGV json. Stores json unless a CA is stored; returns the stored JSON. */
const CREATE = `
local cur = redis.call('GET', KEYS[1])
if cur then return cur end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
`;

interface Commands {
  khNodeCaCreate(key: string, json: string): Promise<string>;
}

/**
 * The generated node CA shared by every replica: one key `{P:nodeca}` (JSON: certificate and the
 * wrapped private key), written once by the first replica that needs it (create-if-absent in one
 * script: two replicas starting at once end up with the same CA).
 */
export class RedisNodeCa implements NodeCaState {
  readonly #ctx: RedisContext;
  readonly #client: Commands;
  readonly #key: string;

  constructor(ctx: RedisContext) {
    this.#ctx = ctx;
    ctx.client.defineCommand('khNodeCaCreate', { numberOfKeys: 1, lua: CREATE });
    this.#client = ctx.client as unknown as Commands;
    this.#key = ctx.tag('nodeca');
  }

  async get(): Promise<StoredNodeCa | undefined> {
    const s = await this.#ctx.op(() => this.#ctx.client.get(this.#key));
    return s === null ? undefined : decodeStoredNodeCa(s);
  }

  async createIfAbsent(ca: StoredNodeCa): Promise<StoredNodeCa> {
    const json = checkNodeCa(ca);
    return decodeStoredNodeCa(await this.#ctx.op(() => this.#client.khNodeCaCreate(this.#key, json)));
  }
}
