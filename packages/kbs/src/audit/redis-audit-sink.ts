import {
  AUDIT_KINDS,
  MAX_AUDIT_LINE_CHARS,
  checkAuditFields,
  MAX_AUDIT_LOG_CHARS,
  decodeUnverifiedAuditRecord,
  filterAuditRecords,
  formatAuditLine,
  nextAuditRecord,
  parseAuditLog,
  verifyParsedAuditLog,
  type AuditFields,
  type AuditKind,
  type AuditRecord,
  type ParsedAuditLog,
} from '@keyhold/audit';
import type { Cluster, Redis } from 'ioredis';
import type { AuditLog } from './audit-log.js';
import { AuditError } from './errors.js';
import type { AuditSink } from './sink.js';
import { checkRedisStoreOptions, withRedisDeadline } from '../storage/redis-operation.js';

/**
 * Compare-and-append. KEYS[1] list of record lines, KEYS[2] head `<seq> <hash>` ('' when empty).
 * ARGV[1] the head the caller chained onto, ARGV[2] the new head, ARGV[3..] the lines.
 * Returns {1, newHead} when appended, {0, currentHead} when another writer got there first.
 */
const APPEND_LUA = `
local head = redis.call('GET', KEYS[2]) or ''
if head == '' and redis.call('LLEN', KEYS[1]) > 0 then
  return redis.error_reply('KHCORRUPT audit head is missing')
end
if head ~= ARGV[1] then
  return {0, head}
end
redis.call('RPUSH', KEYS[1], unpack(ARGV, 3))
redis.call('SET', KEYS[2], ARGV[2])
return {1, ARGV[2]}
`;

interface ScriptCommands {
  khAuditAppend(log: string, head: string, expected: string, next: string, ...lines: string[]): Promise<[number, string]>;
}
type Client = (Redis | Cluster) & ScriptCommands;

export interface RedisAuditSinkOptions {
  /** Key namespace (default `kh`): keys are `{<prefix>:audit}:log` and `{<prefix>:audit}:head`, one hash slot. */
  readonly keyPrefix?: string;
  /** Bound on one sink operation end to end (default 1500 ms); beyond it, AUDIT_SINK_FAILED. */
  readonly operationTimeoutMs?: number;
}

const HEAD = /^([1-9][0-9]{0,15}) ([0-9a-f]{64})$/;
/** Conflicting appends by other KBS processes tolerated per append before giving up. */
const MAX_APPEND_ATTEMPTS = 64;
const READ_CHUNK = 5000;
/** Most lines one group commit sends (each at most MAX_AUDIT_LINE_CHARS): bounds one script call. */
const MAX_GROUP_LINES = 256;

interface AuditEvent {
  readonly kind: AuditKind;
  readonly fields: AuditFields;
  readonly time: Date;
}

/** One caller's events, stored together and in order, and how to tell the caller. */
interface PendingAppend {
  readonly events: readonly AuditEvent[];
  resolve(records: AuditRecord[]): void;
  reject(err: unknown): void;
}

/**
 * The audit trail in Redis (standalone or Cluster), shared by every KBS process using it. The log
 * is a list of JSON lines (the file format) plus a head key naming the newest record's seq and
 * hash, both under one hash tag. Every append runs a Lua script that appends only if the head is
 * still the one the records were chained onto; otherwise the records are re-chained onto the
 * current head (same kind, fields and time; new seq, prevHash and hash) and tried again, so any
 * number of processes produce one valid chain. Appends of one sink run one at a time, in call order,
 * and group-commit: the appends that arrive while one is in flight go together in the next script
 * call (one round trip for the whole group, at most MAX_GROUP_LINES lines), so the trail costs far
 * less than a round trip per record under load and adds nothing when idle. Each caller resolves
 * with its own records once the group is stored. Failures (Redis down, timeout) are
 * AUDIT_SINK_FAILED for every caller of the group; nothing is appended partially.
 */
