import { fetch, type RequestInit } from 'undici';
import { fitReportData, runtimeDataDigest, PROTOCOL_VERSION, TPM_REPORT_DATA_BYTES, type TeePubkey } from '@keyhold/protocol';
import { collectTpmEvidence, generateTeeKeyPair, type TeeKeyPair, type TpmDevice, type TpmKey } from '@keyhold/attestation-agent';

/**
 * Drives the KBS protocol by hand so tests can send exactly what an attacker would: wrong nonces,
 * replays, altered evidence. Uses the real agent library for the honest parts (TPM quote).
 */
export interface HttpAnswer {
  status: number;
  text: string;
  json: unknown;
  headers: { get(name: string): string | null };
}

export async function http(url: string, init: RequestInit = {}): Promise<HttpAnswer> {
  const res = await fetch(url, init);
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json, headers: res.headers };
}

export async function auth(kbs: string, body: unknown = { version: PROTOCOL_VERSION, tee: 'tpm', 'extra-params': {} }): Promise<{ cookie: string; nonce: string; answer: HttpAnswer }> {
  const answer = await http(`${kbs}/kbs/v0/auth`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const setCookie = answer.headers.get('set-cookie') ?? '';
  const m = /kbs-session-id=([^;]+)/.exec(setCookie);
  const nonce = (answer.json as { nonce?: string } | undefined)?.nonce ?? '';
  return { cookie: m?.[1] ?? '', nonce, answer };
}

export interface AttestationParts {
  nonce: string;
  teeKey: TeeKeyPair;
  body: Record<string, unknown>;
}

/** Build an honest attestation body for `nonce`, quoting with the given TPM and AK. */
export async function buildAttestation(
  tpm: TpmDevice,
  ak: TpmKey,
  nonce: string,
  opts: { teeKey?: TeeKeyPair; initData?: { format: 'toml'; body: string }; quoteNonce?: string } = {},
): Promise<AttestationParts> {
  const teeKey = opts.teeKey ?? (await generateTeeKeyPair('ec'));
  const digest = runtimeDataDigest({ nonce: opts.quoteNonce ?? nonce, teePubkey: teeKey.publicJwk as TeePubkey, additionalEvidence: '' });
  const evidence = await collectTpmEvidence(tpm, ak, fitReportData(digest, TPM_REPORT_DATA_BYTES));
  const body = {
    ...(opts.initData !== undefined ? { 'init-data': opts.initData } : {}),
    'runtime-data': { nonce, 'tee-pubkey': teeKey.publicJwk },
    'tee-evidence': { primary_evidence: evidence, additional_evidence: '' },
  };
  return { nonce, teeKey, body };
}

export function attest(kbs: string, cookie: string | undefined, body: unknown, contentType = 'application/json'): Promise<HttpAnswer> {
  return http(`${kbs}/kbs/v0/attest`, {
    method: 'POST',
    headers: { 'content-type': contentType, ...(cookie !== undefined ? { cookie: `kbs-session-id=${cookie}` } : {}) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

export function getResource(kbs: string, path: string, auth: { cookie?: string; bearer?: string } = {}): Promise<HttpAnswer> {
  const headers: Record<string, string> = {};
  if (auth.cookie !== undefined) headers['cookie'] = `kbs-session-id=${auth.cookie}`;
  if (auth.bearer !== undefined) headers['authorization'] = `Bearer ${auth.bearer}`;
  return http(`${kbs}/kbs/v0/resource/${path}`, { headers });
}

/** The Trustee error variant of an error answer (last segment of `type`). */
export function variantOf(a: HttpAnswer): string | undefined {
  const t = (a.json as { type?: unknown } | undefined)?.type;
  return typeof t === 'string' ? t.split('/').pop() : undefined;
}
