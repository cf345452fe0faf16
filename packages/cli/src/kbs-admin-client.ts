import { createPrivateKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { decodeJwt, SignJWT } from 'jose';
import { Agent, request, type Dispatcher } from 'undici';
import { CliError, EXIT, explainConnectionError, parseKbsUrl, readCaFile, UsageError } from '@keyhold/command-line';

export const DEFAULT_KBS_URL = 'http://127.0.0.1:8080';

/** The flags every command that talks to a KBS shares (global: before or after the command word). */
export interface KbsFlags {
  readonly url?: string | undefined;
  readonly certFile?: string | undefined;
  readonly clientCert?: string | undefined;
  readonly clientKey?: string | undefined;
  readonly adminTokenFile?: string | undefined;
  readonly authPrivateKey?: string | undefined;
}

/** A refused or failed admin call; exit 3 for 401/403, 4 for 404, 1 otherwise. */
export class AdminCallError extends CliError {
  override readonly name: string = 'AdminCallError';
  readonly status: number | undefined;
  constructor(message: string, status: number | undefined, options: { hint?: string; cause?: unknown } = {}) {
    super(status === undefined ? 'KBS_UNREACHABLE' : `HTTP_${status}`, message, {
      ...options,
      exitCode: status === 401 || status === 403 ? EXIT.DENIED : status === 404 ? EXIT.NOT_FOUND : EXIT.FAIL,
    });
    this.status = status;
  }
}

/** The KBS base URL: --url, KEYHOLD_KBS_URL, or the local default; a URL without a scheme is a usage error. */
export function kbsUrlOf(flags: KbsFlags, env: NodeJS.ProcessEnv): string {
  if (flags.url !== undefined) return parseKbsUrl(flags.url, '--url');
  if (env['KEYHOLD_KBS_URL'] !== undefined && env['KEYHOLD_KBS_URL'] !== '') return parseKbsUrl(env['KEYHOLD_KBS_URL'], 'KEYHOLD_KBS_URL');
  return DEFAULT_KBS_URL;
}

/** The CA file for an https KBS: --cert-file or KEYHOLD_KBS_CA (kbs-client's --cert-file). */
export function caFileOf(flags: KbsFlags, env: NodeJS.ProcessEnv): string | undefined {
  const f = flags.certFile ?? env['KEYHOLD_KBS_CA'];
  return f === undefined || f === '' ? undefined : f;
}

/**
 * The client certificate and key for a KBS whose admin API requires mutual TLS (`[admin] client_ca`):
 * --client-cert / --client-key or KEYHOLD_CLIENT_CERT / KEYHOLD_CLIENT_KEY, both or neither.
 */
export async function clientCertificateOf(flags: KbsFlags, env: NodeJS.ProcessEnv): Promise<{ cert: string; key: string } | undefined> {
  const pick = (flag: string | undefined, name: string): string | undefined => {
    const v = flag ?? env[name];
    return v === undefined || v === '' ? undefined : v;
  };
  const certFile = pick(flags.clientCert, 'KEYHOLD_CLIENT_CERT');
  const keyFile = pick(flags.clientKey, 'KEYHOLD_CLIENT_KEY');
  if (certFile === undefined && keyFile === undefined) return undefined;
  if (certFile === undefined || keyFile === undefined) throw new UsageError('give --client-cert and --client-key together (mutual TLS for the admin API)');
  const read = async (file: string, what: string): Promise<string> => {
    try {
      return await readFile(file, 'utf8');
    } catch (cause) {
      throw new UsageError(`cannot read the ${what} ${file}: ${(cause as NodeJS.ErrnoException).code ?? String(cause)}`);
    }
  };
  return { cert: await read(certFile, 'client certificate'), key: await read(keyFile, 'client key') };
}

const ISSUE_HINT = (file: string): string => `mint one with: keyhold token issue --key admin.key.pem --role admin > ${file}`;

/**
 * An authenticated admin client for one CLI run: the token comes from --admin-token-file (env
 * KEYHOLD_ADMIN_TOKEN_FILE) or is signed here from kbs-client's --auth-private-key (a short-lived
 * token, no role claim, as kbs-client makes). With --cert-file the KBS's CA is trusted for these
 * calls only; --client-cert/--client-key present a client certificate (admin mutual TLS). Call
 * close() when done.
 */
export class AdminClient {
  readonly url: string;
  readonly #flags: KbsFlags;
  readonly #env: NodeJS.ProcessEnv;
  #dispatcher: Dispatcher | undefined;
  #token: string | undefined;

  constructor(flags: KbsFlags, env: NodeJS.ProcessEnv) {
    this.url = kbsUrlOf(flags, env);
    this.#flags = flags;
    this.#env = env;
  }

  #tokenFile(): string | undefined {
    const f = this.#flags.adminTokenFile ?? this.#env['KEYHOLD_ADMIN_TOKEN_FILE'];
    return f === undefined || f === '' ? undefined : f;
  }

  async #bearer(): Promise<string> {
    if (this.#token !== undefined) return this.#token;
    const file = this.#tokenFile();
    if (file !== undefined && this.#flags.authPrivateKey !== undefined) throw new UsageError('give --admin-token-file or --auth-private-key, not both');
    if (this.#flags.authPrivateKey !== undefined) {
      this.#token = await signAdminToken(this.#flags.authPrivateKey);
      return this.#token;
    }
    if (file === undefined) throw new UsageError('admin calls need --admin-token-file FILE (env KEYHOLD_ADMIN_TOKEN_FILE) or --auth-private-key KEY.pem', { hint: ISSUE_HINT('admin.jwt') });
    const token = (await readFile(file, 'utf8')).trim();
    if (token === '') throw new UsageError(`admin token file ${file} is empty`, { hint: ISSUE_HINT(file) });
    this.#token = token;
    return token;
  }

  async #pool(): Promise<Dispatcher | undefined> {
    if (this.#dispatcher !== undefined) return this.#dispatcher;
    const ca = caFileOf(this.#flags, this.#env);
    const client = await clientCertificateOf(this.#flags, this.#env);
    if (ca === undefined && client === undefined) return undefined;
    this.#dispatcher = new Agent({ connect: { ...(ca !== undefined ? { ca: await readCaFile(ca) } : {}), ...(client ?? {}) } });
    return this.#dispatcher;
  }

  /** One admin call; the parsed JSON answer (a string when it is not JSON, null when empty). */
  async call(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: { json: unknown } | { bytes: Uint8Array }): Promise<unknown> {
    const token = await this.#bearer();
    const dispatcher = await this.#pool();
    const headers: Record<string, string> = { authorization: `Bearer ${token}` };
    let payload: string | Uint8Array | undefined;
    if (body !== undefined && 'json' in body) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body.json);
    } else if (body !== undefined) {
      headers['content-type'] = 'application/octet-stream';
      payload = body.bytes;
    }
    let res: Dispatcher.ResponseData;
    try {
      res = await request(this.url + path, { method, headers, ...(payload !== undefined ? { body: payload } : {}), ...(dispatcher !== undefined ? { dispatcher } : {}), headersTimeout: 30_000, bodyTimeout: 30_000 });
    } catch (err) {
      const why = await explainConnectionError(this.url, err);
      throw new AdminCallError(why.message, undefined, { cause: err, ...(why.hint !== undefined ? { hint: why.hint } : {}) });
    }
    const text = await res.body.text();
    if (res.statusCode < 200 || res.statusCode >= 300) {
      let detail = text.slice(0, 500);
      try {
        const e = JSON.parse(text) as { type?: string; detail?: string };
        if (typeof e.detail === 'string') detail = `${e.detail} (${String(e.type).split('/').pop()})`;
      } catch {
        /* not JSON */
      }
      throw new AdminCallError(`${method} ${path}: HTTP ${res.statusCode}: ${detail}`, res.statusCode, this.#hintFor(res.statusCode, token, detail));
    }
    if (text === '') return null;
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return text;
    }
  }

  #hintFor(status: number, token: string, detail: string): { hint?: string } {
    if (status === 401 && /client certificate/.test(detail)) {
      return { hint: "this KBS's admin API requires mutual TLS: give --client-cert and --client-key (a certificate issued by its [admin] client_ca)" };
    }
    if (status === 401) {
      const file = this.#tokenFile();
      let exp: number | undefined;
      try {
        exp = decodeJwt(token).exp;
      } catch {
        /* not a JWT */
      }
      if (file !== undefined && exp !== undefined && exp * 1000 <= Date.now()) {
        return { hint: `the admin token in ${file} expired at ${new Date(exp * 1000).toISOString()}; ${ISSUE_HINT(file)}` };
      }
      return { hint: 'the KBS did not accept the admin token: it must be signed by a key the KBS trusts (--admin-public-key or [admin] identities); see keyhold token issue' };
    }
    if (status === 403) return { hint: "the token's identity or role may not make this call ([admin] roles on the KBS)" };
    return {};
  }

  async close(): Promise<void> {
    await this.#dispatcher?.close();
    this.#dispatcher = undefined;
  }
}

/** kbs-client's --auth-private-key: a 5-minute admin token signed here (EdDSA or ES256). */
async function signAdminToken(file: string): Promise<string> {
  let key: KeyObject;
  const text = await readFile(file, 'utf8');
  try {
    key = createPrivateKey(text);
  } catch (cause) {
    throw new UsageError(`--auth-private-key ${file} is not a PEM private key${/PUBLIC KEY/.test(text) ? ' (it is a public key)' : ''}`, { cause });
  }
  const alg = key.asymmetricKeyType === 'ed25519' ? 'EdDSA' : key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1' ? 'ES256' : undefined;
  if (alg === undefined) throw new UsageError(`--auth-private-key ${file} must be an Ed25519 or EC P-256 key`);
  return new SignJWT({}).setProtectedHeader({ alg, typ: 'JWT' }).setIssuedAt().setExpirationTime('5m').sign(key);
}
