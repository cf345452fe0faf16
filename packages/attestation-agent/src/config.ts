import { accessSync, constants } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseKbsUrl } from '@keyhold/command-line';
import type { CommonValues } from './agent-options.js';
import { AgentError } from './errors.js';
import { DEFAULT_AK_HANDLE } from './tpm/device.js';
import { DEFAULT_TCTI } from './tpm/tss-device.js';
import type { EkAlg, KeyAlg } from './tpm/templates.js';
import type { TeeKeyType } from './kbs-client/tee-key.js';
import { DEFAULT_EVENT_LOG_FILE, DEFAULT_IMA_LOG_FILE } from './attester/boot-log-contributor.js';

/** Settings shared by every `keyhold-agent` command, parsed once from flags and environment. */
export interface AgentConfig {
  readonly url: string;
  /** CA bundle (PEM file) trusted for an https KBS (`--cert-file`, env KEYHOLD_KBS_CA); undefined: the system's. */
  readonly caFile: string | undefined;
  readonly tcti: string;
  /** `persistent`: the AK at `akHandle` (created under the EK and persisted there when empty);
   *  `stored`: an AK created under the EK, its blobs kept in `stateDir`. */
  readonly akMode: 'persistent' | 'stored';
  readonly akHandle: number;
  readonly akAlg: KeyAlg;
  readonly akCreate: boolean;
  readonly stateDir: string;
  readonly initDataFile: string | undefined;
  readonly teeKey: TeeKeyType;
  readonly json: boolean;
  readonly timeoutMs: number;
  /** TCG event log sent as `event_log`; undefined: none. */
  readonly eventLogFile: string | undefined;
  /** IMA ASCII measurement list sent as `ima_log`; undefined: none. */
  readonly imaLogFile: string | undefined;
  /** Name the EK (public, certificate) and AK to the KBS and answer credential activation (hardware identity). */
  readonly ekIdentity: boolean;
  /** EK named to the KBS: TCG template L-1 (RSA 2048), L-2 (ECC P-256) or high-range H-3 (ECC P-384). */
  readonly ekAlg: EkAlg;
  /** `tpm-*` tee keys: SHA-256 PCRs whose current values the key is sealed to (PolicyPCR); empty: unsealed. */
  readonly sealToPcrs: readonly number[];
  /** Sealed JWE cache directory (`tpm-*` tee keys only); undefined: off. */
  readonly cacheDir: string | undefined;
  /** Evidence type: `tpm`, Azure CVM vTPM (`az-snp-vtpm`, `az-tdx-vtpm`), or `auto` (an HCL report in NV means Azure). */
  readonly tee: 'tpm' | 'az-snp-vtpm' | 'az-tdx-vtpm' | 'auto';
  /** True when --ak-handle was given (Azure vTPM evidence otherwise uses the AK at 0x81000003). */
  readonly akHandleSet: boolean;
  /** az-snp-vtpm: read the VCEK from this file (PEM/DER) instead of Azure IMDS. */
  readonly vcekFile: string | undefined;
}

export type { CommonValues } from './agent-options.js';

/**
 * TCTI modules tpm2-tss knows by short name (`Tss2_TctiLdr`): `NAME[:CONF]`, e.g. `device:/dev/tpmrm0`,
 * `swtpm:host=127.0.0.1,port=2321`, `mssim:host=...,port=...`, `tabrmd:bus_type=system`.
 */
export const KNOWN_TCTI_NAMES = ['device', 'swtpm', 'mssim', 'tabrmd', 'cmd', 'pcap', 'libtpms', 'spi-helper', 'i2c-helper', 'spi-ltt2go', 'spi-ftdi', 'i2c-ftdi'] as const;

function invalid(msg: string): never {
  throw new AgentError('CONFIG_INVALID', msg);
}

