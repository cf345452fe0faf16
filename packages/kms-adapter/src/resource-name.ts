import { KmsError } from './errors.js';

/** A validated KBS resource path `repo/type/tag`. */
export interface ResourceName {
  readonly repository: string;
  readonly type: string;
  readonly tag: string;
  /** The canonical `repo/type/tag` form, used as the storage key by every backend. */
  readonly path: string;
}

// SECURITY: a segment is a plain name: no `/`, no `..`, no leading dot, no NUL or control
// characters, so a name can never climb out of the store's directory, Redis key space or Vault
// mount (Trustee KBS resource path rule; CWE-22).
const SEGMENT = /^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/;
/** Longest segment accepted (a file name on every common file system). */
export const MAX_SEGMENT_CHARS = 255;
/** Highest version number accepted (matches the KBS `?version=N` grammar `[1-9][0-9]{0,8}`). */
export const MAX_VERSION = 999_999_999;

/** True when `s` is one valid segment of a resource path. */
export function isValidSegment(s: string): boolean {
  return s.length <= MAX_SEGMENT_CHARS && SEGMENT.test(s);
}

/**
 * Parse a resource path `repo/type/tag`. Throws KMS_INVALID_NAME for anything else, including
 * `../x/y`, `a/b/c/d`, leading or trailing slashes and empty segments. The error message does not
 * echo the rejected name.
 */
export function parseResourceName(name: unknown): ResourceName {
  // SECURITY: bound the work before splitting hostile input (3 segments + 2 slashes).
  if (typeof name !== 'string' || name.length > 3 * MAX_SEGMENT_CHARS + 2) {
    throw new KmsError('KMS_INVALID_NAME', 'a resource name is a string repo/type/tag of bounded length');
  }
  const parts = name.split('/');
  // SECURITY: exactly three segments, so `a/b/c/../../x` and absolute paths are refused (CWE-22).
  if (parts.length !== 3) {
    throw new KmsError('KMS_INVALID_NAME', 'a resource name has exactly three segments: repo/type/tag');
  }
  for (const s of parts) {
    if (!isValidSegment(s)) {
      throw new KmsError('KMS_INVALID_NAME', 'resource name segments must match ^[A-Za-z0-9_-][A-Za-z0-9_.-]*$');
    }
  }
  const [repository, type, tag] = parts as [string, string, string];
  return Object.freeze({ repository, type, tag, path: name });
}

/** Validate a version number given by a caller; throws KMS_INVALID_ARGUMENT. */
export function checkVersion(version: unknown): number {
  // SECURITY: only positive safe integers reach a backend key or file name (no `1e3`, `-1`, `NaN`).
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 1 || version > MAX_VERSION) {
    throw new KmsError('KMS_INVALID_ARGUMENT', `a version is an integer in 1..${MAX_VERSION}`);
  }
  return version;
}
