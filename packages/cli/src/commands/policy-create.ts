/**
 * `keyhold policy create measured-boot|runtime` and `keyhold policy import keylime-mb`: reference
 * states and Keylime runtime policies, generated from known-good inputs. The runtime command takes
 * Keylime's create_runtime_policy flags (-m/--ima-measurement-list, -a/--allowlist,
 * -e/--excludelist, --algo, --rootfs, -o/--output) and, like it, merges every source given.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { opendir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CliError, UsageError } from '@keyhold/command-line';
import {
  convertLegacyAllowlist,
  createMeasuredBootReferenceState,
  createRuntimePolicyFromImaLog,
  emptyRuntimePolicy,
  isEventLogBank,
  parseEventLog,
  parseImaLog,
  parseMeasuredBootReferenceState,
  parseRuntimePolicy,
  type RuntimePolicy,
} from '@keyhold/verifier';
import { EXIT } from '../command.js';
import type { KeyholdRun } from '../keyhold-run.js';

const MAX_INPUT_BYTES = 256 * 1024 * 1024;
/** Keylime's default for -m without a file. */
const IMA_MEASUREMENT_LIST = '/sys/kernel/security/ima/ascii_runtime_measurements';
const HASH_ALGS = ['sha1', 'sha256', 'sha384', 'sha512'];

async function readLimited(file: string): Promise<Buffer> {
  const st = await stat(file);
  if (st.isFile() && st.size > MAX_INPUT_BYTES) throw new CliError('INPUT_TOO_LARGE', `${file} is larger than ${MAX_INPUT_BYTES} bytes`);
  const bytes = await readFile(file);
  if (bytes.length > MAX_INPUT_BYTES) throw new CliError('INPUT_TOO_LARGE', `${file} is larger than ${MAX_INPUT_BYTES} bytes`);
  return bytes;
}

async function emit(run: KeyholdRun, doc: unknown, output: string | undefined): Promise<number> {
  const text = `${JSON.stringify(doc, null, 2)}\n`;
  if (output === undefined) run.io.stdout.write(text);
  else {
    await writeFile(output, text);
    run.io.stderr.write(`wrote ${output}\n`);
  }
  return EXIT.OK;
}

export async function createMeasuredBoot(o: { eventlog: string; bank?: string; pinPcrs?: string }, run: KeyholdRun): Promise<number> {
  if (o.bank !== undefined && !isEventLogBank(o.bank)) throw new UsageError('--bank must be sha1, sha256, sha384 or sha512');
  const pinPcrs = o.pinPcrs !== undefined ? o.pinPcrs.split(',').map((p) => Number(p.trim())) : [];
  if (pinPcrs.some((p) => !Number.isInteger(p) || p < 0 || p > 23)) throw new UsageError('--pin-pcrs takes PCR indices 0-23, e.g. 0,2,4');
  const log = parseEventLog(await readLimited(o.eventlog));
  const state = createMeasuredBootReferenceState(log, { ...(o.bank !== undefined && isEventLogBank(o.bank) ? { bank: o.bank } : {}), pinPcrs });
  return emit(run, state, undefined);
}

function mergeDigests(into: Record<string, string[]>, from: Readonly<Record<string, readonly string[]>>): void {
  for (const [path, list] of Object.entries(from)) {
    const have = (into[path] ??= []);
    for (const d of list) if (!have.includes(d.toLowerCase())) have.push(d.toLowerCase());
  }
}

/** Keylime's exclude list file: one regex per line; blank lines skipped. */
function excludeListLines(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.replace(/\r$/, '').trim())
    .filter((l) => l !== '');
}

