import { open } from 'node:fs/promises';
import { AgentError } from '../errors.js';
import type { TpmEvidenceContributor } from './tpm-attester.js';

/** Where Linux exposes the firmware's TCG event log (securityfs). */
export const DEFAULT_EVENT_LOG_FILE = '/sys/kernel/security/tpm0/binary_bios_measurements';
/** Where Linux exposes the IMA measurement list, as text. */
export const DEFAULT_IMA_LOG_FILE = '/sys/kernel/security/ima/ascii_runtime_measurements';
/** Evidence member names (the KBS reads the same names). */
export const EVENT_LOG_FIELD = 'event_log';
export const IMA_LOG_FIELD = 'ima_log';
/** Bounds on what the agent reads (the KBS enforces its own, and its request body limit). */
export const MAX_EVENT_LOG_BYTES = 64 * 1024 * 1024;
export const MAX_IMA_LOG_BYTES = 64 * 1024 * 1024;

export interface BootLogContributorOptions {
  /** Binary TCG PC Client event log to send as `event_log` (standard base64). */
  readonly eventLogFile?: string | undefined;
  /** IMA `ascii_runtime_measurements` to send as `ima_log` (text). */
  readonly imaLogFile?: string | undefined;
  readonly maxEventLogBytes?: number;
  readonly maxImaLogBytes?: number;
}

/**
 * Adds the node's boot and runtime logs to the `tpm` evidence beside Trustee's fields: the event
 * log is read before the quote (firmware stops extending at ExitBootServices); the IMA log after
 * it, because the kernel appends an entry before extending PCR10 — a list read after the quote
 * holds every entry the quote covers (the KBS uses the covered prefix, as Keylime does).
 */
export class BootLogContributor implements TpmEvidenceContributor {
  readonly name = 'boot-logs';
  readonly #opts: BootLogContributorOptions;

  constructor(opts: BootLogContributorOptions) {
    this.#opts = opts;
  }

  async evidenceFields(): Promise<Record<string, unknown>> {
    const file = this.#opts.eventLogFile;
    if (file === undefined) return {};
    const bytes = await readBounded(file, this.#opts.maxEventLogBytes ?? MAX_EVENT_LOG_BYTES, 'event log');
    return { [EVENT_LOG_FIELD]: bytes.toString('base64') };
  }

  async evidenceFieldsAfterQuote(): Promise<Record<string, unknown>> {
    const file = this.#opts.imaLogFile;
    if (file === undefined) return {};
    const bytes = await readBounded(file, this.#opts.maxImaLogBytes ?? MAX_IMA_LOG_BYTES, 'IMA log');
    return { [IMA_LOG_FIELD]: bytes.toString('utf8') };
  }
}

/**
 * Read a whole file of at most `max` bytes. securityfs reports size 0, so the size is enforced
 * while reading rather than from stat.
 */
export async function readBounded(file: string, max: number, what: string): Promise<Buffer> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch (cause) {
    throw new AgentError('CONFIG_INVALID', `cannot read the ${what} ${file}: ${(cause as NodeJS.ErrnoException).code ?? 'error'}`, { cause });
  }
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(Math.min(1024 * 1024, max + 1 - total));
      const { bytesRead } = await fh.read(chunk, 0, chunk.length, null);
      if (bytesRead === 0) break;
      total += bytesRead;
      // Larger than any genuine log: refuse rather than send something the KBS must reject anyway.
      if (total > max) throw new AgentError('CONFIG_INVALID', `the ${what} ${file} is larger than ${max} bytes`);
      chunks.push(chunk.subarray(0, bytesRead));
    }
    return Buffer.concat(chunks, total);
  } finally {
    await fh.close();
  }
}
