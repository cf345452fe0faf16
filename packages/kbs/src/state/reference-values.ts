/** Validation of reference values and the immutable snapshot every backend hands out. */
import { StateError } from './errors.js';
import type { ReferenceSnapshot } from './ports.js';

export const MAX_REFERENCE_NAME_CHARS = 256;
export const MAX_REFERENCE_VALUES_PER_NAME = 100_000;
export const MAX_REFERENCE_VALUE_CHARS = 64 * 1024;
/** Bound on everything stored (the whole `reference-values.json`, or the Redis hash). */
export const MAX_REFERENCE_TOTAL_CHARS = 64 * 1024 * 1024;
/** Names as the RVPS payload allowed them (1..256 characters), without control characters. */
 
const NAME = /^[^\u0000-\u001f\u007f]{1,256}$/;

export function checkReferenceName(name: string): void {
  // SECURITY: names become JSON keys and Redis hash fields; bounded, no control characters.
  if (typeof name !== 'string' || !NAME.test(name)) throw new TypeError('reference value names are 1..256 characters without control characters');
}

/** Validate one name's values for writing (programmer error → TypeError); returns a frozen copy. */
export function checkReferenceEntry(name: string, values: readonly string[]): readonly string[] {
  checkReferenceName(name);
  if (!Array.isArray(values) || values.length > MAX_REFERENCE_VALUES_PER_NAME) throw new TypeError(`reference values of ${name.slice(0, 64)} must be an array of at most ${MAX_REFERENCE_VALUES_PER_NAME}`);
  for (const v of values) if (typeof v !== 'string' || v.length > MAX_REFERENCE_VALUE_CHARS) throw new TypeError(`reference values of ${name.slice(0, 64)} must be strings of at most 64 KiB`);
  return Object.freeze([...values]);
}

/** Validate a whole entries object for `set`. */
export function checkReferenceEntries(entries: Readonly<Record<string, readonly string[]>>): Map<string, readonly string[]> {
  if (typeof entries !== 'object' || entries === null || Array.isArray(entries)) throw new TypeError('reference values must be an object of name → values');
  const out = new Map<string, readonly string[]>();
  for (const [k, v] of Object.entries(entries)) out.set(k, checkReferenceEntry(k, v));
  return out;
}

/** Decode stored values of one name (backend data): STATE_CORRUPT when malformed. */
export function decodeStoredReference(name: string, raw: unknown): readonly string[] {
  try {
    return checkReferenceEntry(name, raw as readonly string[]);
  } catch (cause) {
    // SECURITY: a damaged or tampered store fails closed rather than appraising against guesses.
    throw new StateError('STATE_CORRUPT', `stored reference values of ${String(name).slice(0, 64)} are malformed`, { cause });
  }
}

/** An immutable snapshot over `values` (taken over, not copied: callers must not keep mutating it). */
export function referenceSnapshot(version: number, values: ReadonlyMap<string, readonly string[]>): ReferenceSnapshot {
  let all: Readonly<Record<string, readonly string[]>> | undefined;
  return Object.freeze({
    version,
    get: (name: string) => values.get(name),
    all: () => (all ??= Object.freeze(Object.fromEntries(values))),
  });
}
