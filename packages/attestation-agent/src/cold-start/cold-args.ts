/**
 * The command lines the cold fast path of `get-resource` takes (cold-get-resource.ts): exactly
 * `get-resource RESOURCE` (or `--path RESOURCE`), the shared agent flags by their long names
 * (agent-options.ts: `--url U` or `--url=U`, `--no-ek-identity`, `--json`, ...) and `--raw` or
 * `--base64`, each at most once. Anything else — `-o`, `--resource-socket`, `--help`, a short flag,
 * a flag before the command word, a repeated flag, `--X` with `--no-X`, an empty value or one
 * starting with `-`, `--` — is undefined, and the full CLI (commander) parses the line instead,
 * with its own messages for what it refuses.
 */
import { AGENT_OPTIONS, type CommonValues } from '../agent-options.js';
import type { SecretEncoding } from '../resource-socket/print-secret.js';

export interface ColdArgs {
  /** The shared flags, keyed by long name as the full CLI's `commonValues` reports them. */
  readonly values: CommonValues;
  /** The resource as written (positional or `--path`): `kbs:///R/T/TAG[?version=N]`, `R/T/TAG`, `/R/T/TAG`. */
  readonly resource: string;
  readonly encoding: SecretEncoding;
  /** `--json`: errors as one JSON line, as the full CLI prints them. */
  readonly json: boolean;
}

/** Long flag name → whether it takes a value (`--url <url>`), from the shared table. */
const FLAGS: ReadonlyMap<string, boolean> = new Map(
  AGENT_OPTIONS.map((o) => {
    const m = /--([a-z0-9-]+)( <)?/.exec(o.flags);
    return [m?.[1] ?? '', m?.[2] !== undefined] as const;
  }),
);

/** The arguments after `keyhold-agent` when they are a form the cold fast path takes; undefined otherwise. */
export function coldArgs(args: readonly string[]): ColdArgs | undefined {
  if (args[0] !== 'get-resource') return undefined;
  const values: Record<string, string | true> = {};
  let positional: string | undefined;
  let encoding: SecretEncoding | undefined;
  for (let i = 1; i < args.length; i++) {
    const a = args[i] as string;
    if (a === '--raw' || a === '--base64') {
      if (encoding !== undefined) return undefined;
      encoding = a === '--raw' ? 'raw' : 'base64';
      continue;
    }
    if (!a.startsWith('-')) {
      if (positional !== undefined) return undefined;
      positional = a;
      continue;
    }
    if (!a.startsWith('--')) return undefined;
    const eq = a.indexOf('=');
    const name = a.slice(2, eq < 0 ? undefined : eq);
    const takesValue = name === 'path' ? true : FLAGS.get(name);
    if (takesValue === undefined || name in values) return undefined;
    if (!takesValue) {
      if (eq >= 0) return undefined;
      values[name] = true;
      continue;
    }
    const value = eq < 0 ? args[++i] : a.slice(eq + 1);
    if (value === undefined || value === '' || value.startsWith('-')) return undefined;
    values[name] = value;
  }
  // `--event-log F --no-event-log`: commander keeps the last; the full CLI decides.
  for (const name of Object.keys(values)) if (name.startsWith('no-') && name.slice(3) in values) return undefined;
  const path = values['path'];
  delete values['path'];
  if ((positional === undefined) === (path === undefined)) return undefined;
  return { values: values as CommonValues, resource: (positional ?? path) as string, encoding: encoding ?? 'raw', json: values['json'] === true };
}
