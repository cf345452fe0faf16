import { createHash, type Hash } from 'node:crypto';
import {
  appraiseIma,
  EventLogError,
  isEventLogBank,
  parseImaLog,
  parseRuntimePolicy,
  verifyImaAgainstQuote,
  type CompiledRuntimePolicy,
  type EventLogBank,
  type ImaFailure,
  type RuntimePolicy,
  type VerifiedImaLog,
} from '@keyhold/verifier';
import { KbsError } from '../../errors.js';
import { AR4SI, type TrustworthinessVector } from '../../token/ear-claims.js';
import type { ImaCheckpointState, ReferenceSnapshot } from '../../state/ports.js';
import type { ImaCheckpointRecord } from './ima-checkpoint-store.js';
import type { TpmExtension, TpmExtensionInput, TpmExtensionResult } from './tpm-extension.js';

/** Reference value holding the Keylime runtime policy (JSON); several values are merged (union). */
export const RUNTIME_POLICY_REFERENCE = 'tpm_runtime_policy';
/** Evidence member carrying the IMA log: the text of `ascii_runtime_measurements`. */
export const IMA_LOG_FIELD = 'ima_log';
/** Default bound on the IMA log text (UTF-16 code units, at most its UTF-8 size). */
export const MAX_IMA_LOG_CHARS = 64 * 1024 * 1024;
const IMA_PCR = 10;
const MAX_REPORTED_FAILURES = 5;
const MAX_PATH_IN_REASON = 200;

export interface ImaExtensionOptions {
  readonly checkpoints: ImaCheckpointState;
  /** Refuse evidence without an IMA log (`[tpm] require_ima_log`). */
  readonly requireImaLog: boolean;
  /** Accept replay against a SHA-1 quote (`[tpm] allow_sha1_event_log`). */
  readonly allowSha1: boolean;
  /** Accept ToMToU / open-writers violations (`[tpm] allow_ima_violations`). */
  readonly allowViolations: boolean;
  readonly maxImaLogChars?: number;
}

interface Policy {
  readonly compiled: CompiledRuntimePolicy;
  /** SHA-256 of the stored values: a checkpoint made under another policy is not reused. */
  readonly key: string;
}

/** Replay and appraisal outcome before it becomes claims. */
interface Verified {
  readonly log: VerifiedImaLog;
  /** Index of the first entry not covered by the checkpoint that was resumed from (0: full). */
  readonly fromIndex: number;
  /** Characters of `text` covering `log.checkpoint.nextIndex` entries, when they end at a newline. */
  readonly coveredChars: number | undefined;
  /** When resumed: the SHA-256 state over the first `hashedChars` characters, to extend rather than rehash. */
  readonly prefixHash?: { readonly hash: Hash; readonly hashedChars: number };
}

/**
 * IMA for `tpm` evidence. When the evidence carries `ima_log`, it is parsed (template hashes
 * checked), replayed into PCR10 of the quoted bank and must reach the quote-verified PCR10 value
 * (the covered prefix only is used); then, when the owner stored `tpm_runtime_policy`, the covered
 * entries are appraised against it, setting `executables` and `file-system`, with a reason naming
 * the first failing file. Incremental: after a clean appraisal the node's checkpoint (replay state,
 * a hash of the log text it covers, the policy hash and the TPM reset count) is kept; the next
 * attestation parses and appraises only entries after it, and only when the new log begins with
 * that exact text, the policy and the reset count are unchanged — otherwise from the start.
 * It does not verify ima-sig signatures nor compare boot_aggregate with PCRs 0-9.
 */
export class ImaExtension implements TpmExtension {
  readonly name = 'ima';
  readonly #opts: ImaExtensionOptions;
  readonly #maxChars: number;
  readonly #policyCache = new WeakMap<readonly string[], Policy | KbsError>();

  constructor(opts: ImaExtensionOptions) {
    const max = opts.maxImaLogChars ?? MAX_IMA_LOG_CHARS;
    if (!Number.isSafeInteger(max) || max <= 0) throw new TypeError('maxImaLogChars must be a positive integer');
    this.#opts = opts;
    this.#maxChars = max;
  }

