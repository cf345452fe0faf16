import { createHash } from 'node:crypto';
import type { TpmDevice } from '@keyhold/attestation-agent';
import { parseEventLog, replayEventLog } from '@keyhold/verifier';

const EV_NO_ACTION = 0x3;
const EV_EFI_BOOT_SERVICES_APPLICATION = 0x80000003;

/**
 * Make a TPM hold what a real boot measured: extend the SHA-256 digest of every event of a
 * crypto-agile log into its PCR, as firmware did (EV_NO_ACTION is not extended). swtpm starts at
 * locality 0, so a log with a StartupLocality event cannot be reproduced and is refused here.
 */
export async function extendEventLog(tpm: TpmDevice, log: Uint8Array): Promise<void> {
  const parsed = parseEventLog(log);
  const replay = replayEventLog(parsed, { banks: ['sha256'] }).get('sha256');
  if (replay?.ok !== true) throw new Error('the event log does not replay in the sha256 bank');
  if ((replay.startupLocality ?? 0) !== 0) throw new Error('the event log starts at locality 3; swtpm cannot reproduce it');
  for (const ev of parsed.events) {
    if (ev.type === EV_NO_ACTION) continue;
    const d = ev.digests.find((x) => x.bank === 'sha256');
    if (d === undefined) throw new Error(`event ${ev.index} has no sha256 digest`);
    await tpm.extendPcr(ev.pcr, [{ alg: 'sha256', digest: d.digest }]);
  }
}

/** A copy of the log with one bit flipped in the SHA-256 digest of its first boot application (PCR 4). */
export function alterBootApplicationDigest(log: Uint8Array): Buffer {
  const ev = parseEventLog(log).events.find((e) => e.pcr === 4 && e.type === EV_EFI_BOOT_SERVICES_APPLICATION);
  const d = ev?.digests.find((x) => x.bank === 'sha256');
  if (d === undefined) throw new Error('the log has no PCR 4 boot application with a sha256 digest');
  const copy = Buffer.from(log);
  const at = d.digest.byteOffset - log.byteOffset;
  copy[at] = copy[at]! ^ 0x01;
  return copy;
}

/**
 * An IMA measurement list written the way the kernel writes ima-ng entries: template data =
 * d-ng ‖ n-ng (ima_template_lib.c), logged with its SHA-1, and extended into PCR10's SHA-256 bank
 * as the SHA-256 of the template data (Linux 5.8+).
 */
export class ImaLogWriter {
  readonly lines: string[] = [];
  #pending: Buffer[] = [];

  /** Record a measurement of `path` holding `content`; returns its SHA-256 (hex). */
  measure(path: string, content: string | Uint8Array): string {
    const digest = createHash('sha256').update(content).digest();
    const alg = Buffer.from('sha256:\0', 'latin1');
    const name = Buffer.from(path, 'utf8');
    const data = Buffer.concat([u32(alg.length + digest.length), alg, digest, u32(name.length + 1), name, Buffer.alloc(1)]);
    this.lines.push(`10 ${createHash('sha1').update(data).digest('hex')} ima-ng sha256:${digest.toString('hex')} ${path}`);
    this.#pending.push(createHash('sha256').update(data).digest());
    return digest.toString('hex');
  }

  /** Extend PCR10 with every entry recorded since the last call. */
  async extendInto(tpm: TpmDevice): Promise<void> {
    for (const v of this.#pending) await tpm.extendPcr(10, [{ alg: 'sha256', digest: v }]);
    this.#pending = [];
  }

  text(): string {
    return `${this.lines.join('\n')}\n`;
  }
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}
