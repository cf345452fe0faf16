import { createHash } from 'node:crypto';
import type { Context } from 'hono';
import { getConnInfo } from '@hono/node-server/conninfo';
import { claimAt } from '../token/ear-claims.js';

/**
 * The client's network address as the socket reports it. Forwarding headers are deliberately not
 * read: without a configured trusted proxy they are attacker-chosen. Requests that did not come
 * through the node server (in-process tests) are `local`.
 */
export function clientAddress(c: Context): string {
  try {
    return getConnInfo(c).remote.address ?? 'unknown';
  } catch {
    return 'local';
  }
}

/** A short, stable label for a node: its hardware identity (`node_id`) or `ak:` + 16 hex of SHA-256 of the AK. */
export function nodeLabel(annotatedEvidence: unknown, tee = 'tpm'): string | undefined {
  const nodeId = claimAt(annotatedEvidence, ['node_id']);
  if (typeof nodeId === 'string' && nodeId !== '') return nodeId.slice(0, 128);
  const ak = claimAt(annotatedEvidence, [tee, 'ak_public']);
  if (typeof ak === 'string' && ak !== '') return `ak:${createHash('sha256').update(ak).digest('hex').slice(0, 16)}`;
  return undefined;
}

/** The node label of a verified token's claims. */
export function nodeOfClaims(claims: Record<string, unknown>): string | undefined {
  return nodeLabel(claimAt(claims, ['submods', 'cpu0', 'ear.veraison.annotated-evidence']));
}
