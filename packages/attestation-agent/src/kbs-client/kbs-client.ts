import { decodeJwt } from 'jose';
import type { Agent } from 'node:http';
import {
  ChallengeSchema,
  AttestationResponseSchema,
  ErrorInformationSchema,
  PROTOCOL_VERSION,
  ResourceResponseSchema,
  errorVariantOf,
  formatResourcePath,
  runtimeDataDigest,
  selectedBindingHash,
  type BindingHashAlgorithm,
  type InitData,
  type ResourcePath,
  type TeePubkey,
} from '@keyhold/protocol';
import { KbsClientError } from './errors.js';
import { httpExchange, keepAliveAgent, type HttpAnswer } from './http-exchange.js';
import { AgentError } from '../errors.js';
import { markPhase } from '../phase-channel.js';
import type { ResourceCache } from './sealed-jwe-cache.js';
import { softwareTeeKeys, type SoftwareTeeKeyType, type TeeKey, type TeeKeySource } from './tee-key.js';

/** What an attester is asked for: evidence bound to `reportData` (the runtime-data digest). */
export interface EvidenceRequest {
  nonce: string;
  teePubkey: TeePubkey;
  /** HASH(JCS(runtime data)); the attester fits it to its report-data field. */
  reportData: Uint8Array;
  hashAlgorithm: BindingHashAlgorithm;
  /** The challenge's extra-params (e.g. a credential-activation blob). */
  challengeExtra: Record<string, unknown>;
  /** The tee key `teePubkey` describes (TPM keys add their certification to the evidence). */
  teeKey?: TeeKey;
  /** Trustee's `additional_evidence` string sent beside the evidence and bound into `reportData` ("" or absent: none). */
  additionalEvidence?: string;
}

/** A TEE-specific evidence source the client drives through the handshake. */
export interface Attester {
  readonly tee: string;
  /** Extra-params for the `/auth` request (e.g. EK and AK publics). */
  requestExtraParams?(): Promise<Record<string, unknown>>;
  /** The TEE evidence; the additional evidence comes from the client's `additionalEvidence` option. */
  evidence(req: EvidenceRequest): Promise<{ primary: unknown }>;
}

export interface KbsClientOptions {
  url: string;
  attester: Attester;
  /** Software tee key type when `teeKeys` is not given (default `ec`). */
  teeKeyType?: SoftwareTeeKeyType;
  /** Where tee keys come from (e.g. TPM-resident keys); software keys of `teeKeyType` by default. */
  teeKeys?: TeeKeySource;
  /** Released JWEs kept across runs (only for TPM-resident tee keys); none by default. */
  cache?: ResourceCache;
  initData?: InitData;
  /** Largest KBS answer body accepted (default 64 MiB). */
  maxBodyBytes?: number;
  /** PEM CA bundle trusted for an https KBS (kbs-client's `--cert-file`); the system CAs otherwise. */
  caPem?: string;
  /** Refresh a token this long before it expires. */
  tokenRefreshMarginMs?: number;
  now?: () => number;
  /** Per-request timeout. */
  timeoutMs?: number;
  /**
   * Trustee's `additional_evidence` for each handshake ("" when absent), read at the start of each
   * one. It is part of the runtime data the quote covers (`HASH(JCS({additional-evidence, nonce,
   * tee-pubkey}))`), so the KBS knows the TEE produced it — `run --node-cert-dir` binds its node
   * key this way.
   */
  additionalEvidence?: () => string;
}

/**
 * An attestation token and the in-process tee key its runtime data bound: enough to fetch and
 * decrypt resources until the token expires, without the attester (the TPM).
 */
export interface ResourceGrant {
  readonly token: string;
  /** When the token expires, ms since the epoch. */
  readonly expMs: number;
  readonly teeKey: TeeKey;
}

const COOKIE = 'kbs-session-id';
/**
 * zod parse options for the KBS's answers: the same checks without zod's eval-compiled fast path,
 * whose code generation costs more than it saves for the few messages one process parses.
 */
