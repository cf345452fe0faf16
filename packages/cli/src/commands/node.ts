/**
 * `keyhold node allow|disallow|revoke|remove|list|status|unban` — manage which TPMs may enrol with a
 * KBS, and watch the nodes it attests continuously.
 *
 * Admin endpoints used (all under the KBS URL, `Authorization: Bearer <admin JWT>`):
 *   POST   /kbs/v0/admin/ek-allowlist            {"ekHash","note"?}  → {"ekHash"}
 *   DELETE /kbs/v0/admin/ek-allowlist/<ekHash>                       → 204 (404 if not listed)
 *   GET    /kbs/v0/admin/ek-allowlist                                → {"ekHashes":[...]}
 *   POST   /kbs/v0/admin/nodes/<nodeId>/revoke                       → NodeRecord
 *   POST   /kbs/v0/admin/nodes/<nodeId>/unban                        → NodeRecord
 *   DELETE /kbs/v0/admin/nodes/<nodeId>                              → 204 (record removed; the node must re-activate)
 *   GET    /kbs/v0/admin/nodes?state=&after=&limit=                  → {"nodes":[NodeRecord...],"next"?} (read page by page)
 *   GET    /kbs/v0/admin/nodes/<nodeId>                              → {"node":NodeRecord,"history":[...]}
 * A node id is the EK hash (64 hex) or, for a node trusted only by its AK, `ak:` + 64 hex.
 */
import { readFile } from 'node:fs/promises';
import { CliError, UsageError } from '@keyhold/command-line';
import { ekHash } from '@keyhold/verifier';
import { EXIT } from '../command.js';
import type { KeyholdRun } from '../keyhold-run.js';
import { ekSpkiFromPublicFile } from './ek-hash.js';

const HASH = /^[0-9a-fA-F]{64}$/;
const NODE_ID = /^(?:ak:)?[0-9a-fA-F]{64}$/;
/** Page size asked of GET /kbs/v0/admin/nodes, and the most pages read (a runaway cursor stops there). */
const PAGE_LIMIT = 500;
const MAX_PAGES = 10_000;

/** A node record as the KBS answers it (api-contract.md); fields this CLI does not know are passed through. */
export interface NodeRecord {
  nodeId: string;
  ekHash?: string;
  akName: string | null;
  enrolledAt?: string;
  firstSeenAt?: string;
  lastSeenAt?: string;
  lastAttestedAt?: string;
  lastVerdict?: { status: string; policy?: string; reason?: string; at: string };
  state?: 'active' | 'stale' | 'banned' | 'revoked';
  banned?: { at: string; reason: string };
  revoked?: boolean;
  revokedAt?: string;
  certificates?: { serial: string; notAfter: string }[];
  spiffeId?: string;
}

interface HistoryEntry {
  at: string;
  kind: string;
  status?: string;
  policy?: string;
  resource?: string;
  reason?: string;
}

function hashArg(text: string | undefined, what: string): string {
  if (text === undefined || !HASH.test(text)) throw new UsageError(`${what} must be 64 hex digits (the EK hash; see 'keyhold ek-hash')`);
  return text.toLowerCase();
}

/** A node id: the EK hash, or `ak:` + the AK hash; anything else never reaches the URL path. */
function nodeIdArg(text: string | undefined): string {
  // SECURITY: the id becomes a segment of the admin URL path; only the two hex forms pass (path injection).
  if (text === undefined || !NODE_ID.test(text)) throw new UsageError("NODE_ID must be 64 hex digits (the EK hash; see 'keyhold ek-hash') or ak: + 64 hex digits");
  return text.toLowerCase();
}

/** The state to show: the record's, or (older KBS) enrolled/revoked from the `revoked` flag. */
function stateOf(n: NodeRecord): string {
  return n.state ?? (n.revoked === true ? 'revoked' : 'active');
}

function out(run: KeyholdRun, human: string, json: unknown): void {
  run.io.stdout.write(run.json ? `${JSON.stringify(json)}\n` : `${human}\n`);
}

export async function allowNode(arg: string | undefined, o: { ekPub?: string; note?: string }, run: KeyholdRun): Promise<number> {
  let hash: string;
  if (o.ekPub !== undefined) {
    if (arg !== undefined) throw new UsageError('give either EK_HASH or --ek-pub, not both');
    hash = ekHash(ekSpkiFromPublicFile(new Uint8Array(await readFile(o.ekPub))));
  } else {
    hash = hashArg(arg, 'allow needs EK_HASH or --ek-pub FILE:');
  }
  const res = await (await run.admin()).call('POST', '/kbs/v0/admin/ek-allowlist', { json: { ekHash: hash, ...(o.note !== undefined ? { note: o.note } : {}) } });
  out(run, `allowed ${hash}`, res ?? { ekHash: hash });
  return EXIT.OK;
}

