/**
 * Node records for owners (issue 13; /work/briefs/api-contract.md "Nodes"). Behind the admin
 * middleware; `state` is computed (`stale` from the last successful attestation).
 *
 *   GET  /kbs/v0/admin/nodes[?state=active|stale|banned|revoked&after=<nodeId>&limit=1..1000]
 *        → {"nodes":[record + "spiffeId"? + "revoked" + "may"], "next"?}   (node-id order)
 *   GET  /kbs/v0/admin/nodes/:nodeId → {"node": record + "spiffeId"? + "may", "history": [...]} (404 unknown)
 *        `may` = {"unban","revoke","remove"}: whether the caller's role may (advisory, for the console).
 *        history: newest first, at most 100, from the audit trail records naming the node:
 *        {"at","kind":"attest"|"release"|"deny","status"?,"policy"?,"resource"?,"reason"?}
 *   POST /kbs/v0/admin/nodes/:nodeId/unban → the record (banned → active), audited, `node.unbanned`
 * Revoke and remove stay in admin-identity.ts.
 */
import type { Context } from 'hono';
import type { AuditRecord } from '@keyhold/audit';
import type { KbsEnv } from '../app-env.js';
import { DEFAULT_CONTINUOUS } from '../continuous/continuous-config.js';
import { nodeSpiffeId } from '../continuous/node-identity.js';
import { effectiveState } from '../continuous/node-lifecycle.js';
import { KbsError } from '../errors.js';
import { IdentityStoreError } from '../identity/errors.js';
import { normaliseNodeId, nodeView, unbanNode } from '../identity/node-records.js';
import { emitEvent } from '../notify/emit-event.js';
import { auditEvent } from '../owners/record-event.js';
import { isNodeId } from '../state/node-record.js';
import type { NodeLifecycle, NodeRecord } from '../state/ports.js';

const NODE_STATES: readonly NodeLifecycle[] = ['active', 'stale', 'banned', 'revoked'];
const MAX_PAGE = 1000;
/** Stored records scanned per request when filtering by a computed state (active/stale). */
const MAX_SCAN = 5000;
const MAX_HISTORY = 100;

export interface NodeHistoryEntry {
  readonly at: string;
  readonly kind: 'attest' | 'release' | 'deny';
  readonly status?: string;
  readonly policy?: string;
  readonly resource?: string;
  readonly reason?: string;
}

/** A node id from the path (EK hash or `ak:` id); 400 otherwise. */
export function nodeIdParam(c: Context<KbsEnv>): string {
  try {
    return normaliseNodeId(c.req.param('nodeId') ?? '');
  } catch (err) {
    if (err instanceof IdentityStoreError) throw new KbsError('BAD_REQUEST', 'nodeId must be 64 hex characters or ak:<64 hex>', { cause: err });
    throw err;
  }
}

/** The API view: the record with its computed state, `revoked`, and its SPIFFE ID when the trust domain is known. */
export function apiNode(c: Context<KbsEnv>, record: NodeRecord, nowMs: number): NodeRecord & { readonly revoked: boolean; readonly spiffeId?: string } {
  const deps = c.get('deps');
  const staleAfterMs = deps.continuous?.settings.staleAfterMs ?? DEFAULT_CONTINUOUS.staleAfterMs;
  const td = deps.continuous?.trustDomain;
  return { ...nodeView(record), state: effectiveState(record, nowMs, staleAfterMs), ...(td !== undefined ? { spiffeId: nodeSpiffeId(td, record.nodeId) } : {}) };
}

/** What the caller's role may do to the node (advisory, for the console's buttons; the POST/DELETE stay authoritative). */
function mayOf(c: Context<KbsEnv>, nodeId: string): { readonly unban: boolean; readonly revoke: boolean; readonly remove: boolean } {
  const allows = c.get('admin')?.allows;
  const base = `/kbs/v0/admin/nodes/${nodeId}`;
  if (allows === undefined) return { unban: true, revoke: true, remove: true };
  return { unban: allows('POST', `${base}/unban`), revoke: allows('POST', `${base}/revoke`), remove: allows('DELETE', base) };
}

