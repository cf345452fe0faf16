import { isValidResourceSegment } from '@keyhold/protocol';
import { PolicyError } from './errors.js';
import { parsePolicyDocument, type PolicyDocument } from './document.js';

/** Which slot a policy occupies: an attestation policy by id, or the global / a repository's resource policy. */
export type PolicyRef = { readonly kind: 'attestation'; readonly id: string } | { readonly kind: 'resource'; readonly repository?: string };

export interface StoredPolicy {
  readonly ref: PolicyRef;
  /** 1 for the first put of a slot, +1 on each put; never reused, even after a delete. */
  readonly version: number;
  readonly updatedAt: string;
  readonly updatedBy?: string;
  readonly document: PolicyDocument;
}

export interface PolicyPutOptions {
  /** Refuse the put (POLICY_VERSION_CONFLICT) unless the slot's current version is this (0: empty). */
  readonly expectedVersion?: number;
  /** Who stored it (admin identity name), kept for the audit trail and listings. */
  readonly updatedBy?: string;
}

/**
 * Storage of policy documents. Implementations store documents as given (compilation happens in
 * the engine before `put`) and assign versions. The KBS has a file-backed one; others (Redis) can
 * follow behind this interface.
 */
export interface PolicyStore {
  get(ref: PolicyRef): Promise<StoredPolicy | undefined>;
  put(ref: PolicyRef, document: PolicyDocument, options?: PolicyPutOptions): Promise<StoredPolicy>;
  delete(ref: PolicyRef): Promise<boolean>;
  list(): Promise<readonly StoredPolicy[]>;
  /**
   * The slot's most recent versions, newest first (at most the store's history limit, and at most
   * `limit` when given), including versions of a policy since deleted. Optional: a store without it
   * offers no history (callers fall back to the current version).
   */
  history?(ref: PolicyRef, limit?: number): Promise<readonly StoredPolicy[]>;
}

/** Versions kept per slot by the stores' history (bounded, oldest dropped first). */
export const POLICY_HISTORY_LIMIT = 20;

/** A whole store's content, as the file store persists it. */
export interface PolicyStoreSnapshot {
  readonly format: 1;
  readonly policies: readonly StoredPolicy[];
  /** Last version used per slot key, so versions are never reused after a delete. */
  readonly lastVersions: Readonly<Record<string, number>>;
  /**
   * Recent versions per slot key, newest first (bounded by POLICY_HISTORY_LIMIT). Optional, so
   * snapshots written before history existed still load (their history starts at the current version).
   */
  readonly history?: Readonly<Record<string, readonly StoredPolicy[]>>;
}

export interface MemoryPolicyStore extends PolicyStore {
  history(ref: PolicyRef, limit?: number): Promise<readonly StoredPolicy[]>;
  snapshot(): PolicyStoreSnapshot;
}

/** The slot key: `attestation/<id>`, `resource/global` or `resource/repository/<repo>`. */
export function policyKey(ref: PolicyRef): string {
  if (ref.kind === 'attestation') return `attestation/${ref.id}`;
  return ref.repository === undefined ? 'resource/global' : `resource/repository/${ref.repository}`;
}