export async function disallowNode(arg: string, run: KeyholdRun): Promise<number> {
  const hash = hashArg(arg, 'EK_HASH');
  await (await run.admin()).call('DELETE', `/kbs/v0/admin/ek-allowlist/${hash}`);
  out(run, `removed ${hash} from the allowlist`, { removed: hash });
  return EXIT.OK;
}

export async function revokeNode(arg: string, run: KeyholdRun): Promise<number> {
  const id = nodeIdArg(arg);
  const res = await (await run.admin()).call('POST', `/kbs/v0/admin/nodes/${id}/revoke`);
  out(run, `revoked ${id}`, res ?? { nodeId: id, revoked: true });
  return EXIT.OK;
}

export async function removeNode(arg: string, run: KeyholdRun): Promise<number> {
  const id = nodeIdArg(arg);
  await (await run.admin()).call('DELETE', `/kbs/v0/admin/nodes/${id}`);
  out(run, `removed enrolment of ${id}`, { removed: id });
  return EXIT.OK;
}

/**
 * Every node record, page by page (`next` cursor). A KBS that hands back a cursor that does not move
 * forward, or more than MAX_PAGES pages, is reported instead of looped on.
 */
export async function fetchAllNodes(run: KeyholdRun, state?: string): Promise<NodeRecord[]> {
  const admin = await run.admin();
  const nodes: NodeRecord[] = [];
  let after: string | undefined;
  for (let page = 0; page < MAX_PAGES; page++) {
    const q = new URLSearchParams({ limit: String(PAGE_LIMIT), ...(state !== undefined ? { state } : {}), ...(after !== undefined ? { after } : {}) });
    const res = (await admin.call('GET', `/kbs/v0/admin/nodes?${q.toString()}`)) as { nodes?: NodeRecord[]; next?: unknown } | null;
    nodes.push(...(res?.nodes ?? []));
    const next = res?.next;
    if (next === undefined || next === null) return nodes;
    // SECURITY: a cursor that is not a node id, or does not move forward, would loop forever (or inject a query).
    if (typeof next !== 'string' || !NODE_ID.test(next) || (after !== undefined && next <= after)) throw new CliError('KBS_PROTOCOL', `GET /kbs/v0/admin/nodes: the KBS answered a bad page cursor ${JSON.stringify(String(next).slice(0, 80))}`);
    after = next;
  }
  throw new CliError('KBS_PROTOCOL', `GET /kbs/v0/admin/nodes: more than ${MAX_PAGES} pages`);
}

export async function listNodes(run: KeyholdRun): Promise<number> {
  const admin = await run.admin();
  const nodes = await fetchAllNodes(run);
  const allow = ((await admin.call('GET', '/kbs/v0/admin/ek-allowlist')) as { ekHashes?: string[] } | null)?.ekHashes ?? [];
  if (run.json) {
    run.io.stdout.write(`${JSON.stringify({ nodes, allowlist: allow })}\n`);
    return EXIT.OK;
  }
  const allowed = new Set(allow);
  const lines = nodes.map((n) => {
    const state = stateOf(n);
    const label = state === 'revoked' ? 'REVOKED ' : state === 'banned' ? 'BANNED  ' : n.enrolledAt !== undefined ? 'enrolled' : state.padEnd(8);
    // A node revoked (or seen) before it ever enrolled has no enrolment time.
    const since = n.enrolledAt ?? n.firstSeenAt;
    return `${n.nodeId}  ${label}  ${allowed.has(n.nodeId) ? 'allowlisted' : '           '}  ak=${n.akName ?? '-'}  ${since !== undefined ? `since=${since}` : 'not enrolled'}`;
  });
  const enrolled = new Set(nodes.map((n) => n.nodeId));
  for (const h of allow) if (!enrolled.has(h)) lines.push(`${h}  not enrolled  allowlisted`);
  run.io.stdout.write(lines.length > 0 ? `${lines.join('\n')}\n` : '');
  return EXIT.OK;
}

const NODE_STATES = ['active', 'stale', 'banned', 'revoked'];

/** Text for a table cell: one line, bounded. */
function cell(v: string | undefined, max = 60): string {
  if (v === undefined || v === '') return '-';
  const one = v.replace(/[\x00-\x1f\x7f]+/g, ' ');
  return one.length > max ? `${one.slice(0, max - 1)}…` : one;
}

