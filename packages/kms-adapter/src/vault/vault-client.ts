import { readFileSync } from 'node:fs';
import { Agent, request } from 'undici';
import { KmsError } from '../errors.js';

/** How the adapter authenticates to Vault. */
export type VaultAuth =
  | { readonly method: 'token'; readonly token: string }
  | {
      readonly method: 'approle';
      readonly roleId: string;
      readonly secretId: string;
      /** Mount path of the AppRole auth method (default `approle`). */
      readonly mount?: string;
    };

export interface VaultConnection {
  /** Vault address, e.g. `https://vault.example:8200` (plain http only for loopback dev servers). */
  readonly address: string;
  readonly auth: VaultAuth;
  /** Vault Enterprise / OpenBao namespace, sent as `X-Vault-Namespace`. */
  readonly namespace?: string;
  /** PEM CA bundle file to trust for TLS (in addition to nothing: only this CA is trusted). */
  readonly tlsCaFile?: string;
  /** Bound on each HTTP request (default 5000 ms); beyond it, KMS_UNAVAILABLE. */
  readonly requestTimeoutMs?: number;
}

export interface VaultResponse {
  readonly status: number;
  readonly body: unknown;
}

const MAX_RESPONSE_BYTES = 8 * 1024 * 1024;
const PATH_SEGMENT = /^[A-Za-z0-9_.-]+$/;

/** Validate a mount or prefix path (`kv`, `team/kv`); programmer error → TypeError. */
export function checkVaultPath(p: string, what: string): string {
  const segs = p.split('/');
  if (p === '' || segs.some((s) => !PATH_SEGMENT.test(s) || s === '.' || s === '..')) {
    throw new TypeError(`vault: ${what} must be slash-separated segments of [A-Za-z0-9_.-]`);
  }
  return p;
}

/**
 * A small Vault HTTP client over undici: token or AppRole login (re-login once on 403 or
 * expiry), namespace header, custom CA, bounded requests and bounded response bodies. Transport
 * failures, timeouts, 5xx and 429 (sealed, standby, overloaded) are KMS_UNAVAILABLE; rejected
 * credentials are KMS_CONFIG. Error messages carry Vault's status, never tokens or bodies.
 */
export class VaultClient {
  readonly #base: string;
  readonly #auth: VaultAuth;
  readonly #namespace: string | undefined;
  readonly #timeoutMs: number;
  readonly #agent: Agent;
  #token: string | undefined;
  #tokenExpiresAt = Number.POSITIVE_INFINITY;
  #login: Promise<void> | undefined;