export async function handleListNodes(c: Context<KbsEnv>): Promise<Response> {
  const deps = c.get('deps');
  const q = c.req.query();
  const state = q['state'];
  if (state !== undefined && !(NODE_STATES as readonly string[]).includes(state)) throw new KbsError('BAD_REQUEST', `state must be one of ${NODE_STATES.join(', ')}`);
  let after: string | undefined;
  if (q['after'] !== undefined) {
    // SECURITY: the cursor is a node id and nothing else reaches the backend (key injection).
    if (!isNodeId(q['after'])) throw new KbsError('BAD_REQUEST', 'after must be a node id');
    after = q['after'];
  }
  let limit = MAX_PAGE;
  if (q['limit'] !== undefined) {
    if (!/^[1-9][0-9]{0,5}$/.test(q['limit'])) throw new KbsError('BAD_REQUEST', 'limit must be a positive integer');
    limit = Math.min(MAX_PAGE, Number(q['limit']));
  }
  const nowMs = deps.now?.() ?? Date.now();
  if (state !== 'active' && state !== 'stale') {
    const page = await deps.state.nodes.list({ limit, ...(state !== undefined ? { state: state as NodeLifecycle } : {}), ...(after !== undefined ? { after } : {}) });
    return c.json({ nodes: page.nodes.map((r) => ({ ...apiNode(c, r, nowMs), may: mayOf(c, r.nodeId) })), ...(page.next !== undefined ? { next: page.next } : {}) });
  }
  // `active` and `stale` are both stored as `active`: scan stored-active pages, keep the computed
  // state asked for, and stop at `limit` matches or MAX_SCAN records (then `next` continues).
  const out: (ReturnType<typeof apiNode> & { may: ReturnType<typeof mayOf> })[] = [];
  let cursor = after;
  let scanned = 0;
  for (;;) {
    const page = await deps.state.nodes.list({ state: 'active', limit: Math.min(MAX_PAGE, Math.max(limit - out.length, 100)), ...(cursor !== undefined ? { after: cursor } : {}) });
    for (const r of page.nodes) {
      scanned++;
      cursor = r.nodeId;
      const v = apiNode(c, r, nowMs);
      if (v.state === state) out.push({ ...v, may: mayOf(c, r.nodeId) });
      if (out.length >= limit || scanned >= MAX_SCAN) break;
    }
    const last = page.nodes[page.nodes.length - 1]?.nodeId;
    if (last === undefined) return c.json({ nodes: out });
    // Stopped inside the page: more records follow the cursor.
    if (cursor !== last) return c.json({ nodes: out, next: cursor });
    if (page.next === undefined) return c.json({ nodes: out });
    if (out.length >= limit || scanned >= MAX_SCAN) return c.json({ nodes: out, next: cursor });
    cursor = page.next;
  }
}

export async function handleGetNode(c: Context<KbsEnv>): Promise<Response> {
  const deps = c.get('deps');
  const nodeId = nodeIdParam(c);
  const record = await deps.state.nodes.get(nodeId);
  if (record === undefined) throw new KbsError('RESOURCE_NOT_FOUND', 'no record for this node');
  const audit = deps.owners?.audit;
  let history: NodeHistoryEntry[] = [];
  if (audit !== undefined) {
    let records: AuditRecord[];
    try {
      records = await audit.query({ node: nodeId });
    } catch (cause) {
      throw new KbsError('STORAGE_UNAVAILABLE', 'the audit trail cannot be read', { cause });
    }
    history = historyOf(records.slice(-MAX_HISTORY * 2)).slice(-MAX_HISTORY).reverse();
  }
  return c.json({ node: { ...apiNode(c, record, deps.now?.() ?? Date.now()), may: mayOf(c, nodeId) }, history });
}

/** The audit records of a node as history entries (oldest first; admin and auth records left out). */
export function historyOf(records: readonly AuditRecord[]): NodeHistoryEntry[] {
  const out: NodeHistoryEntry[] = [];
  for (const r of records) {
    if (r.kind !== 'attest' && r.kind !== 'release' && r.kind !== 'deny') continue;
    const f = r.fields;
    const policy = f.policyId !== undefined ? `${f.policyId}@${f.policyVersion ?? 0}` : undefined;
    const resource = f.resourcePath ?? f.action;
    out.push({
      at: r.time,
      kind: r.kind,
      ...(r.kind === 'attest' && f.verdict !== undefined ? { status: f.verdict } : {}),
      ...(policy !== undefined ? { policy } : {}),
      ...(r.kind !== 'attest' && resource !== undefined ? { resource } : {}),
      ...(f.reason !== undefined ? { reason: f.reason } : {}),
    });
  }
  return out;
}

export async function handleUnbanNode(c: Context<KbsEnv>): Promise<Response> {
  const deps = c.get('deps');
  const nodeId = nodeIdParam(c);
  const r = await unbanNode(deps.state.nodes, nodeId);
  if (r === undefined) throw new KbsError('RESOURCE_NOT_FOUND', 'no record for this node');
  const admin = c.get('admin')?.identity;
  await auditEvent(c, 'admin', { actor: admin, action: 'node.unban', node: nodeId, verdict: r.changed ? 'ok' : 'not-banned' });
  if (r.changed) {
    const td = deps.continuous?.trustDomain;
    emitEvent(c, { type: 'node.unbanned', node: nodeId, ...(td !== undefined ? { spiffeId: nodeSpiffeId(td, nodeId) } : {}), ...(admin !== undefined ? { reason: `by ${admin}` } : {}) });
    c.get('log').info({ node: nodeId, admin }, 'node unbanned');
  }
  return c.json(apiNode(c, r.record, deps.now?.() ?? Date.now()));
}
