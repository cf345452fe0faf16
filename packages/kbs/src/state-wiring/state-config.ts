/**
 * The `[state]` section (issue 10), parsed once by config.ts:
 *   [state] backend = "embedded" (default: memory + the data dir, one process, the dir is locked)
 *                   | "redis" (standalone or Cluster, shared by any number of KBS replicas)
 *   url | cluster_nodes, key_prefix, username, password_file, tls_ca_file, command_timeout_ms,
 *   operation_timeout_ms: the Redis connection. Without url / cluster_nodes the `[storage]` Redis is
 *   used (its settings, each overridable here), so one Redis holds secrets and state.
 *   max_session_bytes (top level): bytes open sessions may hold before `/auth` answers 429.
 * Superseded: `[audit] backend = "storage"` / `[policy] backend = "storage"` (audit trail and policies
 * in the `[storage]` Redis). With `[state] backend = "redis"` they live in Redis anyway; without a
 * `[state]` section either key now selects `[state] backend = "redis"` over the `[storage]` Redis.
 */
import { z } from 'zod';

const HOST_PORT = /^.+:\d{1,5}$/;

export const STATE_CONFIG_FIELDS = {
  state: z
    .object({
      backend: z.enum(['embedded', 'redis']).optional(),
      url: z.string().regex(/^rediss?:\/\//, 'url must start with redis:// or rediss://').optional(),
      cluster_nodes: z.array(z.string().regex(HOST_PORT)).min(1).optional(),
      key_prefix: z.string().regex(/^[A-Za-z0-9_.-]{1,32}$/, 'key_prefix must match ^[A-Za-z0-9_.-]{1,32}$').optional(),
      username: z.string().optional(),
      password_file: z.string().optional(),
      tls_ca_file: z.string().optional(),
      command_timeout_ms: z.number().int().positive().optional(),
      operation_timeout_ms: z.number().int().min(1).max(600_000).optional(),
    })
    .strict()
    .refine((s) => s.url === undefined || s.cluster_nodes === undefined, 'give at most one of url or cluster_nodes')
    .optional(),
  max_session_bytes: z.number().int().positive().optional(),
};

/** The Redis the state lives in (or would, for `migrate-state`). Secrets are read from files at open. */
export interface StateRedisConfig {
  readonly url: string | undefined;
  readonly clusterNodes: readonly { readonly host: string; readonly port: number }[] | undefined;
  readonly keyPrefix: string | undefined;
  readonly username: string | undefined;
  readonly passwordFile: string | undefined;
  readonly tlsCaFile: string | undefined;
  readonly commandTimeoutMs: number | undefined;
  readonly operationTimeoutMs: number | undefined;
}

export interface StateConfig {
  readonly backend: 'embedded' | 'redis';
  /** The Redis connection: set for `backend = "redis"`, and whenever one is configured (migration target). */
  readonly redis: StateRedisConfig | undefined;
  readonly maxSessionBytes: number;
  /** Things to log at start (superseded keys). */
  readonly notices: readonly string[];
}

/** Default cap on the bytes open sessions hold (a session with a hardware identity is a few KiB). */
export const DEFAULT_MAX_SESSION_BYTES = 256 * 1024 * 1024;

/** The `[storage]` fields the state may reuse (already validated by config.ts). */
interface StorageFields {
  readonly backend: string;
  readonly url?: string | undefined;
  readonly cluster_nodes?: readonly string[] | undefined;
  readonly key_prefix?: string | undefined;
  readonly username?: string | undefined;
  readonly password_file?: string | undefined;
  readonly tls_ca_file?: string | undefined;
  readonly command_timeout_ms?: number | undefined;
  readonly operation_timeout_ms?: number | undefined;
}

type StateFields = z.infer<(typeof STATE_CONFIG_FIELDS)['state']>;

interface FileFields {
  readonly state?: StateFields;
  readonly max_session_bytes?: number | undefined;
  readonly storage?: StorageFields | undefined;
  readonly audit?: { readonly backend?: 'file' | 'storage' | undefined; readonly enabled?: boolean | undefined } | undefined;
  readonly policy?: { readonly backend?: 'file' | 'storage' | undefined } | undefined;
}

function hostPort(n: string): { host: string; port: number } {
  const i = n.lastIndexOf(':');
  return { host: n.slice(0, i).replace(/^\[(.*)\]$/, '$1'), port: Number(n.slice(i + 1)) };
}

/** Resolve `[state]` against `[storage]`; throws Error with an operator-readable message. */
export function stateConfigFrom(file: FileFields, rel: (p: string | undefined) => string | undefined): StateConfig {
  const s = file.state;
  const storageRedis = file.storage?.backend === 'redis' ? file.storage : undefined;
  const legacy = file.audit?.backend === 'storage' || file.policy?.backend === 'storage';
  const notices: string[] = [];
  let backend = s?.backend;
  if (legacy) {
    if (backend === 'embedded') {
      throw new Error('[audit] / [policy] backend = "storage" keep the audit trail and policies in Redis, which [state] backend = "embedded" contradicts: use [state] backend = "redis"');
    }
    if (storageRedis === undefined && s?.url === undefined && s?.cluster_nodes === undefined) {
      throw new Error('[audit] / [policy] backend = "storage" needs [storage] backend = "redis"');
    }
    if (backend === undefined) {
      backend = 'redis';
      notices.push('[audit] / [policy] backend = "storage" is superseded by [state] backend = "redis" (now in effect: sessions, nodes, reference values, rate limits, audit trail and policies all live in Redis)');
    }
  }
  const own = s?.url !== undefined || s?.cluster_nodes !== undefined;
  const port = (p: { host: string; port: number }): { host: string; port: number } => {
    if (!(p.port >= 1 && p.port <= 65535)) throw new Error(`cluster node port ${p.port} is out of range`);
    return p;
  };
  let redis: StateRedisConfig | undefined;
  if (own || storageRedis !== undefined) {
    const base = own ? undefined : storageRedis;
    redis = {
      url: own ? s?.url : base?.url,
      clusterNodes: (own ? s?.cluster_nodes : base?.cluster_nodes)?.map((n) => port(hostPort(n))),
      keyPrefix: s?.key_prefix ?? base?.key_prefix,
      username: s?.username ?? base?.username,
      passwordFile: rel(s?.password_file ?? base?.password_file),
      tlsCaFile: rel(s?.tls_ca_file ?? base?.tls_ca_file),
      commandTimeoutMs: s?.command_timeout_ms ?? base?.command_timeout_ms,
      operationTimeoutMs: s?.operation_timeout_ms ?? base?.operation_timeout_ms,
    };
  }
  const resolved = backend ?? 'embedded';
  if (resolved === 'redis' && redis === undefined) {
    throw new Error('[state] backend = "redis" needs a Redis: give [state] url or cluster_nodes, or use [storage] backend = "redis"');
  }
  return { backend: resolved, redis, maxSessionBytes: file.max_session_bytes ?? DEFAULT_MAX_SESSION_BYTES, notices };
}
