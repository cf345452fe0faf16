/**
 * The node-certificate key binding (issue 13). An agent that wants a node certificate puts the
 * SHA-256 of its node key's DER SubjectPublicKeyInfo into the attestation's additional evidence:
 *
 *   tee-evidence.additional_evidence = '{"keyhold.node-key":{"spki-sha256":"<64 lowercase hex>"}}'
 *
 * The runtime data's digest covers `additional-evidence` (protocol binding.ts), and the TPM quote's
 * qualifying data is that digest, so the key is bound to the quote and this attestation's nonce.
 * `/attest` copies the value into the token at
 * `submods.cpu0["ear.veraison.annotated-evidence"]["keyhold.node-key"]`, and
 * `POST /kbs/v0/node-certificate` certifies only a CSR whose public key has that digest.
 */
import { z } from 'zod';
import { KbsError } from '../errors.js';
import { claimAt } from '../token/ear-claims.js';

export const NODE_KEY_CLAIM = 'keyhold.node-key';
export const NODE_KEY_PATH = ['submods', 'cpu0', 'ear.veraison.annotated-evidence', NODE_KEY_CLAIM] as const;
/** Bound on additional evidence that carries a node-key binding. */
export const MAX_BINDING_EVIDENCE_CHARS = 4096;

const BindingSchema = z.strictObject({ 'spki-sha256': z.string().regex(/^[0-9a-f]{64}$/) });
export type NodeKeyBinding = z.infer<typeof BindingSchema>;

/**
 * The node-key binding the attester put into `additional_evidence`, or undefined when it carries
 * none (Trustee clients send "" or evidence of their own, which is left alone). Throws BAD_REQUEST
 * when a `keyhold.node-key` member is present but malformed.
 */
export function nodeKeyBindingOf(additionalEvidence: string): NodeKeyBinding | undefined {
  if (!additionalEvidence.includes(NODE_KEY_CLAIM)) return undefined;
  // SECURITY: bounded before parsing (a huge additional evidence must not cost a large parse).
  if (additionalEvidence.length > MAX_BINDING_EVIDENCE_CHARS) throw new KbsError('BAD_REQUEST', `additional_evidence with a ${NODE_KEY_CLAIM} binding must be at most ${MAX_BINDING_EVIDENCE_CHARS} characters`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(additionalEvidence);
  } catch {
    throw new KbsError('BAD_REQUEST', `additional_evidence naming ${NODE_KEY_CLAIM} must be a JSON object`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new KbsError('BAD_REQUEST', `additional_evidence naming ${NODE_KEY_CLAIM} must be a JSON object`);
  if (!Object.hasOwn(parsed, NODE_KEY_CLAIM)) return undefined;
  const r = BindingSchema.safeParse((parsed as Record<string, unknown>)[NODE_KEY_CLAIM]);
  // SECURITY: the binding is exactly one SHA-256 in lowercase hex, so the value compared at
  // certificate issuance is the value the quote covered (no normalisation, no ambiguity).
  if (!r.success) throw new KbsError('BAD_REQUEST', `additional_evidence ${NODE_KEY_CLAIM} must be {"spki-sha256": "<64 lowercase hex>"}`);
  return r.data;
}

/** The binding a verified token carries, undefined when it carries none. */
export function nodeKeyBindingOfClaims(claims: Record<string, unknown>): NodeKeyBinding | undefined {
  const v = claimAt(claims, NODE_KEY_PATH);
  if (v === undefined) return undefined;
  const r = BindingSchema.safeParse(v);
  return r.success ? r.data : undefined;
}