/** Build the frozen config from parsed flags and the environment (the only place env is read). */
export function agentConfigFrom(values: CommonValues, env: NodeJS.ProcessEnv): AgentConfig {
  const url = parseKbsUrl(values.url ?? env['KEYHOLD_KBS_URL'] ?? 'http://127.0.0.1:8080', values.url !== undefined ? '--url' : env['KEYHOLD_KBS_URL'] !== undefined ? 'KEYHOLD_KBS_URL' : '--url');
  const caText = values['cert-file'] ?? env['KEYHOLD_KBS_CA'];
  const tcti = tctiOf(values.tcti, env);
  const akMode = values['ak-mode'] ?? 'persistent';
  if (akMode !== 'persistent' && akMode !== 'stored') invalid('--ak-mode must be persistent or stored');
  const handleText = values['ak-handle'] ?? `0x${DEFAULT_AK_HANDLE.toString(16)}`;
  if (!/^0x81[0-9a-fA-F]{6}$/.test(handleText)) invalid('--ak-handle must be a persistent handle 0x81xxxxxx');
  const akAlg = values['ak-alg'] ?? 'rsa';
  if (akAlg !== 'rsa' && akAlg !== 'ecc') invalid('--ak-alg must be rsa or ecc');
  const teeKey = values['tee-key'] ?? 'ec';
  if (teeKey !== 'ec' && teeKey !== 'rsa' && teeKey !== 'tpm-rsa' && teeKey !== 'tpm-ecc') invalid('--tee-key must be ec, rsa, tpm-rsa or tpm-ecc');
  const tpmKey = teeKey === 'tpm-rsa' || teeKey === 'tpm-ecc';
  if (!tpmKey && values['seal-to-pcrs'] !== undefined) invalid('--seal-to-pcrs needs --tee-key tpm-rsa or tpm-ecc');
  if (!tpmKey && values['cache-dir'] !== undefined) invalid('--cache-dir needs --tee-key tpm-rsa or tpm-ecc (a software key would have to be stored)');
  const timeoutMs = Number(values['timeout-ms'] ?? '30000');
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) invalid('--timeout-ms must be a positive integer');
  const stateDir = resolve(values['state-dir'] ?? env['KEYHOLD_AGENT_STATE_DIR'] ?? (env['XDG_STATE_HOME'] !== undefined ? join(env['XDG_STATE_HOME'], 'keyhold-agent') : join(homedir(), '.local', 'state', 'keyhold-agent')));
  return Object.freeze({
    url,
    caFile: caText !== undefined && caText !== '' ? resolve(caText) : undefined,
    tcti,
    akMode,
    akHandle: Number.parseInt(handleText, 16),
    akAlg,
    akCreate: values['no-ak-create'] !== true,
    stateDir,
    initDataFile: values['init-data'] !== undefined ? resolve(values['init-data']) : undefined,
    teeKey,
    json: values.json === true,
    timeoutMs,
    eventLogFile: logFile(values['event-log'], values['no-event-log'], DEFAULT_EVENT_LOG_FILE, tcti, '--event-log'),
    imaLogFile: logFile(values['ima-log'], values['no-ima-log'], DEFAULT_IMA_LOG_FILE, tcti, '--ima-log'),
    ekIdentity: values['no-ek-identity'] !== true,
    ekAlg: ekAlgOf(values['ek-alg']),
    sealToPcrs: pcrListOf(values['seal-to-pcrs']),
    cacheDir: values['cache-dir'] !== undefined ? resolve(values['cache-dir']) : undefined,
    tee: teeOf(values.tee),
    akHandleSet: values['ak-handle'] !== undefined,
    vcekFile: values['vcek-file'] !== undefined ? resolve(values['vcek-file']) : undefined,
  });
}

/**
 * The log file to send: the one named, none with --no-…, else the kernel's file when the TPM is the
 * host's (not a swtpm/mssim simulator, whose PCRs the host's logs do not describe) and it is readable.
 */
function logFile(named: string | undefined, disabled: boolean | undefined, fallback: string, tcti: string, flag: string): string | undefined {
  if (named !== undefined && disabled === true) invalid(`${flag} and --no-${flag.slice(2)} exclude each other`);
  if (disabled === true) return undefined;
  if (named !== undefined) return resolve(named);
  if (/^(swtpm|mssim)(:|$)/.test(tcti)) return undefined;
  try {
    accessSync(fallback, constants.R_OK);
    return fallback;
  } catch {
    return undefined;
  }
}

/** `--seal-to-pcrs`: `all` (PCRs 0-23, what the quote covers) or a comma-separated list of indices. */
function pcrListOf(v: string | undefined): readonly number[] {
  if (v === undefined) return [];
  if (v === 'all') return Array.from({ length: 24 }, (_, i) => i);
  const list = v.split(',').map((p) => (/^\d{1,2}$/.test(p.trim()) ? Number(p.trim()) : Number.NaN));
  if (list.some((i) => !Number.isInteger(i) || i > 23) || new Set(list).size !== list.length) invalid('--seal-to-pcrs must be all or distinct PCR indices 0-23, e.g. 0,2,4,7');
  return Object.freeze([...list].sort((a, b) => a - b));
}

function ekAlgOf(v: string | undefined): EkAlg {
  const alg = v ?? 'rsa';
  if (alg !== 'rsa' && alg !== 'ecc' && alg !== 'ecc384') invalid('--ek-alg must be rsa, ecc or ecc384');
  return alg;
}

function teeOf(v: string | undefined): AgentConfig['tee'] {
  const tee = v ?? 'tpm';
  if (tee !== 'tpm' && tee !== 'az-snp-vtpm' && tee !== 'az-tdx-vtpm' && tee !== 'auto') invalid('--tee must be tpm, az-snp-vtpm, az-tdx-vtpm or auto');
  return tee;
}

/**
 * The TCTI to use (flag, then KEYHOLD_TCTI, TPM2TOOLS_TCTI, TCTI, then the kernel's resource
 * manager). An unknown module name is refused here with the list of known ones, instead of as an
 * opaque tpm2-tss load failure later; a library file name or path (`libtss2-tcti-x.so.0`) passes.
 */
function tctiOf(flag: string | undefined, env: NodeJS.ProcessEnv): string {
  const sources: [string, string | undefined][] = [
    ['--tcti', flag],
    ['KEYHOLD_TCTI', env['KEYHOLD_TCTI']],
    ['TPM2TOOLS_TCTI', env['TPM2TOOLS_TCTI']],
    ['TCTI', env['TCTI']],
  ];
  const found = sources.find((s) => s[1] !== undefined && s[1] !== '');
  if (found === undefined) return DEFAULT_TCTI;
  const [source, tcti] = found as [string, string];
  const name = tcti.split(':', 1)[0] ?? '';
  if (!(KNOWN_TCTI_NAMES as readonly string[]).includes(name) && !name.includes('/') && !name.startsWith('libtss2-tcti-')) {
    invalid(`${source} ${JSON.stringify(tcti.slice(0, 200))}: unknown TCTI '${name.slice(0, 64)}' (known: ${KNOWN_TCTI_NAMES.join(', ')}; e.g. device:/dev/tpmrm0, swtpm:host=127.0.0.1,port=2321)`);
  }
  return tcti;
}
