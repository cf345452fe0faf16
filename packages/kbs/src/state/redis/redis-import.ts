/**
 * Migration writes on the layouts of the existing Redis audit sink and policy store
 * (audit/redis-audit-sink.ts, policy/redis-policy-store.ts): records and policies exactly as given.
 */
import { formatAuditLine, type AuditRecord } from '@keyhold/audit';
import { parsePolicyStoreSnapshot, policyKey, type StoredPolicy } from '@keyhold/policy';
import type { RedisAuditSink } from '../../audit/redis-audit-sink.js';
import type { RedisContext } from './redis-connection.js';

/** KEYS log head; ARGV expectedHead newHead lines... Appends only onto the expected head. */
const AUDIT_RAW_APPEND = `
local head = redis.call('GET', KEYS[2]) or ''
if head ~= ARGV[1] then return 0 end
if head == '' and redis.call('LLEN', KEYS[1]) > 0 then return 0 end
redis.call('RPUSH', KEYS[1], unpack(ARGV, 3))
redis.call('SET', KEYS[2], ARGV[2])
return 1
`;

/** KEYS doc ver; ARGV slot version body. Stores only into an empty slot; keeps the version counter ahead. */
const POLICY_IMPORT = `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
local last = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0') or 0
local v = tonumber(ARGV[2])
if v > last then redis.call('HSET', KEYS[2], ARGV[1], v) end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '\\n' .. ARGV[3])
return 1
`;

interface Commands {
  khAuditRawAppend(log: string, head: string, expected: string, next: string, ...lines: string[]): Promise<number>;
  khPolicyImport(doc: string, ver: string, slot: string, version: number, body: string): Promise<number>;
}

const CHUNK = 500;

export class RedisImporter {
  readonly #ctx: RedisContext;
  readonly #client: Commands;
  readonly #sink: RedisAuditSink;

  constructor(ctx: RedisContext, sink: RedisAuditSink) {
    this.#ctx = ctx;
    ctx.client.defineCommand('khAuditRawAppend', { numberOfKeys: 2, lua: AUDIT_RAW_APPEND });
    ctx.client.defineCommand('khPolicyImport', { numberOfKeys: 2, lua: POLICY_IMPORT });
    this.#client = ctx.client as unknown as Commands;
    this.#sink = sink;
  }

  async importAudit(records: readonly AuditRecord[]): Promise<{ appended: number; rechained: boolean }> {
    if (records.length === 0) return { appended: 0, rechained: false };
    const log = `${this.#ctx.tag('audit')}:log`;
    const headKey = `${this.#ctx.tag('audit')}:head`;
    if ((await this.#sink.last()) !== undefined) {
      // A trail exists: the sink re-chains the records onto its head (same kind, fields and time).
      for (let i = 0; i < records.length; i += CHUNK) await this.#sink.append(records.slice(i, i + CHUNK));
      return { appended: records.length, rechained: true };
    }
    let expected = '';
    for (let i = 0; i < records.length; i += CHUNK) {
      const chunk = records.slice(i, i + CHUNK);
      const last = chunk[chunk.length - 1]!;
      const next = `${last.seq} ${last.hash}`;
      const lines = chunk.map((r) => formatAuditLine(r).slice(0, -1));
      const ok = await this.#ctx.op(() => this.#client.khAuditRawAppend(log, headKey, expected, next, ...lines));
      if (ok !== 1) throw new Error('copyState: the target audit trail changed during the copy');
      expected = next;
    }
    await this.#sink.last();
    return { appended: records.length, rechained: false };
  }

  async importPolicies(policies: readonly StoredPolicy[]): Promise<{ imported: number; skipped: number }> {
    // Validate as the store would read them back.
    parsePolicyStoreSnapshot({ format: 1, policies, lastVersions: {} });
    const doc = `${this.#ctx.tag('policies')}:doc`;
    const ver = `${this.#ctx.tag('policies')}:ver`;
    let imported = 0;
    let skipped = 0;
    for (const p of policies) {
      const { version, ...body } = p;
      const ok = await this.#ctx.op(() => this.#client.khPolicyImport(doc, ver, policyKey(p.ref), version, JSON.stringify(body)));
      if (ok === 1) imported++;
      else skipped++;
    }
    return { imported, skipped };
  }
}
