/**
 * Admin endpoints of hardware identity (issue 3), used by `keyhold node` and `keyhold ca`. All sit
 * behind the `admin` middleware (signed admin JWT). These are the only writers of the EK allowlist
 * and CA store: nothing on the attestation path can reach them. Every write is one atomic state
 * operation (node records by compare-and-swap), so it is effective on every replica at once.
 *
 *   POST   /kbs/v0/admin/ek-allowlist          {"ekHash","note"?} → {"ekHash"}
 *   DELETE /kbs/v0/admin/ek-allowlist/:ekHash  → 204, 404 when not listed
 *   GET    /kbs/v0/admin/ek-allowlist          → {"ekHashes":[...],"entries":[{ekHash,note?,addedAt}]}
 *   POST   /kbs/v0/admin/nodes/:nodeId/revoke  → the node record (+ "revoked": true)
 *   DELETE /kbs/v0/admin/nodes/:nodeId         → 204 (record removed: the node must re-activate), 404
 *   (listing, one node's record and history, unban: admin-nodes.ts; node ids: EK hash or `ak:<hex>`)
 *   POST   /kbs/v0/admin/ek-ca                 PEM or DER body (application/octet-stream) → {"added":[...],"alreadyPresent":[...]}
 *   GET    /kbs/v0/admin/ek-ca                 → {"certificates":[...]}
 *   DELETE /kbs/v0/admin/ek-ca/:sha256         → 204 (an uploaded certificate removed), 404 (absent, or from the configured ek_ca_dir)
 */
import type { Context } from 'hono';
import { z } from 'zod';
import type { KbsEnv } from '../app-env.js';
import { KbsError } from '../errors.js';
import { normaliseEkHash } from '../identity/ek-hash.js';
import { IdentityStoreError } from '../identity/errors.js';
import { removeNode, revokeNode } from '../identity/node-records.js';
import { emitEvent } from '../notify/emit-event.js';
import { auditEvent } from '../owners/record-event.js';
import { readJsonBody } from './json-body.js';
import { apiNode, nodeIdParam } from './admin-nodes.js';

const AllowSchema = z.strictObject({
  ekHash: z.string().regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hex characters'),
  note: z.string().max(256).optional(),
});

/** Map identity-store failures to the KBS table: bad input 400, unreadable store 503 (state errors keep their own mapping). */
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
  const s = c.get('deps').state;
  const body = await readJsonBody(c, AllowSchema);
  const ekHash = body.ekHash.toLowerCase();
  await store(() => s.ekAllowlist.add(ekHash, body.note !== undefined ? { note: body.note } : {}));
  c.get('log').info({ ekHash, admin: c.get('admin')?.identity }, 'EK allowlisted');
  return c.json({ ekHash });
}

export async function handleRemoveEkAllowlist(c: Context<KbsEnv>): Promise<Response> {
  const s = c.get('deps').state;
  const ekHash = hashParam(c, 'ekHash');
  if (!(await store(() => s.ekAllowlist.remove(ekHash)))) throw new KbsError('RESOURCE_NOT_FOUND', 'EK is not in the allowlist');
  c.get('log').info({ ekHash, admin: c.get('admin')?.identity }, 'EK removed from the allowlist');
  return c.body(null, 204);
}

export async function handleListEkAllowlist(c: Context<KbsEnv>): Promise<Response> {
  const entries = await store(() => c.get('deps').state.ekAllowlist.list());
  return c.json({ ekHashes: entries.map((e) => e.ekHash), entries });
}

export async function handleRevokeNode(c: Context<KbsEnv>): Promise<Response> {
  const deps = c.get('deps');
  const nodeId = nodeIdParam(c);
  const now = deps.now?.() ?? Date.now();
  const before = await deps.state.nodes.get(nodeId);
  const rec = await store(() => revokeNode(deps.state.nodes, nodeId, new Date(now)));
  const admin = c.get('admin')?.identity;
  await auditEvent(c, 'admin', { actor: admin, action: 'node.revoke', node: nodeId, verdict: 'ok' });
  if (before?.state !== 'revoked') emitEvent(c, { type: 'node.revoked', node: nodeId, ...(admin !== undefined ? { reason: `by ${admin}` } : {}) });
  c.get('log').info({ node: nodeId, admin }, 'node revoked');
  return c.json(apiNode(c, rec, now));
}

export async function handleRemoveNode(c: Context<KbsEnv>): Promise<Response> {
  const nodes = c.get('deps').state.nodes;
  const nodeId = nodeIdParam(c);
  if (!(await store(() => removeNode(nodes, nodeId)))) throw new KbsError('RESOURCE_NOT_FOUND', 'no enrolment record for this node');
  await auditEvent(c, 'admin', { actor: c.get('admin')?.identity, action: 'node.remove', node: nodeId, verdict: 'ok' });
  c.get('log').info({ node: nodeId, admin: c.get('admin')?.identity }, 'node record removed');
  return c.body(null, 204);
}

export async function handleAddEkCa(c: Context<KbsEnv>): Promise<Response> {
  const ca = c.get('deps').state.ekCa;
  const ct = (c.req.header('content-type') ?? '').trim().toLowerCase();
  // SECURITY: certificates are uploaded as raw bytes only; a JSON or form body is a client mix-up
  // and is refused rather than guessed at.
  if (!/^application\/(octet-stream|pkix-cert|x-pem-file|x-x509-ca-cert)\b/.test(ct)) {
    throw new KbsError('UNSUPPORTED_MEDIA_TYPE', 'upload CA certificates as application/octet-stream (PEM or DER)');
  }
  const bytes = new Uint8Array(await c.req.arrayBuffer());
  if (bytes.length === 0) throw new KbsError('BAD_REQUEST', 'empty certificate upload');
  const { added, alreadyPresent } = await store(() => ca.add(bytes));
  c.get('log').info({ added: added.map((e) => e.sha256), admin: c.get('admin')?.identity }, 'EK CA certificates added');
  return c.json({ added, alreadyPresent });
}

export async function handleListEkCa(c: Context<KbsEnv>): Promise<Response> {
  return c.json({ certificates: (await c.get('deps').state.ekCa.snapshot()).entries });
}

export async function handleRemoveEkCa(c: Context<KbsEnv>): Promise<Response> {
  const sha256 = (c.req.param('sha256') ?? '').toLowerCase();
  // SECURITY: only a certificate hash reaches the store (path and key injection).
  if (!/^[0-9a-f]{64}$/.test(sha256)) throw new KbsError('BAD_REQUEST', 'sha256 must be 64 hex characters');
  if (!(await store(() => c.get('deps').state.ekCa.remove(sha256)))) throw new KbsError('RESOURCE_NOT_FOUND', 'no uploaded EK CA certificate with this SHA-256');
  c.get('log').info({ sha256, admin: c.get('admin')?.identity }, 'EK CA certificate removed');
  return c.body(null, 204);
}
