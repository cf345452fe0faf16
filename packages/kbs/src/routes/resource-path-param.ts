import type { Context } from 'hono';
import type { ResourcePath } from '@keyhold/protocol';
import { resourcePathOf } from './resource.js';

/** The validated resource path of a Hono route matched on `:repository/:type/:tag`. */
export function resourcePathParam(c: Context): ResourcePath {
  return resourcePathOf(`${c.req.param('repository')}/${c.req.param('type')}/${c.req.param('tag')}`);
}