export class RedisAuditSink implements AuditSink {
  readonly #client: Client;
  readonly #logKey: string;
  readonly #headKey: string;
  readonly #opTimeoutMs: number;
  /** The head as last seen in Redis; undefined until read. */
  #head: { seq: number; hash: string } | null | undefined;
  #pending: PendingAppend[] = [];
  #committing = false;

  constructor(client: Redis | Cluster, options: RedisAuditSinkOptions = {}) {
    const { prefix, timeoutMs: ms } = checkRedisStoreOptions('redis audit sink', options);
    client.defineCommand('khAuditAppend', { numberOfKeys: 2, lua: APPEND_LUA });
    this.#client = client as Client;
    this.#logKey = `{${prefix}:audit}:log`;
    this.#headKey = `{${prefix}:audit}:head`;
    this.#opTimeoutMs = ms;
  }

  async append(records: readonly AuditRecord[]): Promise<void> {
    if (records.length === 0) return;
    await this.#enqueue(records.map((r) => ({ kind: r.kind, fields: r.fields, time: new Date(r.time) })));
  }

  /** Append one new record chained onto the shared head; resolves with the record as stored. */
  async appendEvent(kind: AuditKind, fields: AuditFields, time: Date): Promise<AuditRecord> {
    const [r] = await this.#enqueue([{ kind, fields, time }]);
    return r as AuditRecord;
  }

  /** The newest record's seq and hash as last seen by this sink. */
  head(): { readonly seq: number; readonly hash: string } | undefined {
    return this.#head ?? undefined;
  }

  read(): Promise<ParsedAuditLog> {
    return this.#op(async () => {
      const n = await this.#client.llen(this.#logKey);
      // SECURITY: bound what is read from the backend before fetching it (resource exhaustion).
      if (n > MAX_AUDIT_LOG_CHARS / 100) throw new AuditError('AUDIT_SINK_FAILED', 'audit log too large to read at once');
      const parts: string[] = [];
      let chars = 0;
      for (let start = 0; start < n; start += READ_CHUNK) {
        for (const line of await this.#client.lrange(this.#logKey, start, Math.min(n, start + READ_CHUNK) - 1)) {
          chars += line.length + 1;
          if (chars > MAX_AUDIT_LOG_CHARS) throw new AuditError('AUDIT_SINK_FAILED', 'audit log too large to read at once');
          parts.push(line);
        }
      }
      return parseAuditLog(parts.map((l) => `${l.replace(/\n/g, ' ')}\n`).join(''));
    });
  }

  last(): Promise<AuditRecord | undefined> {
    return this.#op(async () => {
      const line = await this.#client.lindex(this.#logKey, -1);
      if (line === null) {
        this.#head = null;
        return undefined;
      }
      const r = decodeLine(line);
      this.#head = { seq: r.seq, hash: r.hash };
      return r;
    });
  }

  /** The client belongs to the caller, who closes it. */
  async close(): Promise<void> {}

  async #commit(events: readonly AuditEvent[]): Promise<AuditRecord[]> {
    for (let attempt = 0; attempt < MAX_APPEND_ATTEMPTS; attempt++) {
      if (this.#head === undefined) await this.last();
      const from = this.#head ?? undefined;
      const out: AuditRecord[] = [];
      let prev: { seq: number; hash: string } | undefined = from;
      for (const e of events) {
        const r = nextAuditRecord(prev, e.kind, e.fields, e.time);
        out.push(r);
        prev = r;
      }
      const lines = out.map((r) => formatAuditLine(r).slice(0, -1));
      const expected = from === undefined ? '' : `${from.seq} ${from.hash}`;
      const next = `${prev!.seq} ${prev!.hash}`;
      const [ok, head] = await this.#op(() => this.#client.khAuditAppend(this.#logKey, this.#headKey, expected, next, ...lines));
      if (ok === 1) {
        this.#head = { seq: prev!.seq, hash: prev!.hash };
        return out;
      }
      this.#head = parseHead(head);
    }
    throw new AuditError('AUDIT_SINK_FAILED', 'audit append lost the race to other writers too many times');
  }

  /** Queue one caller's events; they go in the next group commit, in call order. */
  #enqueue(events: readonly AuditEvent[]): Promise<AuditRecord[]> {
    // A caller's own programmer error (an unknown kind, a field outside the allow-list) fails that
    // caller alone, here, and never the group it would have joined.
    for (const e of events) {
      if (!AUDIT_KINDS.includes(e.kind)) return Promise.reject(new TypeError(`audit kind ${String(e.kind)} is not known`));
      try {
        checkAuditFields(e.fields);
      } catch (err) {
        return Promise.reject(err);
      }
    }
    return new Promise<AuditRecord[]>((resolve, reject) => {
      this.#pending.push({ events, resolve, reject });
      if (!this.#committing) void this.#drain();
    });
  }

  /** Commit queued appends, a group at a time (whole callers only), until the queue is empty. */
  async #drain(): Promise<void> {
    this.#committing = true;
    try {
      while (this.#pending.length > 0) {
        let take = 0;
        let lines = 0;
        // At least one caller per group (an import's batch may be larger than the bound by itself).
        while (take < this.#pending.length && (take === 0 || lines + this.#pending[take]!.events.length <= MAX_GROUP_LINES)) lines += this.#pending[take++]!.events.length;
        const group = this.#pending.splice(0, take);
        try {
          const records = await this.#commit(group.flatMap((g) => g.events));
          let at = 0;
          for (const g of group) {
            g.resolve(records.slice(at, at + g.events.length));
            at += g.events.length;
          }
        } catch (err) {
          for (const g of group) g.reject(err);
        }
      }
    } finally {
      this.#committing = false;
    }
  }

  #op<T>(fn: () => Promise<T>): Promise<T> {
    return withRedisDeadline(this.#opTimeoutMs, fn, (cause) => {
      if (cause instanceof AuditError) return cause;
      if (/^KHCORRUPT/.test((cause as Error | undefined)?.message ?? '')) return new AuditError('AUDIT_LOG_CORRUPT', 'audit head is missing in redis', { cause });
      return new AuditError('AUDIT_SINK_FAILED', 'redis audit trail is unavailable', { cause });
    });
  }

}

