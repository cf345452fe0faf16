import type { Context } from 'hono';
import { formatResourcePath } from '@keyhold/protocol';
import { KbsError } from '../errors.js';
import type { KbsEnv } from '../app-env.js';
import { resourcePathOf } from './resource.js';

/** POST /kbs/v0/resource/<repo>/<type>/<tag> — store a secret (raw body). Admin only. */
export async function handleSetResource(c: Context<KbsEnv>): Promise<Response> {
  const deps = c.get('deps');
  const path = resourcePathOf(c);
  const value = new Uint8Array(await c.req.arrayBuffer());
  if (value.length === 0) throw new KbsError('BAD_REQUEST', 'resource body is empty');
  const { version } = await deps.resources.put(path, value);
  c.get('log').info({ resource: formatResourcePath(path), version, admin: c.get('admin')?.identity }, 'resource stored');
  return c.json({ path: formatResourcePath(path), version });
}

/** DELETE /kbs/v0/resource/<repo>/<type>/<tag>. Admin only. */
export async function handleDeleteResource(c: Context<KbsEnv>): Promise<Response> {
  const deps = c.get('deps');
  const path = resourcePathOf(c);
  const existed = await deps.resources.delete(path);
  if (!existed) throw new KbsError('RESOURCE_NOT_FOUND', `resource ${formatResourcePath(path)} not found`);
  c.get('log').info({ resource: formatResourcePath(path), admin: c.get('admin')?.identity }, 'resource deleted');
  return c.body(null, 204);
}
