/**
 * `keyhold node allow|disallow|revoke|remove|list` — manage which TPMs may enrol with a KBS.
 *
 * Admin endpoints used (all under the KBS URL, `Authorization: Bearer <admin JWT>`):
 *   POST   /kbs/v0/admin/ek-allowlist            {"ekHash","note"?}  → {"ekHash"}
 *   DELETE /kbs/v0/admin/ek-allowlist/<ekHash>                       → 204 (404 if not listed)
 *   GET    /kbs/v0/admin/ek-allowlist                                → {"ekHashes":[...]}
 *   POST   /kbs/v0/admin/nodes/<nodeId>/revoke                       → EnrolmentRecord
 *   DELETE /kbs/v0/admin/nodes/<nodeId>                              → 204 (record removed; the node must re-activate)
 *   GET    /kbs/v0/admin/nodes                                       → {"nodes":[EnrolmentRecord...]}
 */
import { readFile } from 'node:fs/promises';
import { UsageError } from '@keyhold/command-line';
import { ekHash } from '@keyhold/verifier';
import { EXIT } from '../command.js';
import type { KeyholdRun } from '../keyhold-run.js';
import { ekSpkiFromPublicFile } from './ek-hash.js';

const HASH = /^[0-9a-fA-F]{64}$/;

interface NodeRecord {
  nodeId: string;
  akName: string | null;
  enrolledAt: string;
  revoked: boolean;
  revokedAt?: string;
}

function hashArg(text: string | undefined, what: string): string {
  if (text === undefined || !HASH.test(text)) throw new UsageError(`${what} must be 64 hex digits (the EK hash; see 'keyhold ek-hash')`);
  return text.toLowerCase();
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
  const id = hashArg(arg, 'NODE_ID');
  const res = await (await run.admin()).call('POST', `/kbs/v0/admin/nodes/${id}/revoke`);
  out(run, `revoked ${id}`, res ?? { nodeId: id, revoked: true });
  return EXIT.OK;
}

export async function removeNode(arg: string, run: KeyholdRun): Promise<number> {
  const id = hashArg(arg, 'NODE_ID');
  await (await run.admin()).call('DELETE', `/kbs/v0/admin/nodes/${id}`);
  out(run, `removed enrolment of ${id}`, { removed: id });
  return EXIT.OK;
}

export async function listNodes(run: KeyholdRun): Promise<number> {
  const admin = await run.admin();
  const nodes = ((await admin.call('GET', '/kbs/v0/admin/nodes')) as { nodes?: NodeRecord[] } | null)?.nodes ?? [];
  const allow = ((await admin.call('GET', '/kbs/v0/admin/ek-allowlist')) as { ekHashes?: string[] } | null)?.ekHashes ?? [];
  if (run.json) {
    run.io.stdout.write(`${JSON.stringify({ nodes, allowlist: allow })}\n`);
    return EXIT.OK;
  }
  const allowed = new Set(allow);
  const lines = nodes.map((n) => `${n.nodeId}  ${n.revoked ? 'REVOKED ' : 'enrolled'}  ${allowed.has(n.nodeId) ? 'allowlisted' : '           '}  ak=${n.akName ?? '-'}  since=${n.enrolledAt}`);
  const enrolled = new Set(nodes.map((n) => n.nodeId));
  for (const h of allow) if (!enrolled.has(h)) lines.push(`${h}  not enrolled  allowlisted`);
  run.io.stdout.write(lines.length > 0 ? `${lines.join('\n')}\n` : '');
  return EXIT.OK;
}
