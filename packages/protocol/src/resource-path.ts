import { ProtocolError } from './errors.js';

// SECURITY: each segment is a plain name, so a path can never climb out of a repository
// (`..`, `/`, empty or leading-dot segments are refused) (Trustee kbs resource path rule).
const SEGMENT = /^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/;
const MAX_SEGMENT_CHARS = 255;

export interface ResourcePath {
  readonly repository: string;
  readonly type: string;
  readonly tag: string;
}

export function isValidResourceSegment(s: string): boolean {
  return s.length <= MAX_SEGMENT_CHARS && SEGMENT.test(s);
}

/** Parse `repo/type/tag` (no leading slash); throws PROTOCOL_INVALID_RESOURCE_PATH. */
export function parseResourcePath(path: string): ResourcePath {
  const parts = path.split('/');
  if (parts.length !== 3) {
    throw new ProtocolError('PROTOCOL_INVALID_RESOURCE_PATH', 'a resource path has exactly three segments: repository/type/tag');
  }
  const [repository, type, tag] = parts as [string, string, string];
  for (const s of parts) {
    if (!isValidResourceSegment(s)) {
      throw new ProtocolError('PROTOCOL_INVALID_RESOURCE_PATH', 'resource path segments must match ^[A-Za-z0-9_-][A-Za-z0-9_.-]*$');
    }
  }
  return { repository, type, tag };
}

export function formatResourcePath(p: ResourcePath): string {
  return `${p.repository}/${p.type}/${p.tag}`;
}

/**
 * Parse a `kbs:///repo/type/tag[?version=N]` or `kbs://host/repo/type/tag` resource URI
 * (the form ocicrypt key ids and the agent CLI use).
 */
export function parseResourceUri(uri: string): ResourcePath & { version?: number } {
  let url: URL;
  try {
    url = new URL(uri);
  } catch (cause) {
    throw new ProtocolError('PROTOCOL_INVALID_RESOURCE_PATH', 'not a kbs:// resource URI', { cause });
  }
  if (url.protocol !== 'kbs:') throw new ProtocolError('PROTOCOL_INVALID_RESOURCE_PATH', 'resource URIs use the kbs: scheme');
  const path = parseResourcePath(url.pathname.replace(/^\/+/, ''));
  const v = url.searchParams.get('version');
  if (v === null) return path;
  if (!/^[1-9][0-9]{0,8}$/.test(v)) throw new ProtocolError('PROTOCOL_INVALID_RESOURCE_PATH', 'version must be a positive integer');
  return { ...path, version: Number(v) };
}
