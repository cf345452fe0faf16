import { readFile } from 'node:fs/promises';

/** Failure of an admin call, with the KBS's Trustee error body when it sent one. */
export class AdminCallError extends Error {
  override readonly name = 'AdminCallError';
  readonly code = 'ADMIN_CALL_FAILED' as const;
  constructor(
    message: string,
    readonly status: number | undefined,
  ) {
    super(message);
  }
}

export const DEFAULT_KBS_URL = 'http://127.0.0.1:8080';

/** Reads the admin token from a file (trailing whitespace trimmed). */
export async function readAdminToken(file: string | undefined): Promise<string> {
  if (file === undefined) throw new AdminCallError('--admin-token-file is required for admin calls', undefined);
  const token = (await readFile(file, 'utf8')).trim();
  if (token === '') throw new AdminCallError(`${file} is empty`, undefined);
  return token;
}

/** One authenticated admin call; returns the parsed JSON answer (or null for an empty body). */
export async function adminCall(
  baseUrl: string,
  token: string,
  method: 'GET' | 'POST' | 'PUT' | 'DELETE',
  path: string,
  body?: { json: unknown } | { bytes: Uint8Array },
): Promise<unknown> {
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  let payload: string | Uint8Array | undefined;
  if (body !== undefined && 'json' in body) {
    headers['content-type'] = 'application/json';
    payload = JSON.stringify(body.json);
  } else if (body !== undefined) {
    headers['content-type'] = 'application/octet-stream';
    payload = body.bytes;
  }
  let res: Response;
  try {
    res = await fetch(baseUrl.replace(/\/+$/, '') + path, { method, headers, ...(payload !== undefined ? { body: payload } : {}) });
  } catch (err) {
    throw new AdminCallError(`cannot reach the KBS at ${baseUrl}: ${(err as Error).message}`, undefined);
  }
  const text = await res.text();
  if (!res.ok) {
    let detail = text.slice(0, 500);
    try {
      const e = JSON.parse(text) as { type?: string; detail?: string };
      if (typeof e.detail === 'string') detail = `${e.detail} (${String(e.type).split('/').pop()})`;
    } catch {
      /* not JSON */
    }
    throw new AdminCallError(`${method} ${path}: HTTP ${res.status}: ${detail}`, res.status);
  }
  if (text === '') return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}
