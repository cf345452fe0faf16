/**
 * One-time import of the legacy enrolment records (`<enrolment_dir>/<2 hex>/<node id>.json`,
 * written by the KBS before the state layer) as node records. Run by the node store when it does
 * not exist yet; the legacy files are left untouched.
 */
import { lstat, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { StateError } from '../errors.js';
import { decodeStoredNode } from '../node-record.js';
import type { NodeRecord, NodeRecordInput } from '../ports.js';

const AK_NAME = /^[0-9a-f]{4}(?:[0-9a-f]{40}|[0-9a-f]{64}|[0-9a-f]{96}|[0-9a-f]{128})$/;
const MAX_RECORD_BYTES = 64 * 1024;

/** The legacy EnrolmentRecord, exactly as identity/enrolment-store.ts wrote it. */
const legacySchema = z.strictObject({
  nodeId: z.string().regex(/^[0-9a-f]{64}$/),
  akName: z.string().regex(AK_NAME).nullable(),
  enrolledAt: z.string().max(64),
  revoked: z.boolean(),
  revokedAt: z.string().max(64).optional(),
  ekTrust: z.enum(['ca', 'allowlist', 'ca+allowlist']).optional(),
});

/** Every legacy record in `dir` as a node record (version 1); an absent directory is empty. */
export async function importLegacyEnrolments(dir: string): Promise<Map<string, NodeRecord>> {
  const out = new Map<string, NodeRecord>();
  const corrupt = (file: string, cause?: unknown): StateError =>
    // SECURITY: a damaged legacy record (wrong id, malformed AK name) is not imported as a binding
    // or silently dropped (a dropped revocation would re-admit a node): the KBS refuses to start.
    new StateError('STATE_CORRUPT', `legacy enrolment record ${file} is corrupt; repair or remove it`, { cause });
  let buckets;
  try {
    buckets = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return out;
    throw new StateError('STATE_UNAVAILABLE', 'legacy enrolment directory cannot be read', { cause: err });
  }
  for (const b of buckets) {
    if (!b.isDirectory() || !/^[0-9a-f]{2}$/.test(b.name)) continue;
    let files: string[];
    try {
      files = await readdir(path.join(dir, b.name));
    } catch (err) {
      throw new StateError('STATE_UNAVAILABLE', 'legacy enrolment directory cannot be read', { cause: err });
    }
    for (const f of files) {
      const m = /^([0-9a-f]{64})\.json$/.exec(f);
      if (m === null) continue;
      const id = m[1]!;
      const file = path.join(dir, b.name, f);
      let text: string;
      try {
        const st = await lstat(file);
        if (!st.isFile()) throw corrupt(`${b.name}/${f}`);
        if (st.size > MAX_RECORD_BYTES) throw corrupt(`${b.name}/${f}`);
        text = await readFile(file, 'utf8');
      } catch (err) {
        if (err instanceof StateError) throw err;
        throw new StateError('STATE_UNAVAILABLE', 'legacy enrolment record cannot be read', { cause: err });
      }
      let parsed: z.infer<typeof legacySchema>;
      try {
        parsed = legacySchema.parse(JSON.parse(text));
      } catch (cause) {
        throw corrupt(`${b.name}/${f}`, cause);
      }
      if (parsed.nodeId !== id || !id.startsWith(b.name)) throw corrupt(`${b.name}/${f}`);
      const input: NodeRecordInput = {
        nodeId: id,
        ekHash: id,
        akName: parsed.akName,
        ...(parsed.akName !== null ? { enrolledAt: parsed.enrolledAt } : {}),
        ...(parsed.ekTrust !== undefined ? { ekTrust: parsed.ekTrust } : {}),
        firstSeenAt: parsed.enrolledAt,
        state: parsed.revoked ? 'revoked' : 'active',
        ...(parsed.revoked ? { revokedAt: parsed.revokedAt ?? parsed.enrolledAt } : {}),
      };
      out.set(id, decodeStoredNode(id, JSON.stringify(input), 1));
    }
  }
  return out;
}
