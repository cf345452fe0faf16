import { PolicyError } from './errors.js';

/** The AR4SI trustworthiness-vector components an attestation policy may set (draft-ietf-rats-ar4si). */
export const TRUSTWORTHINESS_COMPONENTS = [
  'instance-identity',
  'configuration',
  'executables',
  'file-system',
  'hardware',
  'runtime-opaque',
  'storage-opaque',
  'sourced-data',
] as const;
export type TrustworthinessComponent = (typeof TRUSTWORTHINESS_COMPONENTS)[number];

/** EAR `ear.status` values (draft-fv-rats-ear), weakest first is not implied. */
export const EAR_STATUSES = ['affirming', 'warning', 'contraindicated', 'none'] as const;
export type EarStatus = (typeof EAR_STATUSES)[number];

export type PolicyKind = 'attestation' | 'resource';

/**
 * An attestation policy: CEL rules computing the trustworthiness vector from the verifier's claims
 * and the reference values, then `ear.status` (the status rule also sees the computed `vector`).
 * A component without a rule is 0 ("no claim").
 */
export interface AttestationPolicyDocument {
  readonly id: string;
  readonly type: 'cel';
  readonly kind: 'attestation';
  readonly description?: string;
  readonly rules: {
    readonly status: string;
    readonly vector?: Readonly<Partial<Record<TrustworthinessComponent, string>>>;
  };
}

/** A resource policy: one CEL boolean rule deciding each release. */
export interface ResourcePolicyDocument {
  readonly id: string;
  readonly type: 'cel';
  readonly kind: 'resource';
  readonly description?: string;
  readonly rule: string;
}

export type PolicyDocument = AttestationPolicyDocument | ResourcePolicyDocument;

// Limits on what an uploader can make us parse and keep.
export const MAX_POLICY_DOCUMENT_CHARS = 256 * 1024;
export const MAX_RULE_CHARS = 16 * 1024;
const MAX_DESCRIPTION_CHARS = 1024;
const POLICY_ID = /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$/;

function invalid(message: string): PolicyError {
  return new PolicyError('POLICY_INVALID_DOCUMENT', message);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function onlyKeys(o: Record<string, unknown>, allowed: readonly string[], where: string): void {
  for (const k of Object.keys(o)) {
    // SECURITY: unknown keys are refused so a misspelt rule (e.g. "rulez") cannot silently leave
    // the permissive default in force (fail closed on policy typos).
    if (!allowed.includes(k)) throw invalid(`${where}: unknown key "${k.slice(0, 64)}"`);
  }
}

function ruleSource(v: unknown, where: string): string {
  if (typeof v !== 'string') throw invalid(`${where} must be a CEL expression string`);
  // SECURITY: bounds the parser's work and the stored size (resource exhaustion by an uploader).
  if (v.length === 0 || v.length > MAX_RULE_CHARS) throw invalid(`${where} must be 1..${MAX_RULE_CHARS} characters`);
  return v;
}

/**
 * Check the shape of a policy document (JSON text or an already-parsed value). This checks
 * structure, id syntax and sizes only; `compileAttestationPolicy` / `compileResourcePolicy` parse
 * and type-check the CEL. A `version` field is accepted and ignored: stores assign versions.
 */
export function parsePolicyDocument(input: unknown): PolicyDocument {
  let value = input;
  if (typeof input === 'string') {
    // SECURITY: length checked before JSON.parse allocates (resource exhaustion).
    if (input.length > MAX_POLICY_DOCUMENT_CHARS) throw invalid(`policy document exceeds ${MAX_POLICY_DOCUMENT_CHARS} characters`);
    try {
      value = JSON.parse(input);
    } catch (cause) {
      throw new PolicyError('POLICY_INVALID_DOCUMENT', 'policy document is not valid JSON', { cause });
    }
  }
  if (!isRecord(value)) throw invalid('policy document must be a JSON object');
  const { id, type, kind, description, version } = value;
  if (typeof id !== 'string' || !POLICY_ID.test(id)) throw invalid('id must match ^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$');
  // SECURITY: only CEL is evaluated here; a Rego (or other) policy must not be mistaken for one.
  if (type !== 'cel') throw invalid('type must be "cel"');
  if (description !== undefined && (typeof description !== 'string' || description.length > MAX_DESCRIPTION_CHARS)) {
    throw invalid(`description must be a string of at most ${MAX_DESCRIPTION_CHARS} characters`);
  }
  if (version !== undefined && !(Number.isSafeInteger(version) && (version as number) >= 0)) throw invalid('version must be a non-negative integer');
  const desc = description === undefined ? {} : { description };
  if (kind === 'resource') {
    onlyKeys(value, ['id', 'type', 'kind', 'description', 'version', 'rule'], 'resource policy');
    return { id, type, kind, ...desc, rule: ruleSource(value.rule, 'rule') };
  }
  if (kind === 'attestation') {
    onlyKeys(value, ['id', 'type', 'kind', 'description', 'version', 'rules'], 'attestation policy');
    const rules = value.rules;
    if (!isRecord(rules)) throw invalid('rules must be an object');
    onlyKeys(rules, ['status', 'vector'], 'rules');
    const status = ruleSource(rules.status, 'rules.status');
    if (rules.vector === undefined) return { id, type, kind, ...desc, rules: { status } };
    if (!isRecord(rules.vector)) throw invalid('rules.vector must be an object');
    onlyKeys(rules.vector, TRUSTWORTHINESS_COMPONENTS, 'rules.vector');
    const vector: Partial<Record<TrustworthinessComponent, string>> = {};
    for (const c of TRUSTWORTHINESS_COMPONENTS) {
      const src = rules.vector[c];
      if (src !== undefined) vector[c] = ruleSource(src, `rules.vector.${c}`);
    }
    return { id, type, kind, ...desc, rules: { status, vector } };
  }
  throw invalid('kind must be "attestation" or "resource"');
}
