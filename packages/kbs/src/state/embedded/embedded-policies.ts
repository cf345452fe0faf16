import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '@keyhold/atomic-file';
import {
  createMemoryPolicyStore,
  parsePolicyStoreSnapshot,
  policyKey,
  type MemoryPolicyStore,
  type PolicyDocument,
  type PolicyPutOptions,
  type PolicyRef,
  type PolicyStore,
  type PolicyStoreSnapshot,
  type StoredPolicy,
} from '@keyhold/policy';
import { openFilePolicyStore } from '../../policy/file-policy-store.js';
import { StateError } from '../errors.js';

/**
 * The policies of the embedded state: the KBS's file policy store (`policies.json`), or a memory
 * store, behind a thin wrapper that can also import policies with their versions (migration).
 */
export class EmbeddedPolicies implements PolicyStore {
  #inner: PolicyStore;
  readonly #file: string | undefined;
  #memory: MemoryPolicyStore | undefined;

  private constructor(inner: PolicyStore, file: string | undefined, memory: MemoryPolicyStore | undefined) {
    this.#inner = inner;
    this.#file = file;
    this.#memory = memory;
  }

  static async open(file: string | undefined): Promise<EmbeddedPolicies> {
    if (file === undefined) {
      const m = createMemoryPolicyStore();
      return new EmbeddedPolicies(m, undefined, m);
    }
    return new EmbeddedPolicies(await openFilePolicyStore({ dataDir: path.dirname(file), fileName: path.basename(file) }), file, undefined);
  }

  get(ref: PolicyRef): Promise<StoredPolicy | undefined> {
    return this.#inner.get(ref);
  }

  put(ref: PolicyRef, document: PolicyDocument, options?: PolicyPutOptions): Promise<StoredPolicy> {
    return this.#inner.put(ref, document, options);
  }

  delete(ref: PolicyRef): Promise<boolean> {
    return this.#inner.delete(ref);
  }

  list(): Promise<readonly StoredPolicy[]> {
    return this.#inner.list();
  }

  /** The slot's recent versions, newest first (the inner store's bounded history). */
  async history(ref: PolicyRef, limit?: number): Promise<readonly StoredPolicy[]> {
    if (this.#inner.history !== undefined) return this.#inner.history(ref, limit);
    const current = await this.#inner.get(ref);
    return current === undefined ? [] : [current];
  }

  /** Add policies with their versions; occupied slots are skipped. No other writer may run meanwhile. */
  async importPolicies(policies: readonly StoredPolicy[]): Promise<{ imported: number; skipped: number }> {
    const current = await this.#currentSnapshot();
    const slots = new Map(current.policies.map((p) => [policyKey(p.ref), p]));
    const lastVersions: Record<string, number> = { ...current.lastVersions };
    let imported = 0;
    let skipped = 0;
    for (const p of policies) {
      const key = policyKey(p.ref);
      if (slots.has(key)) {
        skipped++;
        continue;
      }
      slots.set(key, p);
      lastVersions[key] = Math.max(lastVersions[key] ?? 0, p.version);
      imported++;
    }
    if (imported === 0) return { imported, skipped };
    // Validate the whole result as the store would read it back.
    const next = parsePolicyStoreSnapshot({ format: 1, policies: [...slots.values()], lastVersions });
    if (this.#file === undefined) {
      this.#memory = createMemoryPolicyStore({ snapshot: next });
      this.#inner = this.#memory;
    } else {
      try {
        await writeFileAtomic(this.#file, JSON.stringify(next, null, 2));
      } catch (cause) {
        throw new StateError('STATE_UNAVAILABLE', 'policy store file cannot be written', { cause });
      }
      this.#inner = await openFilePolicyStore({ dataDir: path.dirname(this.#file), fileName: path.basename(this.#file) });
    }
    return { imported, skipped };
  }

  async #currentSnapshot(): Promise<PolicyStoreSnapshot> {
    if (this.#memory !== undefined) return this.#memory.snapshot();
    try {
      return parsePolicyStoreSnapshot(JSON.parse(await readFile(this.#file as string, 'utf8')));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { format: 1, policies: [], lastVersions: {} };
      throw err;
    }
  }
}
