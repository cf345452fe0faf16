/**
 * `run --status-file F`: the daemon's status as one JSON object, replaced atomically (temp file,
 * fsync, rename) on every change, so a reader never sees a torn file. Readers must also compare
 * `validUntil` with the clock: a daemon that was killed cannot rewrite the file when its token
 * expires. When a write fails, the old file is removed rather than left claiming a stale state.
 */
import { unlink } from 'node:fs/promises';
import { writeFileAtomic } from '@keyhold/atomic-file';
import type { AttestationStatus } from './attestation-status.js';

export async function writeStatusFile(file: string, status: AttestationStatus, extra: Record<string, unknown> = {}): Promise<void> {
  try {
    await writeFileAtomic(file, `${JSON.stringify({ ...status, ...extra })}\n`, 0o644);
  } catch (err) {
    await unlink(file).catch(() => undefined);
    throw err;
  }
}