  async appraise(input: TpmExtensionInput): Promise<TpmExtensionResult> {
    const text = input.evidence[IMA_LOG_FIELD];
    const policy = this.#policy(input.references);
    if (text === undefined || text === null) {
      // SECURITY: a node that withholds its IMA log cannot be appraised; when required it is refused (log suppression).
      if (this.#opts.requireImaLog) throw new KbsError('ATTESTATION_FAILED', `evidence has no ${IMA_LOG_FIELD} (required by [tpm] require_ima_log)`);
      if (policy === undefined) return {};
      // SECURITY: a runtime policy without a log to check it against must not pass (fail closed).
      const reason = `IMA: no ${IMA_LOG_FIELD} was sent but ${RUNTIME_POLICY_REFERENCE} is set`;
      return { vector: { executables: AR4SI.UNSAFE }, claims: { ima: { ok: false, appraised: false, failures: [], reason } } };
    }
    // SECURITY: a non-string field is malformed evidence, not "no log" (type confusion).
    if (typeof text !== 'string') throw new KbsError('ATTESTATION_FAILED', `${IMA_LOG_FIELD} must be a string`);
    // SECURITY: bounded before parsing so a huge log cannot exhaust memory or time (denial of service).
    if (text.length > this.#maxChars) throw new KbsError('ATTESTATION_FAILED', `${IMA_LOG_FIELD} exceeds ${this.#maxChars} characters`);

    const quote = input.verified.quote;
    const bank = quote.pcrBank;
    const pcr10 = quote.pcrs.get(IMA_PCR);
    // SECURITY: the IMA log is only evidence against a quoted PCR10 of a replayable bank (TCG IMA; Keylime).
    if (!isEventLogBank(bank) || pcr10 === undefined) throw new KbsError('ATTESTATION_FAILED', `${IMA_LOG_FIELD}: PCR ${IMA_PCR} of a replayable bank was not quoted`);
    const node = createHash('sha256').update(Buffer.from(input.verified.claims.ak_public, 'base64')).digest('hex');
    const resetCount = quote.clockInfo.resetCount;
    const quoted = { bank, value: pcr10 };

    const resumed = policy === undefined ? undefined : await this.#resume(node, text, quoted, policy.key, resetCount);
    const v = resumed ?? this.#verifyFull(text, quoted);
    const summary = { entries: v.log.checkpoint.nextIndex, from_index: v.fromIndex, next_index: v.log.checkpoint.nextIndex, incremental: resumed !== undefined };
    if (policy === undefined) return { claims: { ima: { ok: true, appraised: false, ...summary, failures: [] } } };

    const result = appraiseIma(v.log.entries, policy.compiled, { allowViolations: this.#opts.allowViolations, fromIndex: v.fromIndex });
    const vector: Partial<TrustworthinessVector> = { executables: AR4SI.APPROVED, 'file-system': AR4SI.APPROVED };
    for (const f of result.failures) vector[vectorKey(f)] = AR4SI.UNSAFE;
    if (result.ok && v.coveredChars !== undefined && v.log.checkpoint.nextIndex > v.fromIndex) {
      // Only a clean appraisal moves the checkpoint: a failing entry is appraised again next time.
      await this.#opts.checkpoints.set(node, {
        policyKey: policy.key,
        resetCount,
        checkpoint: v.log.checkpoint,
        prefixChars: v.coveredChars,
        prefixSha256: v.prefixHash !== undefined ? v.prefixHash.hash.update(text.slice(v.prefixHash.hashedChars, v.coveredChars), 'utf8').digest('hex') : sha256Text(text.slice(0, v.coveredChars)),
      });
    }
    const first = result.failures[0];
    return {
      vector,
      claims: {
        ima: {
          ok: result.ok,
          appraised: true,
          ...summary,
          appraised_entries: result.appraised,
          failures: result.failures.slice(0, MAX_REPORTED_FAILURES).map((f) => ({ index: f.index, path: printablePath(f.path), reason: f.reason })),
          ...(first !== undefined ? { reason: `IMA: entry ${first.index} (${printablePath(first.path)}): ${first.reason}` } : {}),
        },
      },
    };
  }

  /** Parse and replay the whole log; any failure refuses the attestation. */
  #verifyFull(text: string, quoted: { bank: EventLogBank; value: Uint8Array }): Verified {
    try {
      const entries = parseImaLog(text);
      const log = verifyImaAgainstQuote(entries, quoted, { allowSha1: this.#opts.allowSha1, pcr: IMA_PCR });
      return { log, fromIndex: 0, coveredChars: charsAfterLines(text, 0, log.checkpoint.nextIndex) };
    } catch (err) {
      if (err instanceof EventLogError) throw new KbsError('ATTESTATION_FAILED', `${IMA_LOG_FIELD}: ${err.code}: ${err.message}`, { cause: err });
      throw err;
    }
  }

  /** Resume from the node's checkpoint when the log provably extends it; undefined otherwise. */
  async #resume(node: string, text: string, quoted: { bank: EventLogBank; value: Uint8Array }, policyKey: string, resetCount: number): Promise<Verified | undefined> {
    const rec: ImaCheckpointRecord | undefined = await this.#opts.checkpoints.get(node);
    if (rec === undefined) return undefined;
    // SECURITY: a checkpoint is reused only for the same policy, TPM boot, bank and byte-identical prefix; otherwise the whole log is appraised (skipped appraisal).
    if (rec.policyKey !== policyKey || rec.resetCount !== resetCount || rec.checkpoint.bank !== quoted.bank) return undefined;
    if (text.length < rec.prefixChars || text.charCodeAt(rec.prefixChars - 1) !== 0x0a) return undefined;
    // One pass over the prefix: the same hash state is extended for the next checkpoint.
    const hash = createHash('sha256').update(text.slice(0, rec.prefixChars), 'utf8');
    if (hash.copy().digest('hex') !== rec.prefixSha256) return undefined;
    const tail = text.slice(rec.prefixChars);
    try {
      const entries = parseImaLog(tail, { firstIndex: rec.checkpoint.nextIndex });
      const log = verifyImaAgainstQuote(entries, quoted, { allowSha1: this.#opts.allowSha1, pcr: IMA_PCR, checkpoint: rec.checkpoint });
      const more = charsAfterLines(tail, 0, log.checkpoint.nextIndex - rec.checkpoint.nextIndex);
      return { log, fromIndex: rec.checkpoint.nextIndex, coveredChars: more === undefined ? undefined : rec.prefixChars + more, prefixHash: { hash, hashedChars: rec.prefixChars } };
    } catch (err) {
      // The tail does not continue the checkpoint: verify from the start, which decides.
      if (err instanceof EventLogError) return undefined;
      throw err;
    }
  }

  #policy(references: ReferenceSnapshot): Policy | undefined {
    const values = references.get(RUNTIME_POLICY_REFERENCE);
    if (values === undefined) return undefined;
    let cached = this.#policyCache.get(values);
    if (cached === undefined) {
      cached = compilePolicy(values);
      this.#policyCache.set(values, cached);
    }
    if (cached instanceof KbsError) throw cached;
    return cached;
  }
}

/** Parse each stored value as a Keylime runtime policy and merge them (lists per path united). */
function compilePolicy(values: readonly string[]): Policy | KbsError {
  const key = createHash('sha256').update(JSON.stringify(values)).digest('hex');
  // SECURITY: an empty list would appraise against nothing; refuse instead (fail closed).
  if (values.length === 0) return new KbsError('ATTESTATION_FAILED', `reference value ${RUNTIME_POLICY_REFERENCE} is empty`);
  try {
    const parts: RuntimePolicy[] = [];
    for (const v of values) {
      let json: unknown;
      try {
        json = JSON.parse(v);
      } catch {
        return new KbsError('ATTESTATION_FAILED', `reference value ${RUNTIME_POLICY_REFERENCE} is not JSON`);
      }
      // SECURITY: an invalid policy refuses every attestation rather than appraising against part of it (fail closed).
      parts.push(parseRuntimePolicy(json).policy);
    }
    if (parts.length === 1) return { compiled: parseRuntimePolicy(parts[0]), key };
    return { compiled: parseRuntimePolicy(mergePolicies(parts)), key };
  } catch (err) {
    if (err instanceof EventLogError) return new KbsError('ATTESTATION_FAILED', `reference value ${RUNTIME_POLICY_REFERENCE}: ${err.message}`, { cause: err });
    throw err;
  }
}

function mergePolicies(parts: readonly RuntimePolicy[]): RuntimePolicy {
  const first = parts[0] as RuntimePolicy;
  const union = (pick: (p: RuntimePolicy) => Readonly<Record<string, readonly string[]>>): Record<string, string[]> => {
    const out: Record<string, string[]> = {};
    for (const p of parts) {
      for (const [k, list] of Object.entries(pick(p))) out[k] = [...new Set([...(out[k] ?? []), ...list])];
    }
    return out;
  };
  return {
    ...first,
    digests: union((p) => p.digests),
    excludes: [...new Set(parts.flatMap((p) => p.excludes))],
    keyrings: union((p) => p.keyrings),
    ima: { ...first.ima, ignored_keyrings: [...new Set(parts.flatMap((p) => p.ima.ignored_keyrings))] },
    'ima-buf': union((p) => p['ima-buf']),
  };
}

/** The vector claim a failing entry bears on. */
function vectorKey(f: ImaFailure): 'executables' | 'file-system' | 'configuration' {
  if (f.reason === 'violation') return 'file-system';
  if (f.reason === 'keyring-not-in-policy' || f.reason === 'ima-buf-not-in-policy') return 'configuration';
  return 'executables';
}

/**
 * Characters of `text` from `start` through the newline ending the `n`th non-empty line (the lines
 * `parseImaLog` reads as entries); undefined when that line has no newline (possibly cut short).
 */
export function charsAfterLines(text: string, start: number, n: number): number | undefined {
  let pos = start;
  let seen = 0;
  while (seen < n) {
    const nl = text.indexOf('\n', pos);
    if (nl === -1) return undefined;
    if (nl > pos) seen++;
    pos = nl + 1;
  }
  return pos - start;
}

function sha256Text(s: string): string {
  return createHash('sha256').update(s, 'utf8').digest('hex');
}

/** A file name fit for a log line and an error detail: no control characters, bounded length. */
function printablePath(p: string): string {
  const clean = p.replace(/[\u0000-\u001f\u007f]/g, '?');
  return clean.length > MAX_PATH_IN_REASON ? `${clean.slice(0, MAX_PATH_IN_REASON)}…` : clean;
}
