import { parseResourcePath } from '@keyhold/protocol';
import { PolicyError } from './errors.js';
import { compileAttestationPolicy, compileResourcePolicy, type CompiledAttestationPolicy, type CompiledResourcePolicy } from './compile.js';
import { DEFAULT_ATTESTATION_POLICY, DEFAULT_RESOURCE_POLICY } from './defaults.js';
import { resolvePolicyLimits, type PolicyLimits } from './limits.js';
import { evaluateAttestationPolicy, type AttestationAppraisal, type AttestationPolicyInput } from './evaluate-attestation.js';
import { evaluateResourcePolicy, type ResourceDecision, type ResourcePolicyInput } from './evaluate-resource.js';
import { policyKey, type PolicyPutOptions, type PolicyRef, type PolicyStore, type StoredPolicy } from './store.js';

/** Which resource policy decided: the repository's own, the global one, or the built-in default. */
export type ResourcePolicyScope = 'repository' | 'global' | 'default';

export interface ScopedResourceDecision extends ResourceDecision {
  readonly scope: ResourcePolicyScope;
}

export interface PolicyEngine {
  /** Compile and type-check, then store (version +1). Throws PolicyCompileError before storing anything. */
  putAttestationPolicy(document: unknown, options?: PolicyPutOptions): Promise<StoredPolicy>;
  /** Compile, then store as the global resource policy, or `repository`'s when given. */
  putResourcePolicy(document: unknown, options?: PolicyPutOptions & { readonly repository?: string }): Promise<StoredPolicy>;
  deletePolicy(ref: PolicyRef): Promise<boolean>;
  listPolicies(): Promise<readonly StoredPolicy[]>;
  /** A slot's recent versions, newest first (the store's history; just the current version when the store keeps none). */
  policyHistory(ref: PolicyRef, limit?: number): Promise<readonly StoredPolicy[]>;
  /** The stored attestation policy `id`, or the built-in default (version 0) for id `default`. */
  attestationPolicy(id: string): Promise<CompiledAttestationPolicy>;
  /** The resource policy for `repository`: its own, else the global one, else the built-in default. */
  resourcePolicy(repository: string): Promise<{ readonly policy: CompiledResourcePolicy; readonly scope: ResourcePolicyScope }>;
  /** Appraise verified claims with attestation policy `policyId` (default `default`). */
  appraise(input: AttestationPolicyInput & { readonly policyId?: string }): Promise<AttestationAppraisal>;
  /** Decide one release with the repository-scoped policy, else the global one, else the default. */
  decideRelease(input: ResourcePolicyInput): Promise<ScopedResourceDecision>;
}

export interface PolicyEngineOptions {
  readonly store: PolicyStore;
  /** Replaces the built-in default attestation policy (id must be `default`). */
  readonly defaultAttestationPolicy?: unknown;
  /** Replaces the built-in default resource policy (affirming). */
  readonly defaultResourcePolicy?: unknown;
  /** Cost limits for every policy (static at upload, budget at evaluation); defaults DEFAULT_POLICY_LIMITS. */
  readonly limits?: Partial<PolicyLimits>;
}

/**
 * Policies behind a store, compiled once per version. Scoping guarantee: a release under
 * `<repo>/...` is decided by `<repo>`'s policy when one is stored and never by another
 * repository's, so two owners' scoped policies cannot affect each other's releases.
 */
export function createPolicyEngine(options: PolicyEngineOptions): PolicyEngine {
  const { store } = options;
  const limits = resolvePolicyLimits(options.limits);
  const defaultAttestation = compileAttestationPolicy(options.defaultAttestationPolicy ?? DEFAULT_ATTESTATION_POLICY, { limits });
  if (defaultAttestation.id !== 'default') throw new TypeError('the default attestation policy must have id "default"');
  const defaultResource = compileResourcePolicy(options.defaultResourcePolicy ?? DEFAULT_RESOURCE_POLICY, { limits });
  const cache = new Map<string, CompiledAttestationPolicy | CompiledResourcePolicy>();

  function compiled<K extends 'attestation' | 'resource'>(stored: StoredPolicy, kind: K): K extends 'attestation' ? CompiledAttestationPolicy : CompiledResourcePolicy {
    const key = policyKey(stored.ref);
    let c = cache.get(key);
    if (c === undefined || c.version !== stored.version) {
      try {
        c = kind === 'attestation' ? compileAttestationPolicy(stored.document, { version: stored.version, limits }) : compileResourcePolicy(stored.document, { version: stored.version, limits });
      } catch (cause) {
        throw new PolicyError('POLICY_STORE_FAILED', `stored policy ${key} v${stored.version} no longer compiles`, { cause });
      }
      cache.set(key, c);
    }
    return c as K extends 'attestation' ? CompiledAttestationPolicy : CompiledResourcePolicy;
  }

  async function attestationPolicy(id: string): Promise<CompiledAttestationPolicy> {
    const stored = await store.get({ kind: 'attestation', id });
    if (stored !== undefined) return compiled(stored, 'attestation');
    if (id === 'default') return defaultAttestation;
    throw new PolicyError('POLICY_NOT_FOUND', `no attestation policy with id ${id}`);
  }

  async function resourcePolicy(repository: string): Promise<{ policy: CompiledResourcePolicy; scope: ResourcePolicyScope }> {
    const own = await store.get({ kind: 'resource', repository });
    if (own !== undefined) return { policy: compiled(own, 'resource'), scope: 'repository' };
    const global = await store.get({ kind: 'resource' });
    if (global !== undefined) return { policy: compiled(global, 'resource'), scope: 'global' };
    return { policy: defaultResource, scope: 'default' };
  }

  return {
    async putAttestationPolicy(document, opts) {
      const c = compileAttestationPolicy(document, { limits });
      return store.put({ kind: 'attestation', id: c.id }, c.document, opts);
    },
    async putResourcePolicy(document, opts = {}) {
      const c = compileResourcePolicy(document, { limits });
      const { repository, ...putOptions } = opts;
      return store.put(repository === undefined ? { kind: 'resource' } : { kind: 'resource', repository }, c.document, putOptions);
    },
    async deletePolicy(ref) {
      return store.delete(ref);
    },
    async listPolicies() {
      return store.list();
    },
    async policyHistory(ref, limit) {
      if (store.history !== undefined) return store.history(ref, limit);
      const current = await store.get(ref);
      return current === undefined ? [] : [current];
    },
    attestationPolicy,
    resourcePolicy,
    async appraise(input) {
      const { policyId = 'default', ...rest } = input;
      return evaluateAttestationPolicy(await attestationPolicy(policyId), rest);
    },
    async decideRelease(input) {
      const { repository } = parseResourcePath(input.resourcePath);
      const { policy, scope } = await resourcePolicy(repository);
      return { ...evaluateResourcePolicy(policy, input), scope };
    },
  };
}
