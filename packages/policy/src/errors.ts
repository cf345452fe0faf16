/** Stable codes for policy failures; the KBS maps them to HTTP in its one error table. */
export type PolicyErrorCode =
  /** The policy document is not a well-formed Keyhold CEL policy (shape, type, sizes). */
  | 'POLICY_INVALID_DOCUMENT'
  /** A CEL rule failed to parse or type-check; `issues` says where and why. */
  | 'POLICY_COMPILE_FAILED'
  /** An attestation rule failed at evaluation time or produced a value of the wrong type. */
  | 'POLICY_EVALUATION_FAILED'
  /** The evaluation input (claims, token) is too large, too deep or not JSON-like. */
  | 'POLICY_INPUT_INVALID'
  /** No policy is stored under the requested id. */
  | 'POLICY_NOT_FOUND'
  /** `put` was given an `expectedVersion` that is not the stored one (a concurrent update). */
  | 'POLICY_VERSION_CONFLICT'
  /** The policy store could not be read or written, or its content is corrupt. */
  | 'POLICY_STORE_FAILED';

export class PolicyError extends Error {
  override readonly name: string = 'PolicyError';
  readonly code: PolicyErrorCode;
  constructor(code: PolicyErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** Where and why one CEL rule of a policy was refused. Lines and columns count from 1. */
export interface PolicyCompileIssue {
  /** The rule's name in the document: `rule`, `status` or `vector.<component>`. */
  readonly rule: string;
  readonly line: number;
  readonly column: number;
  /** 0-based character offset into the rule's source. */
  readonly offset: number;
  readonly message: string;
}

/** A policy refused at upload: every issue found, each with its position. */
export class PolicyCompileError extends PolicyError {
  override readonly name = 'PolicyCompileError';
  readonly issues: readonly PolicyCompileIssue[];
  constructor(issues: readonly PolicyCompileIssue[], options?: { cause?: unknown }) {
    const first = issues[0];
    const where = first === undefined ? '' : `${first.rule} ${first.line}:${first.column}: ${first.message}`;
    super('POLICY_COMPILE_FAILED', `policy does not compile: ${where}${issues.length > 1 ? ` (and ${issues.length - 1} more)` : ''}`, options);
    this.issues = issues;
  }
}