function lastCertificate(n: NodeRecord): { serial: string; notAfter: string } | undefined {
  return n.certificates?.at(-1);
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd()).join('\n');
}

/**
 * `keyhold node status [NODE_ID] [--state S]`: every node as a table (state, last verdict, when,
 * first failing reason, SPIFFE ID, certificate expiry), or one node with its history.
 */
export async function nodeStatus(arg: string | undefined, o: { state?: string }, run: KeyholdRun): Promise<number> {
  if (arg !== undefined) {
    if (o.state !== undefined) throw new UsageError('--state filters the list; it does not go with NODE_ID');
    const id = nodeIdArg(arg);
    const res = (await (await run.admin()).call('GET', `/kbs/v0/admin/nodes/${id}`)) as { node?: NodeRecord; history?: HistoryEntry[] } | null;
    if (run.json) {
      run.io.stdout.write(`${JSON.stringify(res)}\n`);
      return EXIT.OK;
    }
    const n = res?.node;
    if (n === undefined) throw new CliError('KBS_PROTOCOL', `GET /kbs/v0/admin/nodes/${id}: the answer has no node`);
    const cert = lastCertificate(n);
    const fields: [string, string | undefined][] = [
      ['node', n.nodeId],
      ['state', stateOf(n)],
      ['ek hash', n.ekHash],
      ['ak name', n.akName ?? undefined],
      ['spiffe id', n.spiffeId],
      ['enrolled', n.enrolledAt],
      ['first seen', n.firstSeenAt],
      ['last seen', n.lastSeenAt],
      ['last attested', n.lastAttestedAt],
      ['last verdict', n.lastVerdict !== undefined ? `${n.lastVerdict.status} at ${n.lastVerdict.at}${n.lastVerdict.policy !== undefined ? ` (policy ${n.lastVerdict.policy})` : ''}` : undefined],
      ['reason', n.lastVerdict?.reason],
      ['banned', n.banned !== undefined ? `${n.banned.at}: ${n.banned.reason}` : undefined],
      ['revoked', n.revokedAt],
      ['certificate', cert !== undefined ? `serial ${cert.serial}, expires ${cert.notAfter}` : undefined],
    ];
    const lines = fields.filter(([, v]) => v !== undefined).map(([k, v]) => `${`${k}:`.padEnd(15)}${cell(v, 400)}`);
    const history = res?.history ?? [];
    lines.push('', `history (${history.length}, newest first):`);
    for (const h of history) lines.push(`  ${h.at}  ${h.kind.padEnd(7)}  ${cell(h.status, 16).padEnd(15)}  ${cell(h.policy ?? h.resource, 40)}${h.reason !== undefined ? `  ${cell(h.reason, 200)}` : ''}`);
    run.io.stdout.write(`${lines.join('\n')}\n`);
    return EXIT.OK;
  }
  if (o.state !== undefined && !NODE_STATES.includes(o.state)) throw new UsageError(`--state must be one of ${NODE_STATES.join(', ')}`);
  const nodes = await fetchAllNodes(run, o.state);
  if (run.json) {
    run.io.stdout.write(`${JSON.stringify({ nodes })}\n`);
    return EXIT.OK;
  }
  const rows = [['NODE', 'STATE', 'VERDICT', 'AT', 'REASON', 'SPIFFE ID', 'CERT EXPIRES']];
  for (const n of nodes) {
    const v = n.lastVerdict;
    rows.push([n.nodeId, stateOf(n), cell(v?.status, 16), cell(v?.at ?? n.lastAttestedAt, 30), cell(n.state === 'banned' ? (n.banned?.reason ?? v?.reason) : v?.reason), cell(n.spiffeId, 120), cell(lastCertificate(n)?.notAfter, 30)]);
  }
  run.io.stdout.write(nodes.length > 0 ? `${table(rows)}\n` : '');
  return EXIT.OK;
}

/** `keyhold node unban NODE_ID`: clear a ban (owner only, audited by the KBS); prints the node's new state. */
export async function unbanNode(arg: string, run: KeyholdRun): Promise<number> {
  const id = nodeIdArg(arg);
  const res = (await (await run.admin()).call('POST', `/kbs/v0/admin/nodes/${id}/unban`)) as NodeRecord | null;
  out(run, `unbanned ${id}${res?.state !== undefined ? ` (state ${res.state})` : ''}`, res ?? { nodeId: id });
  return EXIT.OK;
}
