import type { Context } from 'hono';
import type { KbsEnv } from '../app-env.js';
import { decodeRvpsPayload, RvpsMessageSchema } from '../reference-values/reference-value-store.js';
import { readJsonBody } from './json-body.js';
import { auditEvent } from '../owners/record-event.js';

/** POST /kbs/v0/reference-value — register reference values (Trustee RVPS "sample" message). Admin only. */
export async function handleSetReferenceValue(c: Context<KbsEnv>): Promise<Response> {
  const deps = c.get('deps');
  const msg = await readJsonBody(c, RvpsMessageSchema);
  const entries = decodeRvpsPayload(msg.payload);
  await deps.references.set(entries);
  await auditEvent(c, 'admin', { actor: c.get('admin')?.identity, action: `reference-value.put:${Object.keys(entries).join(',')}`, verdict: 'ok' });
  c.get('log').info({ names: Object.keys(entries), admin: c.get('admin')?.identity }, 'reference values set');
  return c.json({ names: Object.keys(entries) });
}

/** GET /kbs/v0/reference-value — list the stored reference values. Admin only. */
export function handleListReferenceValues(c: Context<KbsEnv>): Response {
  return c.json(c.get('deps').references.all());
}