  constructor(conn: VaultConnection) {
    let url: URL;
    try {
      url = new URL(conn.address);
    } catch {
      throw new TypeError('vault: address is not a URL');
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new TypeError('vault: address must be http(s)');
    this.#base = url.origin;
    this.#auth = conn.auth;
    if (conn.auth.method === 'token') {
      if (typeof conn.auth.token !== 'string' || conn.auth.token === '') throw new TypeError('vault: token is required');
      this.#token = conn.auth.token;
    } else {
      if (!conn.auth.roleId || !conn.auth.secretId) throw new TypeError('vault: approle needs roleId and secretId');
      checkVaultPath(conn.auth.mount ?? 'approle', 'approle mount');
    }
    if (conn.namespace !== undefined) checkVaultPath(conn.namespace, 'namespace');
    this.#namespace = conn.namespace;
    this.#timeoutMs = conn.requestTimeoutMs ?? 5000;
    const ca = conn.tlsCaFile === undefined ? undefined : readFileSync(conn.tlsCaFile, 'utf8');
    this.#agent = new Agent({
      headersTimeout: this.#timeoutMs,
      bodyTimeout: this.#timeoutMs,
      connectTimeout: this.#timeoutMs,
      ...(ca === undefined ? {} : { connect: { ca } }),
    });
  }

  /**
   * One authenticated request. Returns 2xx, 400 and 404 responses to the caller (their meaning
   * depends on the endpoint); everything else becomes a KmsError.
   */
  async call(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown): Promise<VaultResponse> {
    for (let attempt = 0; ; attempt++) {
      const token = await this.#currentToken();
      const res = await this.#send(method, path, body, token);
      if (res.status === 403 && this.#auth.method === 'approle' && attempt === 0) {
        // The token may have expired or been revoked: log in again once.
        this.#token = undefined;
        continue;
      }
      return this.#check(res);
    }
  }

  async close(): Promise<void> {
    await this.#agent.close();
  }

  #check(res: VaultResponse): VaultResponse {
    const s = res.status;
    if ((s >= 200 && s < 300) || s === 400 || s === 404) return res;
    if (s === 401 || s === 403) throw new KmsError('KMS_CONFIG', `vault denied access (HTTP ${s})`);
    if (s === 429 || s >= 500) throw new KmsError('KMS_UNAVAILABLE', `vault is unavailable (HTTP ${s})`);
    throw new KmsError('KMS_BACKEND_ERROR', `vault answered HTTP ${s}`);
  }

  async #currentToken(): Promise<string> {
    if (this.#token !== undefined && Date.now() < this.#tokenExpiresAt) return this.#token;
    this.#login ??= this.#appRoleLogin().finally(() => {
      this.#login = undefined;
    });
    await this.#login;
    if (this.#token === undefined) throw new KmsError('KMS_CONFIG', 'vault login gave no token');
    return this.#token;
  }

  async #appRoleLogin(): Promise<void> {
    const auth = this.#auth;
    if (auth.method !== 'approle') throw new KmsError('KMS_CONFIG', 'vault token rejected');
    const res = this.#check(
      await this.#send('POST', `auth/${auth.mount ?? 'approle'}/login`, { role_id: auth.roleId, secret_id: auth.secretId }, undefined),
    );
    const a = (res.body as { auth?: { client_token?: unknown; lease_duration?: unknown } } | undefined)?.auth;
    if (res.status !== 200 || typeof a?.client_token !== 'string') throw new KmsError('KMS_CONFIG', `vault approle login failed (HTTP ${res.status})`);
    this.#token = a.client_token;
    const ttl = typeof a.lease_duration === 'number' && a.lease_duration > 0 ? a.lease_duration : 0;
    // Log in again at 90% of the lease, before the token expires.
    this.#tokenExpiresAt = ttl > 0 ? Date.now() + ttl * 900 : Number.POSITIVE_INFINITY;
  }

  async #send(method: string, path: string, body: unknown, token: string | undefined): Promise<VaultResponse> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (token !== undefined) headers['x-vault-token'] = token;
    if (this.#namespace !== undefined) headers['x-vault-namespace'] = this.#namespace;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Awaited<ReturnType<typeof request>>;
    try {
      res = await request(`${this.#base}/v1/${path}`, {
        method: method as 'GET',
        headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        dispatcher: this.#agent,
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (cause) {
      throw new KmsError('KMS_UNAVAILABLE', 'vault is unreachable', { cause });
    }
    let text = '';
    try {
      let size = 0;
      const chunks: Buffer[] = [];
      for await (const chunk of res.body) {
        size += (chunk as Buffer).length;
        // SECURITY: cap what we buffer from the backend (resource exhaustion).
        if (size > MAX_RESPONSE_BYTES) {
          res.body.destroy();
          throw new KmsError('KMS_BACKEND_ERROR', 'vault response too large');
        }
        chunks.push(chunk as Buffer);
      }
      text = Buffer.concat(chunks).toString('utf8');
    } catch (cause) {
      if (cause instanceof KmsError) throw cause;
      throw new KmsError('KMS_UNAVAILABLE', 'vault connection failed while reading a response', { cause });
    }
    let parsed: unknown;
    if (text !== '') {
      try {
        parsed = JSON.parse(text);
      } catch {
        if (res.statusCode < 300) throw new KmsError('KMS_BACKEND_ERROR', 'vault answered with a non-JSON body');
      }
    }
    return { status: res.statusCode, body: parsed };
  }
}