const PARSE_ONCE = { jitless: true } as const;
/** A node certificate and its chain are a few KiB; a larger answer is not one. */
const NODE_CERT_ANSWER_MAX_BYTES = 256 * 1024;


/**
 * A client of Trustee's KBS protocol 0.4.0: auth → attest → resource, with the session cookie, an
 * ephemeral tee key (EC P-256 / ECDH-ES+A256KW by default), JWE decryption, and token reuse until it
 * expires. A 401 on a resource call re-runs the handshake once.
 */
export class KbsClient {
  readonly #base: string;
  readonly #agent: Agent;
  readonly #opts: KbsClientOptions;
  readonly #now: () => number;
  readonly #teeKeys: TeeKeySource;
  #teeKey: TeeKey | undefined;
  #token: { value: string; expMs: number } | undefined;
  #inflight: Promise<string> | undefined;

  constructor(opts: KbsClientOptions) {
    let u: URL;
    try {
      u = new URL(opts.url);
    } catch {
      throw new TypeError(`invalid KBS URL ${opts.url}`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new TypeError('KBS URL must be http(s)');
    this.#base = u.toString().replace(/\/+$/, '');
    this.#agent = keepAliveAgent(u, opts.caPem);
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
    this.#teeKeys = opts.teeKeys ?? softwareTeeKeys(opts.teeKeyType ?? 'ec');
  }

  /** Use this token and the tee key it binds (another client's {@link grant}) from now on. */
  adopt(grant: ResourceGrant): void {
    this.#token = { value: grant.token, expMs: grant.expMs };
    this.#teeKey = grant.teeKey;
  }

  /**
   * The current token with its tee key, when that key decrypts without the TPM (software keys);
   * undefined otherwise (no token, or a TPM-resident tee key).
   */
  grant(): ResourceGrant | undefined {
    const token = this.#token;
    const teeKey = this.#teeKey;
    return token !== undefined && teeKey?.inProcess === true ? { token: token.value, expMs: token.expMs, teeKey } : undefined;
  }

  /** Whether a token is cached and not within the refresh margin of its expiry. */
  hasFreshToken(): boolean {
    return this.#freshToken() !== undefined;
  }

  #freshToken(): string | undefined {
    const t = this.#token;
    return t !== undefined && this.#now() + (this.#opts.tokenRefreshMarginMs ?? 10_000) < t.expMs ? t.value : undefined;
  }

  /** Drop idle connections to the KBS. */
  close(): void {
    this.#agent.destroy();
  }

  /** Forget the cached token (the KBS refused it, or it must not be used any more); the next call attests. */
  forgetToken(): void {
    this.#token = undefined;
  }

  /** When the cached token expires (ms since the epoch), undefined when there is none. */
  get tokenExpiresAtMs(): number | undefined {
    return this.#token?.expMs;
  }

  /** A valid attestation token: the cached one, or a fresh handshake. */
  async token(): Promise<string> {
    return this.#freshToken() ?? this.attest();
  }

  /** A fresh token (attesting when there is none) and the tee key it binds, read together. */
  async #held(): Promise<{ token: string; teeKey: TeeKey }> {
    if (this.#freshToken() === undefined) await this.attest();
    const token = this.#token;
    const teeKey = this.#teeKey;
    if (token === undefined || teeKey === undefined) throw new KbsClientError('JWE_DECRYPT_FAILED', 'no tee key for this response');
    return { token: token.value, teeKey };
  }

  /** Run the handshake now (auth → attest) and return the token. Concurrent calls share one run. */
  attest(): Promise<string> {
    this.#inflight ??= this.#handshake().finally(() => {
      this.#inflight = undefined;
    });
    return this.#inflight;
  }

  /**
   * Fetch and decrypt a resource; attests first when there is no valid token. With a cache, a
   * cached JWE that still decrypts is returned without contacting the KBS, and a fetched one is kept.
   */
  async getResource(path: ResourcePath, opts: { version?: number } = {}): Promise<Uint8Array> {
    const rel = `/kbs/v0/resource/${formatResourcePath(path)}${opts.version !== undefined ? `?version=${opts.version}` : ''}`;
    const cached = await this.#opts.cache?.read(rel);
    if (cached !== undefined) return cached;
    // The token and the tee key it binds are taken together: a handshake finishing meanwhile (a
    // daemon's cycle) replaces both, and this answer is wrapped to the key of the token sent.
    let held = await this.#held();
    let res = await this.#call('GET', rel, { authorization: `Bearer ${held.token}` });
    if (res.statusCode === 401) {
      // Token or session no longer accepted: one fresh handshake, then give up.
      await this.attest();
      held = await this.#held();
      res = await this.#call('GET', rel, { authorization: `Bearer ${held.token}` });
    }
    const body = await this.#json(res, rel);
    markPhase('kbs:resource');
    const parsed = ResourceResponseSchema.safeParse(body, PARSE_ONCE);
    if (!parsed.success) throw new KbsClientError('KBS_PROTOCOL', 'resource response is not a flattened JWE');
    const key = held.teeKey;
    let plaintext: Uint8Array;
    try {
      plaintext = await key.decrypt(parsed.data);
    } catch (cause) {
      // Coded errors (a TPM refusing a sealed key, a malformed JWE) keep their code.
      if (cause instanceof KbsClientError || cause instanceof AgentError) throw cause;
      throw new KbsClientError('JWE_DECRYPT_FAILED', 'could not decrypt the resource (wrong key or tampered response)', { cause });
    }
    markPhase('jwe');
    await this.#opts.cache?.write(rel, parsed.data, key);
    return plaintext;
  }

  /**
   * `POST /kbs/v0/node-certificate` with `token` and a PEM PKCS#10 request: the KBS's JSON answer,
   * unchecked (the caller decodes and checks it against its key). Refusals throw {@link KbsClientError}.
   */
  async requestNodeCertificate(token: string, csrPem: string): Promise<unknown> {
    const path = '/kbs/v0/node-certificate';
    const res = await this.#call('POST', path, { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, JSON.stringify({ csr: csrPem }), NODE_CERT_ANSWER_MAX_BYTES);
    return this.#json(res, path);
  }

  async #handshake(): Promise<string> {
    const attester = this.#opts.attester;
    const extra = (await attester.requestExtraParams?.()) ?? {};
    markPhase('identity');
    // The tee key does not depend on the challenge (the quote binds it to the nonce): it is made
    // while the KBS answers /auth, and dropped unused when /auth fails.
    let teeKeyMade: Promise<TeeKey> | undefined;
    const makeTeeKey = (): Promise<TeeKey> => (teeKeyMade ??= this.#teeKeys.create());
    const authRes = await this.#call('POST', '/kbs/v0/auth', { 'content-type': 'application/json' }, JSON.stringify({ version: PROTOCOL_VERSION, tee: attester.tee, 'extra-params': extra }), undefined, () => {
      makeTeeKey().catch(() => undefined);
    });
    const cookie = cookieFrom(authRes.setCookie);
    const challengeJson = await this.#json(authRes, '/kbs/v0/auth');
    markPhase('kbs:auth');
    const ch = ChallengeSchema.safeParse(challengeJson, PARSE_ONCE);
    if (!ch.success) throw new KbsClientError('KBS_PROTOCOL', 'challenge is malformed');
    if (cookie === undefined) throw new KbsClientError('KBS_PROTOCOL', 'KBS set no kbs-session-id cookie');
    const challengeExtra = typeof ch.data['extra-params'] === 'object' ? ch.data['extra-params'] : {};
    const hashAlgorithm = selectedBindingHash(challengeExtra);
    const teeKey = await makeTeeKey();
    markPhase('tee-key');
    let ev: { primary: unknown };
    const additionalEvidence = this.#opts.additionalEvidence?.() ?? '';
    try {
      ev = await attester.evidence({
        nonce: ch.data.nonce,
        teePubkey: teeKey.publicJwk,
        reportData: runtimeDataDigest({ nonce: ch.data.nonce, teePubkey: teeKey.publicJwk, additionalEvidence }, hashAlgorithm),
        hashAlgorithm,
        challengeExtra,
        teeKey,
        additionalEvidence,
      });
    } catch (cause) {
      if (cause instanceof KbsClientError) throw cause;
      throw new KbsClientError('EVIDENCE_FAILED', `could not gather evidence: ${(cause as Error).message ?? cause}`, { cause });
    }
    markPhase('evidence');
    const attestation = {
      ...(this.#opts.initData !== undefined ? { 'init-data': this.#opts.initData } : {}),
      'runtime-data': { nonce: ch.data.nonce, 'tee-pubkey': teeKey.publicJwk },
      'tee-evidence': { primary_evidence: ev.primary, additional_evidence: additionalEvidence },
    };
    const attRes = await this.#call('POST', '/kbs/v0/attest', { 'content-type': 'application/json', cookie: `${COOKIE}=${cookie}` }, JSON.stringify(attestation));
    const tokenJson = await this.#json(attRes, '/kbs/v0/attest');
    markPhase('kbs:attest');
    const tok = AttestationResponseSchema.safeParse(tokenJson, PARSE_ONCE);
    if (!tok.success) throw new KbsClientError('KBS_PROTOCOL', 'attestation response has no token');
    let expMs = this.#now() + 60_000;
    try {
      const exp = decodeJwt(tok.data.token).exp;
      if (typeof exp === 'number') expMs = exp * 1000;
    } catch {
      throw new KbsClientError('KBS_PROTOCOL', 'attestation token is not a JWT');
    }
    this.#teeKey = teeKey;
    this.#token = { value: tok.data.token, expMs };
    return tok.data.token;
  }

  #call(method: 'GET' | 'POST', path: string, headers: Record<string, string>, body?: string, maxBodyBytes?: number, onSent?: () => void): Promise<HttpAnswer> {
    return httpExchange(this.#base + path, {
      method,
      headers,
      ...(body !== undefined ? { body } : {}),
      ...(onSent !== undefined ? { onSent } : {}),
      timeoutMs: this.#opts.timeoutMs ?? 30_000,
      maxBodyBytes: maxBodyBytes ?? this.#opts.maxBodyBytes ?? 64 * 1024 * 1024,
      agent: this.#agent,
    });
  }

  /** The JSON body of a 2xx answer, or the KBS's error as a typed client error. */
  async #json(res: HttpAnswer, what: string): Promise<unknown> {
    const text = res.body;
    if (res.statusCode >= 200 && res.statusCode < 300) {
      try {
        return JSON.parse(text);
      } catch (cause) {
        throw new KbsClientError('KBS_PROTOCOL', `${what}: KBS answered with non-JSON`, { cause });
      }
    }
    let detail = `HTTP ${res.statusCode}`;
    let variant;
    let errorType: string | undefined;
    try {
      const info = ErrorInformationSchema.parse(JSON.parse(text), PARSE_ONCE);
      variant = errorVariantOf(info);
      errorType = (info.type.split('/').pop() ?? '').slice(0, 64);
      detail = `${info.detail} (${errorType})`;
    } catch {
      /* not an error body */
    }
    const code =
      res.statusCode === 404
        ? 'RESOURCE_NOT_FOUND'
        : res.statusCode === 403
          ? 'POLICY_DENY'
          : res.statusCode === 503
            ? 'KBS_UNAVAILABLE'
            : res.statusCode === 401 && what === '/kbs/v0/attest'
              ? 'ATTESTATION_FAILED'
              : res.statusCode === 401
                ? 'UNAUTHORIZED'
                : 'KBS_REFUSED';
    throw new KbsClientError(code, `${what}: ${detail}`, { status: res.statusCode, ...(variant !== undefined ? { variant } : {}), ...(errorType !== undefined ? { errorType } : {}) });
  }
}

function cookieFrom(list: readonly string[]): string | undefined {
  for (const c of list) {
    const m = new RegExp(`(?:^|;\\s*)${COOKIE}=([^;]+)`).exec(c);
    if (m !== null) return m[1];
  }
  return undefined;
}