function checkRef(ref: PolicyRef, document?: PolicyDocument): void {
  if (ref.kind === 'resource' && ref.repository !== undefined && !isValidResourceSegment(ref.repository)) {
    throw new PolicyError('POLICY_INVALID_DOCUMENT', 'repository must match ^[A-Za-z0-9_-][A-Za-z0-9_.-]*$');
  }
  if (document === undefined) return;
  // SECURITY: a document can only fill a slot of its own kind (an attestation rule must never be
  // run as a release decision, or the reverse).
  if (document.kind !== ref.kind) throw new PolicyError('POLICY_INVALID_DOCUMENT', `a ${document.kind} policy cannot be stored as a ${ref.kind} policy`);
  if (ref.kind === 'attestation' && document.id !== ref.id) throw new PolicyError('POLICY_INVALID_DOCUMENT', 'attestation policy id does not match its slot');
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Validate a persisted snapshot (e.g. read back from disk); throws POLICY_STORE_FAILED. */
export function parsePolicyStoreSnapshot(value: unknown): PolicyStoreSnapshot {
  const bad = (why: string, cause?: unknown): PolicyError => new PolicyError('POLICY_STORE_FAILED', `policy store content is corrupt: ${why}`, { cause });
  if (!isRecord(value) || value.format !== 1 || !Array.isArray(value.policies) || !isRecord(value.lastVersions)) throw bad('not a format 1 snapshot');
  const lastVersions: Record<string, number> = {};
  for (const [k, v] of Object.entries(value.lastVersions)) {
    if (!Number.isSafeInteger(v) || (v as number) < 1) throw bad('bad version counter');
    lastVersions[k] = v as number;
  }
  const entry = (p: unknown): StoredPolicy => {
    if (!isRecord(p) || !isRecord(p.ref) || !Number.isSafeInteger(p.version) || typeof p.updatedAt !== 'string') throw bad('bad policy entry');
    const ref: PolicyRef =
      p.ref.kind === 'attestation' && typeof p.ref.id === 'string'
        ? { kind: 'attestation', id: p.ref.id }
        : p.ref.kind === 'resource' && (p.ref.repository === undefined || typeof p.ref.repository === 'string')
          ? p.ref.repository === undefined
            ? { kind: 'resource' }
            : { kind: 'resource', repository: p.ref.repository }
          : (() => {
              throw bad('bad policy ref');
            })();
    let document: PolicyDocument;
    try {
      document = parsePolicyDocument(p.document);
      checkRef(ref, document);
    } catch (cause) {
      throw bad('bad policy document', cause);
    }
    const updatedBy = typeof p.updatedBy === 'string' ? { updatedBy: p.updatedBy } : {};
    return { ref, version: p.version as number, updatedAt: p.updatedAt, ...updatedBy, document };
  };
  const policies = value.policies.map(entry);
  if (value.history === undefined) return { format: 1, policies, lastVersions };
  if (!isRecord(value.history)) throw bad('bad history');
  const history: Record<string, StoredPolicy[]> = {};
  for (const [k, list] of Object.entries(value.history)) {
    // SECURITY: bounded per slot, and every entry must belong to the slot it is filed under, so a
    // tampered file cannot pass one slot's policy off as another's past version.
    if (!Array.isArray(list) || list.length > POLICY_HISTORY_LIMIT) throw bad('bad history list');
    history[k] = list.map((p: unknown) => {
      const e = entry(p);
      if (policyKey(e.ref) !== k) throw bad('history entry does not belong to its slot');
      return e;
    });
  }
  return { format: 1, policies, lastVersions, history };
}

/** An in-memory PolicyStore (tests, single-process deployments, and the file store's working copy). */
export function createMemoryPolicyStore(options: { snapshot?: PolicyStoreSnapshot; now?: () => Date; historyLimit?: number } = {}): MemoryPolicyStore {
  const now = options.now ?? (() => new Date());
  const historyLimit = options.historyLimit ?? POLICY_HISTORY_LIMIT;
  if (!Number.isSafeInteger(historyLimit) || historyLimit < 1 || historyLimit > POLICY_HISTORY_LIMIT) throw new TypeError(`historyLimit must be 1..${POLICY_HISTORY_LIMIT}`);
  const policies = new Map<string, StoredPolicy>();
  const lastVersions = new Map<string, number>();
  const history = new Map<string, StoredPolicy[]>();
  for (const p of options.snapshot?.policies ?? []) policies.set(policyKey(p.ref), p);
  for (const [k, v] of Object.entries(options.snapshot?.lastVersions ?? {})) lastVersions.set(k, v);
  for (const [k, p] of policies) lastVersions.set(k, Math.max(lastVersions.get(k) ?? 0, p.version));
  for (const [k, list] of Object.entries(options.snapshot?.history ?? {})) history.set(k, [...list].sort((a, b) => b.version - a.version).slice(0, historyLimit));
  // A snapshot from before history was kept: each slot's history starts at its current version.
  for (const [k, p] of policies) if (!history.get(k)?.some((h) => h.version === p.version)) history.set(k, [p, ...(history.get(k) ?? [])].slice(0, historyLimit));

  return {
    async get(ref) {
      checkRef(ref);
      return policies.get(policyKey(ref));
    },
    async put(ref, document, opts = {}) {
      checkRef(ref, document);
      const key = policyKey(ref);
      const current = policies.get(key)?.version ?? 0;
      // SECURITY: optimistic concurrency, so two admins editing one policy cannot silently
      // overwrite each other's change (lost update).
      if (opts.expectedVersion !== undefined && opts.expectedVersion !== current) {
        throw new PolicyError('POLICY_VERSION_CONFLICT', `policy ${key} is at version ${current}, not ${opts.expectedVersion}`);
      }
      const version = (lastVersions.get(key) ?? 0) + 1;
      const stored: StoredPolicy = {
        ref,
        version,
        updatedAt: now().toISOString(),
        ...(opts.updatedBy === undefined ? {} : { updatedBy: opts.updatedBy }),
        document,
      };
      policies.set(key, stored);
      lastVersions.set(key, version);
      history.set(key, [stored, ...(history.get(key) ?? [])].slice(0, historyLimit));
      return stored;
    },
    async delete(ref) {
      checkRef(ref);
      return policies.delete(policyKey(ref));
    },
    async list() {
      return [...policies.values()].sort((a, b) => policyKey(a.ref).localeCompare(policyKey(b.ref)));
    },
    async history(ref, limit) {
      checkRef(ref);
      return (history.get(policyKey(ref)) ?? []).slice(0, limit ?? historyLimit);
    },
    snapshot() {
      return { format: 1, policies: [...policies.values()], lastVersions: Object.fromEntries(lastVersions), history: Object.fromEntries([...history].map(([k, v]) => [k, [...v]])) };
    },
  };
}
