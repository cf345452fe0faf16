/**
 * The `[notify]` section (issue 13), parsed once by config.ts:
 *   [[notify.webhook]]
 *   url          http(s) URL the events are POSTed to
 *   secret_file  file holding the HMAC secret (at least 16 bytes after trimming whitespace)
 *   events       event types to deliver   default node.banned, node.revoked, node.stale,
 *                                                 node.recovered, node.unbanned, policy.changed
 *   name         delivery cursor name     default `hook-` + 12 hex of SHA-256(url)
 *   timeout      per-attempt timeout      default "10s"
 * The secret is read at start (never logged); see webhook-signature.ts for the signature scheme.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { DURATION, durationMs } from '../continuous/duration.js';
import { KBS_EVENT_TYPES, type KbsEventType } from '../state/ports.js';

export const DEFAULT_WEBHOOK_EVENTS: readonly KbsEventType[] = ['node.banned', 'node.revoked', 'node.stale', 'node.recovered', 'node.unbanned', 'policy.changed'];

const Webhook = z
  .object({
    url: z.string().url().max(2048).regex(/^https?:\/\//i, 'url must be http:// or https://'),
    secret_file: z.string().min(1),
    events: z.array(z.enum(KBS_EVENT_TYPES)).min(1).optional(),
    name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'name must match ^[a-z0-9][a-z0-9._-]{0,63}$').optional(),
    timeout: DURATION.optional(),
  })
  .strict();

export const NOTIFY_CONFIG_FIELDS = {
  notify: z.object({ webhook: z.array(Webhook).max(32).optional() }).strict().optional(),
};

export interface WebhookConfig {
  readonly name: string;
  readonly url: string;
  readonly secretFile: string;
  readonly events: readonly KbsEventType[];
  readonly timeoutMs: number;
}

type FileFields = z.infer<(typeof NOTIFY_CONFIG_FIELDS)['notify']>;

export function notifyConfigFrom(file: FileFields | undefined): readonly WebhookConfig[] {
  const out: WebhookConfig[] = [];
  const names = new Set<string>();
  for (const [i, w] of (file?.webhook ?? []).entries()) {
    const name = w.name ?? `hook-${createHash('sha256').update(w.url).digest('hex').slice(0, 12)}`;
    if (names.has(name)) throw new Error(`[[notify.webhook]] ${i + 1}: another webhook has the name ${name} (set name = "...")`);
    names.add(name);
    out.push({
      name,
      url: w.url,
      secretFile: isAbsolute(w.secret_file) ? w.secret_file : resolve(w.secret_file),
      events: w.events ?? DEFAULT_WEBHOOK_EVENTS,
      timeoutMs: w.timeout === undefined ? 10_000 : durationMs(w.timeout, `[[notify.webhook]] ${i + 1} timeout`, { minMs: 100, maxMs: 120_000 }),
    });
  }
  return out;
}

/** Read a webhook's secret; throws an operator-readable Error (never echoing the content). */
export async function readWebhookSecret(hook: WebhookConfig): Promise<Buffer> {
  let raw: string;
  try {
    raw = await readFile(hook.secretFile, 'utf8');
  } catch (cause) {
    throw new Error(`[[notify.webhook]] ${hook.name}: cannot read secret_file ${hook.secretFile}`, { cause });
  }
  const secret = Buffer.from(raw.trim(), 'utf8');
  // SECURITY: a short secret makes signatures guessable offline; 16 bytes is the floor.
  if (secret.length < 16) throw new Error(`[[notify.webhook]] ${hook.name}: the secret in ${hook.secretFile} must be at least 16 bytes`);
  return secret;
}
