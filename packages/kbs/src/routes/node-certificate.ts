/**
 * Node certificates for SPIRE's x509pop node attestor (issue 13).
 *
 *   GET  /kbs/v0/node-ca            → the node CA bundle (PEM, `application/pem-certificate-chain`):
 *                                     the node CA certificate, then the configured `[node_ca] chain`.
 *   POST /kbs/v0/node-certificate   Authorization: Bearer <EAR token> (or the attested session cookie);
 *                                   body `application/json` {"csr":"<PEM>"} or `application/pkcs10` (PEM or DER)
 *                                   → {"certificate","chain","serial","notBefore","notAfter","spiffeId"}
 *
 * A certificate is issued only when, in this order: the token verifies and is unexpired (401); it
 * names a node (403 PolicyDeny); its status is `affirming` (403 PolicyDeny); it carries a node-key
 * binding (403 PolicyDeny); the request parses, its key type is accepted and its signature verifies
 * (400); its key is the bound key (403 PolicyDeny); the node record exists, is not banned (403
 * NodeBanned) nor revoked (403 NodeRevoked) nor stale (403 PolicyDeny) — checked inside the
 * compare-and-swap that records the serial, so a ban landing meanwhile wins. Issued and refused
 * requests of an identified node are audited.
 */
import type { Context } from 'hono';
import { z } from 'zod';
import type { KbsEnv } from '../app-env.js';
import { nodeIdOfClaims } from '../attestation/tpm/node-revocation.js';
import { DEFAULT_CONTINUOUS } from '../continuous/continuous-config.js';
import { effectiveState } from '../continuous/node-lifecycle.js';
import { nodeSpiffeId } from '../continuous/node-identity.js';
import { KbsError } from '../errors.js';
import { isRefusedNode, nodeRefusal } from '../identity/node-records.js';
import { issueNodeCertificate, MAX_CSR_BYTES, planNodeCertificate, verifyNodeCsr } from '../node-ca/issue-certificate.js';
import { nodeKeyBindingOfClaims } from '../node-ca/node-key-binding.js';
import type { NodeCaProvider } from '../node-ca/node-ca-provider.js';
import { emitEvent } from '../notify/emit-event.js';
import { auditEvent, errorCode } from '../owners/record-event.js';
import { updateNode } from '../state/node-update.js';
import type { NodeCertificateRef, NodeRecordInput } from '../state/ports.js';
import { claimAt, EAR_STATUS_PATH } from '../token/ear-claims.js';
import { attestationClaims } from './resource.js';
import { requestCookie, requestHeader } from '../hot-path/node-request.js';

/** Certificates remembered per node record (newest last). */
export const MAX_RECORDED_CERTIFICATES = 16;

const JsonCsr = z.strictObject({ csr: z.string().min(1).max(MAX_CSR_BYTES) });

function nodeCaOf(c: Context<KbsEnv>): NodeCaProvider {
  const ca = c.get('deps').continuous?.nodeCa;
  if (ca === undefined) throw new KbsError('INVALID_RESOURCE_PATH', 'node certificates are not enabled on this KBS');
  return ca;
}

export async function handleGetNodeCa(c: Context<KbsEnv>): Promise<Response> {
  const ca = await nodeCaOf(c).get();
  return c.body(ca.bundlePem, 200, { 'content-type': 'application/pem-certificate-chain' });
}

export async function handleNodeCertificate(c: Context<KbsEnv>): Promise<Response> {
  const provider = nodeCaOf(c);
  const claims = await attestationClaims({ deps: c.get('deps'), header: (name) => requestHeader(c, name), cookie: (name) => requestCookie(c, name) });
  const nodeId = nodeIdOfClaims(claims);
  // SECURITY: a certificate names a node; a token without a node identity (no EK, no listed AK)
  // cannot be turned into one (identity confusion).
  if (nodeId === undefined) throw new KbsError('POLICY_DENY', 'the attestation token names no node');
  try {
    return await issue(c, provider, claims, nodeId);
  } catch (err) {
    await auditEvent(c, 'deny', { node: nodeId, action: 'node-certificate', verdict: 'refused', reason: err instanceof KbsError ? `${err.code}: ${err.message}` : errorCode(err) });
    throw err;
  }
}

