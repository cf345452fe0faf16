/**
 * Admin endpoints of hardware identity (issue 3), used by `keyhold node` and `keyhold ca`. All sit
 * behind the `admin` middleware (signed admin JWT). These are the only writers of the EK allowlist
 * and CA store besides the owner's own files: nothing on the attestation path can reach them.
 *
 *   POST   /kbs/v0/admin/ek-allowlist          {"ekHash","note"?} → {"ekHash"}
 *   DELETE /kbs/v0/admin/ek-allowlist/:ekHash  → 204, 404 when not listed
 *   GET    /kbs/v0/admin/ek-allowlist          → {"ekHashes":[...]}
 *   POST   /kbs/v0/admin/nodes/:nodeId/revoke  → EnrolmentRecord
 *   DELETE /kbs/v0/admin/nodes/:nodeId         → 204 (record removed: the node must re-activate), 404
 *   GET    /kbs/v0/admin/nodes                 → {"nodes":[EnrolmentRecord...]}
 *   POST   /kbs/v0/admin/ek-ca                 PEM or DER body (application/octet-stream) → {"added":[...]}
 *   GET    /kbs/v0/admin/ek-ca                 → {"certificates":[...]}
 */
import type { Context } from 'hono';
import { z } from 'zod';
import type { KbsEnv } from '../app-env.js';
import type { IdentityServices } from '../attestation/tpm/identity-services.js';
import { KbsError } from '../errors.js';
import { normaliseEkHash } from '../identity/ek-hash.js';
import { IdentityStoreError } from '../identity/errors.js';
import { readJsonBody } from './json-body.js';

const AllowSchema = z.strictObject({
  ekHash: z.string().regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hex characters'),
  note: z.string().max(256).optional(),
});

function services(c: Context<KbsEnv>): IdentityServices {
  const s = c.get('deps').identity;
  if (s === undefined) throw new KbsError('INVALID_RESOURCE_PATH', 'hardware identity is not enabled on this KBS');
  return s;
}

/** Map identity-store failures to the KBS table: bad input 400, unreadable store 503. */
async function store<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (!(err instanceof IdentityStoreError)) throw err;
    if (err.code === 'EK_HASH_INVALID' || err.code === 'CA_STORE_INVALID') throw new KbsError('BAD_REQUEST', err.message, { cause: err });
    throw new KbsError('STORAGE_UNAVAILABLE', 'identity store is unavailable, retry later', { cause: err });
  }
}

function hashParam(c: Context<KbsEnv>, name: string): string {
  try {
    // SECURITY: the id becomes a file name; only 64 hex characters pass (path traversal, CWE-22).
    return normaliseEkHash(c.req.param(name) ?? '');
  } catch (err) {
    throw new KbsError('BAD_REQUEST', `${name} must be 64 hex characters`, { cause: err });
  }
}

export async function handleAddEkAllowlist(c: Context<KbsEnv>): Promise<Response> {
  const s = services(c);
  const body = await readJsonBody(c, AllowSchema);
  const ekHash = body.ekHash.toLowerCase();
  await store(() => s.allowlist.add(ekHash, body.note !== undefined ? { note: body.note } : {}));
  c.get('log').info({ ekHash, admin: c.get('admin')?.identity }, 'EK allowlisted');
  return c.json({ ekHash });
}

export async function handleRemoveEkAllowlist(c: Context<KbsEnv>): Promise<Response> {
  const s = services(c);
  const ekHash = hashParam(c, 'ekHash');
  if (!(await store(() => s.allowlist.remove(ekHash)))) throw new KbsError('RESOURCE_NOT_FOUND', 'EK is not in the allowlist');
  c.get('log').info({ ekHash, admin: c.get('admin')?.identity }, 'EK removed from the allowlist');
  return c.body(null, 204);
}

export async function handleListEkAllowlist(c: Context<KbsEnv>): Promise<Response> {
  const s = services(c);
  return c.json({ ekHashes: await store(() => s.allowlist.list()) });
}

export async function handleRevokeNode(c: Context<KbsEnv>): Promise<Response> {
  const s = services(c);
  const nodeId = hashParam(c, 'nodeId');
  const rec = await store(() => s.enrolments.revoke(nodeId, new Date(c.get('deps').now?.() ?? Date.now())));
  c.get('log').info({ node: nodeId, admin: c.get('admin')?.identity }, 'node revoked');
  return c.json(rec);
}

export async function handleRemoveNode(c: Context<KbsEnv>): Promise<Response> {
  const s = services(c);
  const nodeId = hashParam(c, 'nodeId');
  if (!(await store(() => s.enrolments.remove(nodeId)))) throw new KbsError('RESOURCE_NOT_FOUND', 'no enrolment record for this node');
  c.get('log').info({ node: nodeId, admin: c.get('admin')?.identity }, 'node record removed');
  return c.body(null, 204);
}

export async function handleListNodes(c: Context<KbsEnv>): Promise<Response> {
  const s = services(c);
  return c.json({ nodes: await store(() => s.enrolments.list()) });
}

export async function handleAddEkCa(c: Context<KbsEnv>): Promise<Response> {
  const s = services(c);
  const ct = (c.req.header('content-type') ?? '').trim().toLowerCase();
  // SECURITY: certificates are uploaded as raw bytes only; a JSON or form body is a client mix-up
  // and is refused rather than guessed at.
  if (!/^application\/(octet-stream|pkix-cert|x-pem-file|x-x509-ca-cert)\b/.test(ct)) {
    throw new KbsError('UNSUPPORTED_MEDIA_TYPE', 'upload CA certificates as application/octet-stream (PEM or DER)');
  }
  const bytes = new Uint8Array(await c.req.arrayBuffer());
  if (bytes.length === 0) throw new KbsError('BAD_REQUEST', 'empty certificate upload');
  const added = await store(() => s.ca.add(bytes));
  c.get('log').info({ added: added.map((e) => e.sha256), admin: c.get('admin')?.identity }, 'EK CA certificates added');
  return c.json({ added });
}

export function handleListEkCa(c: Context<KbsEnv>): Response {
  return c.json({ certificates: services(c).ca.entries });
}
