/**
 * What the KBS logs when a backend fails (issue 15: "the KBS logs the cause of storage failures —
 * address, error code — not only STORAGE_UNAVAILABLE"): which store, where it is (a URL without
 * credentials, cluster nodes, a directory), and the chain of causes by name, code, errno fields
 * (syscall, address, port, path) and a short message. Never credentials: URLs lose their userinfo and
 * query, and nothing here reads request data.
 */
import type { KbsConfig } from '../config.js';

/** Where each store lives, for log lines (credential-free). */
export interface StorageEndpoints {
  /** The state backend (sessions, nodes, reference values, audit, policies). */
  readonly state: string;
  /** The secret store (KMS adapter). */
  readonly secrets: string;
}

export interface StorageCause {
  readonly name: string;
  readonly code?: string;
  readonly message?: string;
  readonly syscall?: string;
  readonly address?: string;
  readonly port?: number;
  readonly path?: string;
}

export interface StorageFailure {
  /** `secrets` for KMS codes, `state` otherwise. */
  readonly store: 'state' | 'secrets';
  readonly endpoint: string | undefined;
  readonly causes: readonly StorageCause[];
}

const MAX_CAUSES = 6;
const MAX_MESSAGE_CHARS = 160;

/** A URL fit for a log: scheme, host, port and path only (no user, password or query). */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname === '/' ? '' : u.pathname}`;
  } catch {
    return '(unparsable URL)';
  }
}

/** The configured endpoints, described once at start. */
export function storageEndpointsOf(config: KbsConfig): StorageEndpoints {
  const redis = config.state.redis;
  const state =
    config.state.backend === 'redis' && redis !== undefined
      ? redis.url !== undefined
        ? redactUrl(redis.url)
        : `redis cluster ${(redis.clusterNodes ?? []).map((n) => `${n.host}:${n.port}`).join(',')}`
      : `embedded ${config.dataDir}`;
  const s = config.storage;
  const secrets =
    s.backend === 'embedded'
      ? `embedded ${s.dir ?? `${config.dataDir}/secrets`}`
      : s.backend === 'redis'
        ? s.url !== undefined
          ? redactUrl(s.url)
          : `redis cluster ${(s.cluster_nodes ?? []).join(',')}`
        : `vault ${redactUrl(s.address)}`;
  return { state, secrets };
}

function clean(text: string): string {
  const t = text.replace(/[\u0000-\u001f\u007f]+/g, ' ');
  return t.length > MAX_MESSAGE_CHARS ? `${t.slice(0, MAX_MESSAGE_CHARS)}…` : t;
}

/** The cause chain of a backend failure (the error itself first), with the fields that locate it. */
export function storageCauses(err: unknown): StorageCause[] {
  const out: StorageCause[] = [];
  const seen = new Set<unknown>();
  let cur: unknown = err;
  while (cur !== undefined && cur !== null && out.length < MAX_CAUSES && !seen.has(cur)) {
    seen.add(cur);
    if (typeof cur !== 'object') {
      out.push({ name: typeof cur });
      break;
    }
    const e = cur as { name?: unknown; code?: unknown; message?: unknown; syscall?: unknown; address?: unknown; port?: unknown; path?: unknown; cause?: unknown };
    out.push({
      name: typeof e.name === 'string' ? e.name.slice(0, 64) : 'Error',
      ...(typeof e.code === 'string' || typeof e.code === 'number' ? { code: String(e.code).slice(0, 64) } : {}),
      ...(typeof e.message === 'string' && e.message !== '' ? { message: clean(e.message) } : {}),
      ...(typeof e.syscall === 'string' ? { syscall: e.syscall.slice(0, 32) } : {}),
      ...(typeof e.address === 'string' ? { address: e.address.slice(0, 128) } : {}),
      ...(typeof e.port === 'number' ? { port: e.port } : {}),
      ...(typeof e.path === 'string' ? { path: e.path.slice(0, 512) } : {}),
    });
    // AggregateError (e.g. a connection tried on IPv4 and IPv6): the first inner error locates it.
    const inner = (cur as { errors?: unknown }).errors;
    cur = e.cause ?? (Array.isArray(inner) ? inner[0] : undefined);
  }
  return out;
}

/** The facts of one failure: which store (by the error codes in its chain), where, and why. */
export function describeStorageFailure(err: unknown, endpoints: StorageEndpoints | undefined): StorageFailure {
  const causes = storageCauses(err);
  const store = causes.some((c) => c.code?.startsWith('KMS_') === true) ? 'secrets' : 'state';
  return { store, endpoint: endpoints?.[store], causes };
}