export async function createRuntime(o: Record<string, unknown>, run: KeyholdRun): Promise<number> {
  const v = o as {
    imaMeasurementList?: string | true;
    imaLog?: string;
    rootfs?: string;
    allowlist?: string;
    excludelist?: string;
    exclude?: string[];
    algo?: string;
    hashAlg?: string;
    output?: string;
  };
  if (v.algo !== undefined && v.hashAlg !== undefined && v.algo !== v.hashAlg) throw new UsageError('--algo and --hash-alg disagree');
  const alg = v.algo ?? v.hashAlg ?? 'sha256';
  if (!HASH_ALGS.includes(alg)) throw new UsageError(`--algo must be one of ${HASH_ALGS.join(', ')}`);
  if (v.imaMeasurementList !== undefined && v.imaLog !== undefined) throw new UsageError('give -m/--ima-measurement-list or --ima-log, not both');
  const imaFile = v.imaLog ?? (v.imaMeasurementList === true ? IMA_MEASUREMENT_LIST : v.imaMeasurementList);
  if (imaFile === undefined && v.rootfs === undefined && v.allowlist === undefined) {
    throw new UsageError('give at least one source: -m/--ima-measurement-list [FILE], --rootfs DIR or -a/--allowlist FILE');
  }
  if ((v.algo !== undefined || v.hashAlg !== undefined) && v.rootfs === undefined) run.io.stderr.write('warning: --algo only applies to --rootfs (IMA lists and allowlists carry their digests)\n');

  const excludes = [...(v.excludelist !== undefined ? excludeListLines((await readLimited(v.excludelist)).toString('utf8')) : []), ...(v.exclude ?? [])];
  const digests: Record<string, string[]> = {};
  let base: RuntimePolicy = emptyRuntimePolicy();
  if (imaFile !== undefined) {
    const fromIma = createRuntimePolicyFromImaLog(parseImaLog((await readLimited(imaFile)).toString('utf8')));
    base = fromIma;
    mergeDigests(digests, fromIma.digests);
  }
  if (v.allowlist !== undefined) mergeDigests(digests, convertLegacyAllowlist((await readLimited(v.allowlist)).toString('utf8')).digests);
  if (v.rootfs !== undefined) mergeDigests(digests, await hashTree(v.rootfs, alg));
  const policy: RuntimePolicy = { ...base, digests, excludes };
  parseRuntimePolicy(policy); // validates the excludes and the result before printing
  return emit(run, policy, v.output);
}

/**
 * `keyhold policy import keylime-mb FILE`: Keylime's measured-boot reference state
 * (create_mb_refstate / keylime-policy create measured-boot) is refused, with what to do instead.
 * It pins S-CRTM and firmware blobs, MokList digests, the initrd and whole (shim, grub, kernel,
 * initrd, command line) tuples; Keyhold's reference state expresses PCR values, key databases,
 * boot applications and command lines. A partial conversion would silently drop checks.
 */
export async function importKeylimeMb(file: string, _run: KeyholdRun): Promise<number> {
  const text = (await readLimited(file)).toString('utf8');
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (cause) {
    throw new UsageError(`${file} is not JSON: ${(cause as Error).message}`, { cause });
  }
  const keys = doc !== null && typeof doc === 'object' && !Array.isArray(doc) ? Object.keys(doc) : [];
  const isKeylime = ['scrtm_and_bios', 'kernels', 'has_secureboot', 'mokdig'].some((k) => keys.includes(k));
  if (!isKeylime) {
    try {
      parseMeasuredBootReferenceState(doc);
      throw new UsageError(`${file} is already a Keyhold measured-boot reference state`, { hint: `upload it as is: keyhold config set-reference-value --name tpm_measured_boot --value "$(cat ${file})"` });
    } catch (err) {
      if (err instanceof UsageError) throw err;
      throw new UsageError(`${file} is not a Keylime measured-boot reference state (no scrtm_and_bios, kernels, has_secureboot)`);
    }
  }
  const log = '/sys/kernel/security/tpm0/binary_bios_measurements';
  throw new CliError('KEYLIME_MB_NOT_CONVERTED', `${file} is a Keylime measured-boot reference state; Keyhold does not convert it`, {
    exitCode: EXIT.FAIL,
    hint:
      `Keylime pins S-CRTM/firmware blobs, MokList digests, the initrd and whole (shim, grub, kernel, initrd, cmdline) tuples, which a Keyhold reference state ` +
      `expresses differently; a partial conversion would silently drop checks. Build one from the event log of the same known-good machine (the log Keylime read): ` +
      `keyhold policy create measured-boot --eventlog ${log} --pin-pcrs 0,2 > mb.json, then ` +
      `keyhold config set-reference-value --name tpm_measured_boot --value "$(cat mb.json)"`,
  });
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