function decodeLine(line: string): AuditRecord {
  // SECURITY: backend-supplied data is bounded and shape-checked before use (tampered store).
  if (line.length > MAX_AUDIT_LINE_CHARS) throw new AuditError('AUDIT_LOG_CORRUPT', 'the last audit record is over-long');
  try {
    return decodeUnverifiedAuditRecord(JSON.parse(line));
  } catch (cause) {
    throw new AuditError('AUDIT_LOG_CORRUPT', 'the last audit record cannot be read', { cause });
  }
}

function parseHead(head: string): { seq: number; hash: string } | null {
  if (head === '') return null;
  const m = HEAD.exec(head);
  // SECURITY: the head key comes from the backend; a malformed one is corruption, not a chain start.
  if (m === null) throw new AuditError('AUDIT_LOG_CORRUPT', 'audit head in redis is malformed');
  return { seq: Number(m[1]), hash: m[2]! };
}

/**
 * An AuditLog over a RedisAuditSink. Unlike the file-backed log, the chain is built at the shared
 * head in Redis (not in process), so several KBS processes can record into one trail, and a failed
 * append does not latch: the Lua compare-and-append means a later append can never fork or skip
 * the chain, so recording resumes once Redis is back (each failed record fails its request).
 */
export async function createRedisAuditLog(options: { readonly sink: RedisAuditSink; readonly now?: () => Date }): Promise<AuditLog> {
  const { sink } = options;
  const now = options.now ?? (() => new Date());
  try {
    await sink.last();
  } catch (err) {
    // Redis down at start: the head is read again on the first record, so the KBS can start.
    if (!(err instanceof AuditError) || err.code !== 'AUDIT_SINK_FAILED') throw err;
  }
  return {
    record: (kind, fields) => sink.appendEvent(kind, fields, now()),
    async query(q = {}) {
      return filterAuditRecords((await sink.read()).records, q);
    },
    async verify() {
      return verifyParsedAuditLog(await sink.read());
    },
    head: () => sink.head(),
  };
}
