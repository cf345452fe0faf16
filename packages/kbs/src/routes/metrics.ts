import type { Context } from 'hono';
import type { KbsEnv } from '../app-env.js';
import { KbsError } from '../errors.js';

/** GET /metrics — Prometheus text exposition (unauthenticated; disable with `[metrics] enabled = false`). */
export async function handleMetrics(c: Context<KbsEnv>): Promise<Response> {
  const metrics = c.get('deps').owners?.metrics;
  if (metrics === undefined) throw new KbsError('INVALID_RESOURCE_PATH', 'metrics are not enabled on this KBS');
  return c.body(await metrics.render(), 200, { 'content-type': metrics.contentType });
}
