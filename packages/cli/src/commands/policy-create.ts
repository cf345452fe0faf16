import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { opendir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  EventLogError,
  convertLegacyAllowlist,
  createMeasuredBootReferenceState,
  createRuntimePolicyFromImaLog,
  emptyRuntimePolicy,
  isEventLogBank,
  parseEventLog,
  parseImaLog,
  parseRuntimePolicy,
  type RuntimePolicy,
} from '@keyhold/verifier';
import { EXIT, type CommandIo } from '../command.js';

const USAGE = `Usage:
  keyhold policy create measured-boot --eventlog FILE [--bank sha256] [--pin-pcrs 0,2,4]
      Prints a measured-boot reference state (JSON) built from a known-good event log.
  keyhold policy create runtime (--ima-log FILE | --rootfs DIR | --allowlist FILE) [--exclude REGEX]... [--hash-alg sha256]
      Prints a Keylime-format runtime policy (JSON): every file the IMA log measured, every
      regular file under DIR (paths relative to DIR, rooted at /), or a legacy allowlist converted.`;

const MAX_INPUT_BYTES = 256 * 1024 * 1024;

export async function run(argv: string[], io: CommandIo): Promise<number> {
  const [kind, ...rest] = argv;
  let values: Record<string, string | string[] | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: rest,
      options: {
        eventlog: { type: 'string' },
        bank: { type: 'string' },
        'pin-pcrs': { type: 'string' },
        'ima-log': { type: 'string' },
        rootfs: { type: 'string' },
        allowlist: { type: 'string' },
        exclude: { type: 'string', multiple: true },
        'hash-alg': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (err) {
    io.stderr.write(`keyhold policy create: ${(err as Error).message}\n${USAGE}\n`);
    return EXIT.USAGE;
  }
  if (values.help === true || kind === '--help' || kind === '-h') {
    io.stdout.write(`${USAGE}\n`);
    return EXIT.OK;
  }
  try {
    if (kind === 'measured-boot') return await measuredBoot(values, io);
    if (kind === 'runtime') return await runtime(values, io);
  } catch (err) {
    if (err instanceof EventLogError) {
      io.stderr.write(`keyhold policy create: ${err.message} (${err.code})\n`);
      return EXIT.FAIL;
    }
    const code = (err as NodeJS.ErrnoException).code;
    if (typeof code === 'string') {
      io.stderr.write(`keyhold policy create: ${code}: ${(err as NodeJS.ErrnoException).path ?? ''}\n`);
      return EXIT.FAIL;
    }
    throw err;
  }
  io.stderr.write(`${USAGE}\n`);
  return EXIT.USAGE;
}

async function measuredBoot(values: Record<string, unknown>, io: CommandIo): Promise<number> {
  const file = values.eventlog;
  const bank = values.bank;
  const pin = values['pin-pcrs'];
  if (typeof file !== 'string' || (bank !== undefined && (typeof bank !== 'string' || !isEventLogBank(bank)))) {
    io.stderr.write(`${USAGE}\n`);
    return EXIT.USAGE;
  }
  const pinPcrs = typeof pin === 'string' ? pin.split(',').map((p) => Number(p.trim())) : [];
  if (pinPcrs.some((p) => !Number.isInteger(p) || p < 0 || p > 23)) {
    io.stderr.write(`keyhold policy create: --pin-pcrs takes PCR indices 0-23\n`);
    return EXIT.USAGE;
  }
  const log = parseEventLog(await readLimited(file));
  const state = createMeasuredBootReferenceState(log, { ...(typeof bank === 'string' && isEventLogBank(bank) ? { bank } : {}), pinPcrs });
  io.stdout.write(`${JSON.stringify(state, null, 2)}\n`);
  return EXIT.OK;
}

async function runtime(values: Record<string, unknown>, io: CommandIo): Promise<number> {
  const sources = ['ima-log', 'rootfs', 'allowlist'].filter((k) => typeof values[k] === 'string');
  const excludes = (values.exclude as string[] | undefined) ?? [];
  const hashAlg = (values['hash-alg'] as string | undefined) ?? 'sha256';
  if (sources.length !== 1 || !['sha1', 'sha256', 'sha384', 'sha512'].includes(hashAlg)) {
    io.stderr.write(`${USAGE}\n`);
    return EXIT.USAGE;
  }
  let policy: RuntimePolicy;
  if (typeof values['ima-log'] === 'string') {
    const text = (await readLimited(values['ima-log'])).toString('utf8');
    policy = { ...createRuntimePolicyFromImaLog(parseImaLog(text)), excludes };
  } else if (typeof values.allowlist === 'string') {
    policy = convertLegacyAllowlist((await readLimited(values.allowlist)).toString('utf8'), excludes);
  } else {
    const digests = await hashTree(values.rootfs as string, hashAlg);
    policy = { ...emptyRuntimePolicy(), digests, excludes };
  }
  parseRuntimePolicy(policy); // validates the excludes and the result before printing
  io.stdout.write(`${JSON.stringify(policy, null, 2)}\n`);
  return EXIT.OK;
}

async function readLimited(file: string): Promise<Buffer> {
  const st = await stat(file);
  if (st.size > MAX_INPUT_BYTES) throw new Error(`${file} is larger than ${MAX_INPUT_BYTES} bytes`);
  return readFile(file);
}

/**
 * Hashes every regular file under `root` (symlinks and special files skipped), one file at a time
 * through a stream, so memory stays bounded by the directory stack and the digest map.
 */
async function hashTree(root: string, alg: string): Promise<Record<string, string[]>> {
  const digests: Record<string, string[]> = {};
  const stack: string[] = [''];
  while (stack.length > 0) {
    const rel = stack.pop() as string;
    const dir = await opendir(join(root, rel));
    const subdirs: string[] = [];
    for await (const entry of dir) {
      const childRel = `${rel}/${entry.name}`;
      if (entry.isDirectory()) subdirs.push(childRel);
      else if (entry.isFile()) digests[childRel] = [await hashFile(join(root, childRel), alg)];
    }
    stack.push(...subdirs.sort().reverse());
  }
  return digests;
}

function hashFile(path: string, alg: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash(alg);
    createReadStream(path)
      .on('error', reject)
      .on('data', (chunk) => h.update(chunk))
      .on('end', () => resolve(h.digest('hex')));
  });
}
