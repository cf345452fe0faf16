import type { ImaEntry } from './parse.js';
import type { CompiledRuntimePolicy } from './runtime-policy.js';

export interface ImaFailure {
  readonly index: number;
  /** The file or buffer name the entry measured. */
  readonly path: string;
  readonly reason: 'not-in-policy' | 'digest-mismatch' | 'violation' | 'keyring-not-in-policy' | 'ima-buf-not-in-policy';
}

export interface ImaAppraisal {
  readonly ok: boolean;
  /** Failures in log order; the first names the first failing file. */
  readonly failures: readonly ImaFailure[];
  readonly appraised: number;
}

export interface AppraiseImaOptions {
  /** Appraise only entries with `index >= fromIndex` (those after the last verified checkpoint). */
  readonly fromIndex?: number;
  /** Accept ToMToU / open-writers violations. Default false (Keylime's default is to accept them). */
  readonly allowViolations?: boolean;
  /** Stop after this many failures; default 100. */
  readonly maxFailures?: number;
}

/**
 * Appraises IMA entries against a Keylime runtime policy, as Keylime does: a name matching an
 * exclude (anchored at its start) is skipped; otherwise its digest must be listed for that exact
 * name. ima-buf entries whose name is an ignored keyring are skipped, keyrings named in `keyrings`
 * are checked there, others in `ima-buf`. Entries must come from `verifyImaAgainstQuote`; the
 * template hash was already checked by `parseImaLog`. Signatures (ima-sig) are not verified.
 */
export function appraiseIma(entries: readonly ImaEntry[], policy: CompiledRuntimePolicy, options: AppraiseImaOptions = {}): ImaAppraisal {
  const fromIndex = options.fromIndex ?? 0;
  const maxFailures = options.maxFailures ?? 100;
  const failures: ImaFailure[] = [];
  const ignoredKeyrings = new Set(policy.policy.ima.ignored_keyrings);
  const ignoreAllKeyrings = ignoredKeyrings.has('*');
  let appraised = 0;
  for (const e of entries) {
    if (e.index < fromIndex) continue;
    if (failures.length >= maxFailures) break;
    appraised++;
    if (e.violation) {
      // SECURITY: a violation means a file changed while measured (ToMToU) or was open for write; its content is unknown (ima_main.c).
      if (options.allowViolations !== true) failures.push({ index: e.index, path: e.path, reason: 'violation' });
      continue;
    }
    const digest = e.digestHex;
    if (e.templateName === 'ima-buf') {
      if (ignoreAllKeyrings || ignoredKeyrings.has(e.path)) continue;
      const keyring = policy.keyrings.get(e.path);
      if (keyring !== undefined) {
        // SECURITY: a key loaded into a keyring must be listed, or an attacker key could sign files (Keylime keyrings).
        if (!keyring.has(digest)) failures.push({ index: e.index, path: e.path, reason: 'keyring-not-in-policy' });
        continue;
      }
      const allowed = policy.imaBuf.get(e.path);
      // SECURITY: a measured buffer (key, dm table, kexec cmdline) must be listed (Keylime ima-buf).
      if (allowed === undefined || !allowed.has(digest)) failures.push({ index: e.index, path: e.path, reason: 'ima-buf-not-in-policy' });
      continue;
    }
    if (policy.exclude !== undefined && policy.exclude.test(e.path)) continue;
    const allowed = policy.digests.get(e.path);
    // SECURITY: a file absent from the policy, or with another digest, is unapproved code or data (Keylime runtime policy).
    if (allowed === undefined) failures.push({ index: e.index, path: e.path, reason: 'not-in-policy' });
    else if (!allowed.has(digest)) failures.push({ index: e.index, path: e.path, reason: 'digest-mismatch' });
  }
  return { ok: failures.length === 0, failures, appraised };
}
