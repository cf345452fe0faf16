import { ProtocolError } from './errors.js';
import type { KbsRequest, ParsedAttestation, TeePubkey } from './messages.js';

/**
 * Hand-written checks of the two messages an attester sends on every flow (`/auth`'s Request,
 * `/attest`'s Attestation) and of the tee public key, for the KBS's hot path. They accept exactly
 * what `RequestSchema`, `AttestationSchema` and `TeePubkeySchema` (messages.ts, zod) accept and
 * return the same values (message-checks.fuzz.test.ts compares them on generated JSON), at a
 * fraction of the CPU and garbage of a schema walk. The zod schemas stay the definition of the
 * messages (and their TypeScript types); change both together.
 *
 * Input is what `JSON.parse` returns. Unknown members are dropped (zod's `object` strips them), except
 * in a tee key, where they are refused (`strictObject`). Failures are `PROTOCOL_MALFORMED`
 * ProtocolErrors whose message is `<member path>: <what was expected>`, never the value.
 */

const BASE64URL = /^[A-Za-z0-9_-]+$/;
const EC_CURVES: ReadonlySet<string> = new Set(['P-256', 'P-384', 'P-521']);
const EC_MEMBERS: ReadonlySet<string> = new Set(['kty', 'crv', 'alg', 'x', 'y']);
const RSA_MEMBERS: ReadonlySet<string> = new Set(['kty', 'alg', 'n', 'e']);

type JsonObject = Record<string, unknown>;

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function fail(path: string, expected: string): never {
  throw new ProtocolError('PROTOCOL_MALFORMED', `${path === '' ? 'body' : path}: ${expected}`);
}

function objectAt(v: unknown, path: string): JsonObject {
  if (!isObject(v)) fail(path, 'expected an object');
  return v;
}

function stringAt(v: unknown, path: string): string {
  if (typeof v !== 'string') fail(path, 'expected a string');
  return v;
}

/** `/auth`'s body: `{version, tee, extra-params?}` (extra-params an object or a string). */
export function checkKbsRequest(body: unknown): KbsRequest {
  const o = objectAt(body, '');
  const version = stringAt(o['version'], 'version');
  const tee = stringAt(o['tee'], 'tee');
  const extra = o['extra-params'];
  if (extra === undefined) return { version, tee };
  if (typeof extra === 'string') return { version, tee, 'extra-params': extra };
  if (!isObject(extra)) fail('extra-params', 'expected an object or a string');
  return { version, tee, 'extra-params': copyRecord(extra) };
}

/**
 * A fresh object with the record's own members (as zod's `record` returns). A member named
 * `__proto__` is dropped, as zod drops it: assigned to a fresh object it would set its prototype.
 */
function copyRecord(o: JsonObject): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(o)) {
    // SECURITY: a `__proto__` member of parsed JSON never becomes a prototype (prototype pollution).
    if (key === '__proto__') continue;
    out[key] = o[key];
  }
  return out;
}

/**
 * The public JWK an attester binds: EC (P-256/384/521, x and y base64url) or RSA (n and e
 * base64url), `alg` a string when present, and no other member. Undefined when it is not one.
 */
export function checkTeePubkey(v: unknown): TeePubkey | undefined {
  if (!isObject(v)) return undefined;
  const kty = v['kty'];
  const allowed = kty === 'EC' ? EC_MEMBERS : kty === 'RSA' ? RSA_MEMBERS : undefined;
  if (allowed === undefined) return undefined;
  for (const key of Object.keys(v)) {
    // SECURITY: a private member (`d`, RSA primes) or any unknown member makes the key unusable, so
    // nothing can ride along with the key the secret is wrapped to (key confusion) (RFC 7517 §4).
    if (!allowed.has(key)) return undefined;
  }
  const alg = v['alg'];
  if (alg !== undefined && typeof alg !== 'string') return undefined;
  if (kty === 'EC') {
    const { crv, x, y } = v;
    if (typeof crv !== 'string' || !EC_CURVES.has(crv) || !isBase64url(x) || !isBase64url(y)) return undefined;
    return { kty, crv: crv as 'P-256' | 'P-384' | 'P-521', ...(alg !== undefined ? { alg } : {}), x, y };
  }
  const { n, e } = v;
  if (!isBase64url(n) || !isBase64url(e)) return undefined;
  return { kty: 'RSA', ...(alg !== undefined ? { alg } : {}), n, e };
}

function isBase64url(v: unknown): v is string {
  return typeof v === 'string' && BASE64URL.test(v);
}

/** `/attest`'s body: init-data (optional, nullable), runtime-data (nonce, tee key), tee-evidence. */
export function checkAttestation(body: unknown): ParsedAttestation {
  const o = objectAt(body, '');
  const initRaw = o['init-data'];
  let initData: { format: string; body: string } | null | undefined;
  if (initRaw === null) initData = null;
  else if (initRaw !== undefined) {
    const init = objectAt(initRaw, 'init-data');
    initData = { format: stringAt(init['format'], 'init-data.format'), body: stringAt(init['body'], 'init-data.body') };
  }
  const runtime = objectAt(o['runtime-data'], 'runtime-data');
  const nonce = stringAt(runtime['nonce'], 'runtime-data.nonce');
  const teePubkey = checkTeePubkey(runtime['tee-pubkey']);
  if (teePubkey === undefined) fail('runtime-data.tee-pubkey', 'expected an EC or RSA public JWK');
  const evidence = objectAt(o['tee-evidence'], 'tee-evidence');
  const primary = evidence['primary_evidence'];
  if (primary === undefined) fail('tee-evidence.primary_evidence', 'expected a value');
  const additionalRaw = evidence['additional_evidence'];
  const additional = additionalRaw === undefined ? '' : stringAt(additionalRaw, 'tee-evidence.additional_evidence');
  return {
    ...(initData !== undefined ? { 'init-data': initData } : {}),
    'runtime-data': { nonce, 'tee-pubkey': teePubkey },
    'tee-evidence': { primary_evidence: primary, additional_evidence: additional },
  };
}
