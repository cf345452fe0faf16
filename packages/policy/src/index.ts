export { DEFAULT_POLICY_LIMITS, resolvePolicyLimits, type PolicyLimits } from './limits.js';
export { PolicyError, PolicyCompileError, type PolicyErrorCode, type PolicyCompileIssue } from './errors.js';
export {
  TRUSTWORTHINESS_COMPONENTS,
  EAR_STATUSES,
  MAX_POLICY_DOCUMENT_CHARS,
  MAX_RULE_CHARS,
  parsePolicyDocument,
  type TrustworthinessComponent,
  type EarStatus,
  type PolicyKind,
  type PolicyDocument,
  type AttestationPolicyDocument,
  type ResourcePolicyDocument,
} from './document.js';
export {
  ATTESTATION_VARIABLES,
  RESOURCE_VARIABLES,
  compileAttestationPolicy,
  compileResourcePolicy,
  compilePolicy,
  type CompilePolicyOptions,
  type CompiledAttestationPolicy,
  type CompiledResourcePolicy,
  type CompiledPolicy,
} from './compile.js';
export {
  evaluateAttestationPolicy,
  type AttestationPolicyInput,
  type AttestationAppraisal,
  type TrustworthinessVector,
} from './evaluate-attestation.js';
export { evaluateResourcePolicy, resourcePolicyBindings, type ResourcePolicyInput, type ResourceDecision } from './evaluate-resource.js';
export {
  DEFAULT_ATTESTATION_POLICY,
  DEFAULT_RESOURCE_POLICY,
  AFFIRMING_RESOURCE_POLICY,
  ALLOW_ALL_RESOURCE_POLICY,
  DENY_ALL_RESOURCE_POLICY,
} from './defaults.js';
export {
  createMemoryPolicyStore,
  parsePolicyStoreSnapshot,
  policyKey,
  POLICY_HISTORY_LIMIT,
  type PolicyRef,
  type PolicyStore,
  type MemoryPolicyStore,
  type StoredPolicy,
  type PolicyPutOptions,
  type PolicyStoreSnapshot,
} from './store.js';
export { createPolicyEngine, type PolicyEngine, type PolicyEngineOptions, type ResourcePolicyScope, type ScopedResourceDecision } from './engine.js';
