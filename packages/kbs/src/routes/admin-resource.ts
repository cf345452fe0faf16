import type { Context } from 'hono';
import { formatResourcePath } from '@keyhold/protocol';
import { KbsError } from '../errors.js';
import type { KbsEnv } from '../app-env.js';
import { resourcePathParam } from './resource-path-param.js';
import { auditEvent } from '../owners/record-event.js';

const INT = /^[1-9][0-9]{0,12}$/;

function intParam(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  if (!INT.test(v)) throw new KbsError('BAD_REQUEST', `${name} must be a positive integer`);
  return Number(v);
}

/**
 * POST /kbs/v0/resource/<repo>/<type>/<tag> — store a secret (raw body). Admin only.
 * `?generate=N[&rotation_period_ms=P][&keep=K]` (empty body) stores a fresh random N-byte key instead,
 * rotated every P ms keeping K versions; `?rotate=1` rotates a generated key now.
 */
export async function handleSetResource(c: Context<KbsEnv>): Promise<Response> {
  const deps = c.get('deps');
  const path = resourcePathParam(c);
  const q = c.req.query();
  if (q['rotate'] !== undefined) {
    const { version } = await deps.resources.rotate(path);
    c.get('log').info({ resource: formatResourcePath(path), version, admin: c.get('admin')?.identity }, 'resource rotated');
    return c.json({ path: formatResourcePath(path), version });
  }
  const bytes = intParam(q['generate'], 'generate');
  if (bytes !== undefined) {
    const rotationPeriodMs = intParam(q['rotation_period_ms'], 'rotation_period_ms');
    const keepVersions = intParam(q['keep'], 'keep');
    const { version } = await deps.resources.generate(path, {
      bytes,
      ...(rotationPeriodMs !== undefined ? { rotationPeriodMs } : {}),
      ...(keepVersions !== undefined ? { keepVersions } : {}),
    });
    c.get('log').info({ resource: formatResourcePath(path), version, bytes, rotationPeriodMs, admin: c.get('admin')?.identity }, 'resource generated');
    return c.json({ path: formatResourcePath(path), version });
  }
  const value = new Uint8Array(await c.req.arrayBuffer());
  if (value.length === 0) throw new KbsError('BAD_REQUEST', 'resource body is empty');
  const { version } = await deps.resources.put(path, value);
  await auditEvent(c, 'admin', { actor: c.get('admin')?.identity, action: 'resource.put', resourcePath: formatResourcePath(path), verdict: 'ok', reason: `version ${version}` });
  c.get('log').info({ resource: formatResourcePath(path), version, admin: c.get('admin')?.identity }, 'resource stored');
  return c.json({ path: formatResourcePath(path), version });
}

/** DELETE /kbs/v0/resource/<repo>/<type>/<tag>. Admin only. */
export async function handleDeleteResource(c: Context<KbsEnv>): Promise<Response> {
  const deps = c.get('deps');
  const path = resourcePathParam(c);
  const existed = await deps.resources.delete(path);
  if (!existed) throw new KbsError('RESOURCE_NOT_FOUND', `resource ${formatResourcePath(path)} not found`);
  await auditEvent(c, 'admin', { actor: c.get('admin')?.identity, action: 'resource.delete', resourcePath: formatResourcePath(path), verdict: 'ok' });
  c.get('log').info({ resource: formatResourcePath(path), admin: c.get('admin')?.identity }, 'resource deleted');
  return c.body(null, 204);
}
