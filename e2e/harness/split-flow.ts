import { flattenedDecrypt, type FlattenedJWE } from 'jose';
import { PROTOCOL_VERSION, runtimeDataDigest, type TeePubkey } from '@keyhold/protocol';
import { generateTeeKeyPair, type TpmAttester } from '@keyhold/attestation-agent';
import { http, type HttpAnswer } from './raw-flow.js';

/** Where each step of one flow is sent (the same URL for all three, or one KBS replica each). */
export interface FlowTargets {
  readonly auth: string;
  readonly attest: string;
  readonly resource: string;
}

export interface SplitFlow {
  readonly auth: HttpAnswer;
  readonly attest?: HttpAnswer;
  readonly resource?: HttpAnswer;
  readonly cookie?: string;
  readonly token?: string;
  /** The released secret (decrypted with the flow's tee key), when the resource step answered 200. */
  readonly secret?: string;
  /** The step that failed, when one did. */
  readonly failedAt?: 'auth' | 'attest' | 'resource';
}

/**
 * One complete KBS flow driven by the real agent attester (its TPM quote, identity contributors
 * and credential activation), each step sent to its own URL: the session cookie is carried by
 * hand from one KBS replica to the next, as a client behind a balancer without affinity does.
 */
export async function splitFlow(to: FlowTargets, attester: TpmAttester, resourcePath: string, opts: { useBearer?: boolean } = {}): Promise<SplitFlow> {
  const extra = await attester.requestExtraParams();
  const auth = await http(`${to.auth}/kbs/v0/auth`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ version: PROTOCOL_VERSION, tee: 'tpm', 'extra-params': extra }),
  });
  const cookie = /kbs-session-id=([^;]+)/.exec(auth.headers.get('set-cookie') ?? '')?.[1];
  if (auth.status !== 200 || cookie === undefined) return { auth, failedAt: 'auth' };
  const ch = auth.json as { nonce: string; 'extra-params': unknown };
  const challengeExtra = typeof ch['extra-params'] === 'object' && ch['extra-params'] !== null ? (ch['extra-params'] as Record<string, unknown>) : {};
  const teeKey = await generateTeeKeyPair('ec');
  const reportData = runtimeDataDigest({ nonce: ch.nonce, teePubkey: teeKey.publicJwk as TeePubkey, additionalEvidence: '' });
  const { primary } = await attester.evidence({ nonce: ch.nonce, teePubkey: teeKey.publicJwk as TeePubkey, reportData, hashAlgorithm: 'sha384', challengeExtra });
  const attest = await http(`${to.attest}/kbs/v0/attest`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', cookie: `kbs-session-id=${cookie}` },
    body: JSON.stringify({ 'runtime-data': { nonce: ch.nonce, 'tee-pubkey': teeKey.publicJwk }, 'tee-evidence': { primary_evidence: primary, additional_evidence: '' } }),
  });
  if (attest.status !== 200) return { auth, attest, cookie, failedAt: 'attest' };
  const token = (attest.json as { token: string }).token;
  const resource = await http(`${to.resource}/kbs/v0/resource/${resourcePath}`, {
    headers: opts.useBearer === true ? { authorization: `Bearer ${token}` } : { cookie: `kbs-session-id=${cookie}` },
  });
  if (resource.status !== 200) return { auth, attest, resource, cookie, token, failedAt: 'resource' };
  const { plaintext } = await flattenedDecrypt(resource.json as FlattenedJWE, teeKey.privateKey);
  return { auth, attest, resource, cookie, token, secret: Buffer.from(plaintext).toString('utf8') };
}

/** The index of the backend that served an answer that came through the test balancer. */
export function backendOf(a: HttpAnswer | undefined): number | undefined {
  const v = a?.headers.get('x-kh-backend');
  return v === null || v === undefined ? undefined : Number(v);
}
