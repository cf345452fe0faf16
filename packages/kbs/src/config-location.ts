/**
 * Where a config problem is, for error messages: `FILE:LINE:COL` for TOML syntax errors (smol-toml
 * gives the position) and `FILE:LINE: key.path: message` for schema errors (the line found by a
 * small scan of the TOML text: table headers and `key =` lines). Formatting only; it never decides
 * whether a config is valid.
 */

/** A schema issue as zod reports it (path, message, and the keys of an unrecognized_keys issue). */
export interface ConfigIssue {
  readonly path: readonly PropertyKey[];
  readonly message: string;
  readonly code?: string;
  readonly keys?: readonly string[];
}

function keySegments(text: string): string[] {
  // Dotted keys, bare or quoted: a.b, "a.b".c, 'x'
  const out: string[] = [];
  const re = /\s*(?:"((?:[^"\\]|\\.)*)"|'([^']*)'|([A-Za-z0-9_-]+))\s*(?:\.|$)/gy;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text)) !== null && m[0] !== '') out.push(m[1] ?? m[2] ?? m[3] ?? '');
  return out;
}

/**
 * The 1-based line of the TOML text that defines `path` (or its nearest enclosing table or key
 * when the exact key is not on a line of its own, e.g. inside an inline table), or undefined.
 */
export function tomlLineOf(text: string, path: readonly PropertyKey[]): number | undefined {
  const want = path.filter((p): p is string => typeof p === 'string');
  let table: string[] = [];
  let best: { line: number; depth: number } | undefined;
  const consider = (full: string[], line: number): void => {
    if (full.length > want.length || full.some((k, i) => k !== want[i])) return;
    if (best === undefined || full.length > best.depth) best = { line, depth: full.length };
  };
  const lines = text.split(/\r?\n/);
  for (const [i, raw] of lines.entries()) {
    const line = raw.replace(/^\s+/, '');
    const header = /^\[\[?([^\]]+)\]\]?/.exec(line);
    if (header !== null) {
      table = keySegments(header[1] ?? '');
      consider(table, i + 1);
      continue;
    }
    const eq = /^((?:"(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_.\s-])+?)\s*=/.exec(line);
    if (eq !== null) consider([...table, ...keySegments(eq[1] ?? '')], i + 1);
  }
  return best?.line;
}

/** `FILE:LINE: key.path: message` (or `FILE: key.path: message` when no line is found / JSON). */
export function formatConfigIssue(file: string, text: string, issue: ConfigIssue, format: 'toml' | 'json'): string {
  let path = issue.path;
  let message = issue.message;
  if (issue.code === 'unrecognized_keys' && issue.keys !== undefined && issue.keys.length > 0) {
    path = [...issue.path, issue.keys[0] as string];
    message = `unknown key${issue.keys.length > 1 ? ` (also: ${issue.keys.slice(1).join(', ')})` : ''}`;
  }
  const keyPath = path.map((p) => (typeof p === 'number' ? `[${p}]` : String(p))).join('.').replace(/\.\[/g, '[');
  const line = format === 'toml' ? tomlLineOf(text, path) : undefined;
  return `${file}${line !== undefined ? `:${line}` : ''}: ${keyPath === '' ? '' : `${keyPath}: `}${message}`;
}

/** `FILE:LINE:COL: invalid TOML: reason` from smol-toml's TomlError (line, column). */
export function formatTomlSyntaxError(file: string, err: unknown): string {
  const e = err as { line?: unknown; column?: unknown; message?: unknown };
  const reason = typeof e.message === 'string' ? (e.message.split('\n')[0] ?? '').replace(/^Invalid TOML document:\s*/, '') : 'not valid TOML';
  const at = typeof e.line === 'number' ? `:${e.line}${typeof e.column === 'number' ? `:${e.column}` : ''}` : '';
  return `${file}${at}: invalid TOML: ${reason}`;
}