async function issue(c: Context<KbsEnv>, provider: NodeCaProvider, claims: Record<string, unknown>, nodeId: string): Promise<Response> {
  const deps = c.get('deps');
  const cont = deps.continuous;
  const status = claimAt(claims, EAR_STATUS_PATH);
  // SECURITY: only an affirming attestation earns a certificate (a warning or contraindicated
  // token may still exist for policy reasons, but never becomes a node identity).
  if (status !== 'affirming') throw new KbsError('POLICY_DENY', `the attestation is ${String(status)}, not affirming`);
  const binding = nodeKeyBindingOfClaims(claims);
  // SECURITY: without a key bound into the quote there is nothing to certify (issue 13 binding).
  if (binding === undefined) throw new KbsError('POLICY_DENY', 'the attestation bound no node key (send keyhold.node-key in additional_evidence)');
  const csr = await readCsr(c);
  const request = await verifyNodeCsr(csr, binding['spki-sha256']);
  const ca = await provider.get();
  const now = new Date(deps.now?.() ?? Date.now());
  const plan = planNodeCertificate(ca, now, provider.ttlMs);
  const staleAfterMs = cont?.settings.staleAfterMs ?? DEFAULT_CONTINUOUS.staleAfterMs;
  const ref: NodeCertificateRef = { serial: plan.serial, notAfter: plan.notAfter.toISOString() };
  await updateNode(deps.state.nodes, nodeId, (prev) => {
    // SECURITY: decided on the record inside the compare-and-swap: a node that is unknown, banned,
    // revoked or stale gets no certificate, also when that changed after its token was issued
    // (issue 13: "certificate renewal refused").
    if (prev === undefined) throw new KbsError('POLICY_DENY', 'the node has no record on this KBS');
    if (isRefusedNode(prev)) throw nodeRefusal(prev);
    if (effectiveState(prev, now.getTime(), staleAfterMs) !== 'active') throw new KbsError('POLICY_DENY', 'the node is stale: attest again');
    const { version: _v, ...rest } = prev;
    const certificates = [...(prev.certificates ?? []), ref].slice(-MAX_RECORDED_CERTIFICATES);
    return { ...rest, certificates } satisfies NodeRecordInput;
  });
  const spiffeId = nodeSpiffeId(cont?.trustDomain ?? 'keyhold.local', nodeId);
  const issued = await issueNodeCertificate(ca, request, { nodeId, spiffeId, plan });
  await auditEvent(c, 'release', { node: nodeId, action: 'node-certificate', verdict: 'issued', reason: `serial ${issued.serial} until ${issued.notAfter.toISOString()}` });
  emitEvent(c, { type: 'node.certificate', node: nodeId, spiffeId, reason: `serial ${issued.serial}` });
  c.get('log').info({ node: nodeId, serial: issued.serial }, 'node certificate issued');
  return c.json({
    certificate: issued.pem,
    chain: ca.bundlePem,
    serial: issued.serial,
    notBefore: issued.notBefore.toISOString(),
    notAfter: issued.notAfter.toISOString(),
    spiffeId,
  });
}

/** The request body: JSON {"csr": PEM} or a raw PKCS#10 (PEM or DER). */
async function readCsr(c: Context<KbsEnv>): Promise<string | Uint8Array> {
  const ct = (c.req.header('content-type') ?? '').trim().toLowerCase();
  if (ct.startsWith('application/json')) {
    let body: unknown;
    try {
      body = await c.req.json();
    } catch (cause) {
      throw new KbsError('BAD_REQUEST', 'the body is not JSON', { cause });
    }
    const r = JsonCsr.safeParse(body);
    if (!r.success) throw new KbsError('BAD_REQUEST', `the body must be {"csr": "<PEM certificate request>"} (at most ${MAX_CSR_BYTES} characters)`);
    return r.data.csr;
  }
  // SECURITY: only the two documented encodings are accepted; a form or text body is a client
  // mix-up and is refused rather than guessed at.
  if (!/^application\/(pkcs10|x-pem-file|octet-stream)\b/.test(ct)) throw new KbsError('UNSUPPORTED_MEDIA_TYPE', 'send the request as application/json {"csr": PEM} or application/pkcs10 (PEM or DER)');
  const bytes = new Uint8Array(await c.req.arrayBuffer());
  const text = Buffer.from(bytes.subarray(0, 64)).toString('latin1');
  return text.trimStart().startsWith('-----BEGIN') ? Buffer.from(bytes).toString('utf8') : bytes;
}
