import type { Context } from 'hono';
import type { KbsEnv } from '../app-env.js';
import { decodeRvpsPayload, RvpsMessageSchema } from '../reference-values/rvps-message.js';
import { validateReferenceValues } from '../reference-values/validate-reference-values.js';
import { readJsonBody } from './json-body.js';
import { auditEvent } from '../owners/record-event.js';

/**
 * POST /kbs/v0/reference-value — register reference values (Trustee RVPS "sample" message). Admin
 * only. Values of the names the appraisal reads are checked first (400 naming the value, nothing
 * stored; see reference-values/validate-reference-values.ts). The names in the message are replaced
 * in one atomic write; other names keep their values, so concurrent writers (on any replica) never
 * undo each other.
 */
export async function handleSetReferenceValue(c: Context<KbsEnv>): Promise<Response> {
  const deps = c.get('deps');
  const msg = await readJsonBody(c, RvpsMessageSchema);
  const entries = decodeRvpsPayload(msg.payload);
  // Values the appraisal reads (PCR digests, measured-boot state, runtime policy, trusted AKs) must parse now.
  validateReferenceValues(entries);
  await deps.state.referenceValues.set(entries);
  await auditEvent(c, 'admin', { actor: c.get('admin')?.identity, action: `reference-value.put:${Object.keys(entries).join(',')}`, verdict: 'ok' });
  c.get('log').info({ names: Object.keys(entries), admin: c.get('admin')?.identity }, 'reference values set');
  return c.json({ names: Object.keys(entries) });
}

/** GET /kbs/v0/reference-value — list the stored reference values. Admin only. */
export async function handleListReferenceValues(c: Context<KbsEnv>): Promise<Response> {
  return c.json((await c.get('deps').state.referenceValues.snapshot()).all());
}
