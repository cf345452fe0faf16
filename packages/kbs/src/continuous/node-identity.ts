import { createHash } from 'node:crypto';
import { spiffeIdOf } from '../attestation/tpm/identity-extension.js';

/**
 * The node id of a node trusted only through the owner's `trusted_ak` list (no EK proven):
 * `ak:` + hex SHA-256 of the AK's DER SubjectPublicKeyInfo as listed (the quote's `ak_public`
 * must equal a `trusted_ak` value byte for byte, so the id is the hash of the listed bytes).
 * Nodes that proved an EK are identified by the EK hash (64 hex) instead.
 */
export function akNodeId(akSpkiDer: Uint8Array): string {
  return `ak:${createHash('sha256').update(akSpkiDer).digest('hex')}`;
}

/**
 * The node's SPIFFE ID: `spiffe://<td>/keyhold/node/tpm/<ek-hash>` for EK-identified nodes,
 * `spiffe://<td>/keyhold/node/ak/<hex>` for `ak:` nodes (their identity is only the owner-listed AK).
 */
export function nodeSpiffeId(trustDomain: string, nodeId: string): string {
  return nodeId.startsWith('ak:') ? `spiffe://${trustDomain}/keyhold/node/ak/${nodeId.slice(3)}` : spiffeIdOf(trustDomain, nodeId);
}
