import type { Context } from 'hono';
import { isValidResourceSegment } from '@keyhold/protocol';
import type { KbsEnv } from '../app-env.js';
import { KbsError } from '../errors.js';
import { auditEvent } from '../owners/record-event.js';
import type { ResourceMetadata } from '../release/resource-store.js';
import { resourcePathParam } from './resource-path-param.js';
import { REFERENCE_NAME } from '../reference-values/rvps-message.js';

function visibleTo(c: Context<KbsEnv>, repository: string): boolean {
  const limit = c.get('admin')?.repositories;
  return limit === undefined || limit.includes(repository);
}

/**
 * GET /kbs/v0/resources[/<repository>] — metadata of stored resources (path, latest version, time,
 * labels), never values. Admin.
 */
export async function handleListResources(c: Context<KbsEnv>): Promise<Response> {
  const deps = c.get('deps');
  if (deps.resources.list === undefined) throw new KbsError('INVALID_RESOURCE_PATH', 'this resource store cannot list');
  const repository = c.req.param('repository');
  if (repository !== undefined && !isValidResourceSegment(repository)) throw new KbsError('INVALID_RESOURCE_PATH', 'invalid repository');
  const all: ResourceMetadata[] = await deps.resources.list();
  // SECURITY: a repository-limited role lists only its own repositories (cross-tenant disclosure).
  const resources = all.filter((r) => {
    const repo = r.path.split('/')[0] ?? '';
    return (repository === undefined || repo === repository) && visibleTo(c, repo);
  });
  return c.json({ resources });
}

/** GET /kbs/v0/resources/<repo>/<type>/<tag> — metadata of every retained version, never values. Admin. */
export async function handleResourceVersions(c: Context<KbsEnv>): Promise<Response> {
  const deps = c.get('deps');
  if (deps.resources.versions === undefined) throw new KbsError('INVALID_RESOURCE_PATH', 'this resource store cannot list versions');
  const path = resourcePathParam(c);
  const versions = await deps.resources.versions(path);
  if (versions === undefined) throw new KbsError('RESOURCE_NOT_FOUND', 'resource not found');
  return c.json({ path: `${path.repository}/${path.type}/${path.tag}`, versions });
}

function referenceName(c: Context<KbsEnv>): string {
  const name = c.req.param('name') ?? '';
  // SECURITY: names are plain identifiers; nothing else is looked up or echoed (injection into logs).
  if (!REFERENCE_NAME.test(name)) throw new KbsError('BAD_REQUEST', 'reference value names match ^[A-Za-z0-9_.:-]{1,256}$');
  return name;
}

/** GET /kbs/v0/reference-value/<name> — one reference value list. Admin. */
export async function handleGetReferenceValue(c: Context<KbsEnv>): Promise<Response> {
  const name = referenceName(c);
  const values = (await c.get('deps').state.referenceValues.snapshot()).get(name);
  if (values === undefined) throw new KbsError('RESOURCE_NOT_FOUND', `no reference value ${name}`);
  return c.json({ name, values });
}

/** DELETE /kbs/v0/reference-value/<name>. Admin. */
export async function handleDeleteReferenceValue(c: Context<KbsEnv>): Promise<Response> {
  const name = referenceName(c);
  const existed = await c.get('deps').state.referenceValues.delete(name);
  if (!existed) throw new KbsError('RESOURCE_NOT_FOUND', `no reference value ${name}`);
  const admin = c.get('admin');
  await auditEvent(c, 'admin', { actor: admin?.identity, action: `reference-value.delete:${name}`, verdict: 'ok' });
  c.get('log').info({ name, admin: admin?.identity }, 'reference value deleted');
  return c.body(null, 204);
}
