import { KmsError } from '../errors.js';
import { MAX_VERSION } from '../resource-name.js';

const LABEL_KEY = /^[A-Za-z0-9_.-]{1,63}$/;
export const MAX_LABELS = 32;
export const MAX_LABEL_VALUE_CHARS = 256;
export const MAX_KEEP_VERSIONS = 1000;
export const MIN_KEY_BYTES = 16;
export const MAX_KEY_BYTES = 1024;
export const MIN_ROTATION_PERIOD_MS = 1000;
/** About 100 years: the largest delay that is still meaningful and fits a Date. */
export const MAX_ROTATION_PERIOD_MS = 100 * 365 * 24 * 3600 * 1000;

function invalid(message: string): KmsError {
  return new KmsError('KMS_INVALID_ARGUMENT', message);
}

/** Labels: a plain object of at most 32 string pairs. */
export function checkLabels(labels: unknown): Readonly<Record<string, string>> {
  if (labels === undefined) return Object.freeze({});
  // SECURITY: only a plain object of strings, copied key by key into a null-prototype object and
  // then defined as own properties, so a `__proto__` label is just a label (prototype pollution).
  if (typeof labels !== 'object' || labels === null || Array.isArray(labels)) throw invalid('labels are an object of strings');
  const entries = Object.entries(labels as Record<string, unknown>);
  // SECURITY: bound the label count and sizes so metadata cannot be used to exhaust storage.
  if (entries.length > MAX_LABELS) throw invalid(`at most ${MAX_LABELS} labels`);
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [k, v] of entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (!LABEL_KEY.test(k)) throw invalid('label keys match ^[A-Za-z0-9_.-]{1,63}$');
    if (typeof v !== 'string' || v.length > MAX_LABEL_VALUE_CHARS) throw invalid(`label values are strings of at most ${MAX_LABEL_VALUE_CHARS} characters`);
    out[k] = v;
  }
  return Object.freeze({ ...out });
}

export function checkKeepVersions(n: unknown): number {
  // SECURITY: a bounded positive integer, so pruning always keeps the latest version.
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > MAX_KEEP_VERSIONS) {
    throw invalid(`keepVersions is an integer in 1..${MAX_KEEP_VERSIONS}`);
  }
  return n;
}

export function checkKeyBytes(n: unknown): number {
  // SECURITY: no weak keys and no huge allocations from a caller-supplied length.
  if (typeof n !== 'number' || !Number.isInteger(n) || n < MIN_KEY_BYTES || n > MAX_KEY_BYTES) {
    throw invalid(`generated keys are ${MIN_KEY_BYTES}..${MAX_KEY_BYTES} bytes`);
  }
  return n;
}

export function checkRotationPeriod(ms: unknown): number {
  // SECURITY: a period shorter than a second would let one setting churn keys and prune away
  // versions still in use; a non-finite one would never rotate.
  if (typeof ms !== 'number' || !Number.isInteger(ms) || ms < MIN_ROTATION_PERIOD_MS || ms > MAX_ROTATION_PERIOD_MS) {
    throw invalid(`rotationPeriodMs is an integer in ${MIN_ROTATION_PERIOD_MS}..${MAX_ROTATION_PERIOD_MS}`);
  }
  return ms;
}

export function checkIfVersion(v: unknown): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > MAX_VERSION) {
    throw invalid(`ifVersion is an integer in 0..${MAX_VERSION}`);
  }
  return v;
}

export function checkValue(value: unknown, maxValueBytes: number): Uint8Array {
  if (!(value instanceof Uint8Array)) throw invalid('a value is a Uint8Array');
  // SECURITY: refuse oversized values before encrypting or sending them anywhere (storage exhaustion).
  if (value.length > maxValueBytes) throw new KmsError('KMS_TOO_LARGE', `a value is at most ${maxValueBytes} bytes`);
  return value;
}
