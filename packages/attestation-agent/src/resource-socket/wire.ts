/**
 * The resource socket of `keyhold-agent run --resource-socket PATH`: HTTP/1.1 on a unix socket,
 * with the one route guest-components' confidential-data-hub serves to workloads,
 * `GET /cdh/resource/REPO/TYPE/TAG[?version=N]`, answering the secret's bytes
 * (`application/octet-stream`) or a Trustee-shaped error `{"type","detail"}` whose type ends in
 * the agent's error code. `curl --unix-socket PATH http://localhost/cdh/resource/...` works too.
 * Pure: the facts both ends share.
 */
import { EXIT, type ExitCode } from '@keyhold/command-line/reporting';
import { formatResourcePath, parseResourcePath, parseResourceUri, type ResourcePath } from '@keyhold/protocol/resource-path';

export const RESOURCE_ROUTE = '/cdh/resource/';
/** The error body's `type` is this prefix and the agent's error code. */
export const AGENT_ERROR_TYPE_PREFIX = 'https://keyhold.dev/agent/errors/';
/** Largest secret the socket serves or a client accepts (the KBS client's own answer cap). */
export const MAX_SECRET_BYTES = 64 * 1024 * 1024;
/** Largest status line plus headers a client reads. */
export const MAX_HEAD_BYTES = 16 * 1024;
/** Largest error body a client reads. */
export const MAX_ERROR_BODY_BYTES = 16 * 1024;

export type SocketResource = ResourcePath & { version?: number };

/**
 * A resource named the way the CLIs take it — `kbs:///REPO/TYPE/TAG[?version=N]`, `REPO/TYPE/TAG`
 * or `/REPO/TYPE/TAG` — as a path; throws the protocol's PROTOCOL_INVALID_RESOURCE_PATH error.
 */
export function resourceFromArgument(text: string): ResourcePath & { version?: number } {
  return parseResourceUri(/^kbs:/i.test(text) ? text : `kbs:///${text.replace(/^\/+/, '')}`);
}

/** The request target for a resource. */
export function resourceTarget(r: SocketResource): string {
  return `${RESOURCE_ROUTE}${formatResourcePath(r)}${r.version !== undefined ? `?version=${r.version}` : ''}`;
}

/**
 * The resource a request target names, or undefined when the target is not exactly
 * `/cdh/resource/REPO/TYPE/TAG` with an optional `?version=N`.
 */
export function parseResourceTarget(target: string): SocketResource | undefined {
  if (!target.startsWith(RESOURCE_ROUTE)) return undefined;
  const q = target.indexOf('?');
  const path = target.slice(RESOURCE_ROUTE.length, q < 0 ? undefined : q);
  let parsed: ResourcePath;
  try {
    // SECURITY: the raw target is checked segment by segment (no URL normalisation, no percent-decoding), so `..`, `%2e%2e` or an extra `/` never names another resource or another KBS endpoint.
    parsed = parseResourcePath(path);
  } catch {
    // PROTOCOL_INVALID_RESOURCE_PATH, the only error it throws.
    return undefined;
  }
  if (q < 0) return parsed;
  const m = /^version=([1-9][0-9]{0,8})$/.exec(target.slice(q + 1));
  return m === null ? undefined : { ...parsed, version: Number(m[1]) };
}

/** The exit code a `get-resource` reports for an answer: as for the KBS itself (404: 4, 401/403: 3, 400: 2, else 1). */
export function exitCodeForAnswer(status: number, code: string): ExitCode {
  if (status === 404 && code === 'RESOURCE_NOT_FOUND') return EXIT.NOT_FOUND;
  if (status === 401 || status === 403) return EXIT.DENIED;
  if (status === 400) return EXIT.USAGE;
  return EXIT.FAIL;
}
