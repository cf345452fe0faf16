/**
 * `keyhold ek-hash` — print a node's identity: hex SHA-256 of its EK's DER SubjectPublicKeyInfo,
 * the value the KBS EK allowlist and enrolment records use.
 *
 * Inputs: an EK public key file (PEM or DER SPKI, or a TPM2B_PUBLIC as written by
 * `tpm2_createek -u` / `tpm2_readpublic -o`), an EK certificate (PEM, DER, or raw NV contents
 * with trailing padding), or a TPM reached through a TCTI (runs `tpm2_createek` from tpm2-tools
 * and flushes the transient EK afterwards).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { canonicalSpkiDer, decodeUnverifiedEkCertificate, ekHash, IdentityError, parseTpm2bPublic, stripEkCertPadding, tpmPublicToSpkiDer } from '@keyhold/verifier';
import { EXIT, type CommandIo } from '../command.js';

const USAGE = `Usage: keyhold ek-hash (--ek-pub FILE | --ek-cert FILE | --tcti TCTI [--alg rsa|ecc]) [--json]

Print hex SHA-256 of the EK's DER SubjectPublicKeyInfo (the node identity used by the KBS).
  --ek-pub FILE    EK public key: PEM/DER SPKI, or TPM2B_PUBLIC (tpm2_createek -u, tpm2_readpublic -o)
  --ek-cert FILE   EK certificate: PEM or DER (NV padding is stripped)
  --tcti TCTI      read the EK from a TPM with tpm2_createek (e.g. device:/dev/tpmrm0, swtpm:port=2321)
  --alg rsa|ecc    EK type for --tcti (default rsa)
  --json           print {"ekHash", "source", ...} as JSON`;

const run_ = promisify(execFile);

/** SPKI DER of an EK given as PEM SPKI, DER SPKI or TPM2B_PUBLIC bytes. */
export function ekSpkiFromPublicFile(bytes: Uint8Array): Uint8Array {
  const text = Buffer.from(bytes).toString('latin1');
  if (text.includes('-----BEGIN PUBLIC KEY-----')) return canonicalSpkiDer(text);
  // A TPM2B_PUBLIC starts with its u16 size (< 0x0400), a DER SPKI with 0x30 (SEQUENCE).
  if (bytes[0] === 0x30) return canonicalSpkiDer(bytes);
  return tpmPublicToSpkiDer(parseTpm2bPublic(bytes));
}

/** DER of an EK certificate given as PEM or DER (NV contents may carry padding). */
export function ekCertDerFromFile(bytes: Uint8Array): Uint8Array {
  const text = Buffer.from(bytes).toString('latin1');
  const m = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE-----/.exec(text);
  if (m) return new Uint8Array(Buffer.from((m[1] ?? '').replace(/\s+/g, ''), 'base64'));
  return stripEkCertPadding(bytes);
}

async function transientHandles(tcti: string): Promise<Set<string>> {
  const { stdout } = await run_('tpm2_getcap', ['-T', tcti, 'handles-transient']);
  return new Set([...stdout.matchAll(/0x8[0-9a-fA-F]{7}/g)].map((m) => m[0].toLowerCase()));
}

/**
 * Read the EK public area from a TPM via tpm2-tools. tpm2_createek leaves the EK loaded when no
 * resource manager sits in between (swtpm, /dev/tpm0), so the transient handles it created are
 * flushed afterwards (found by comparing the handle lists before and after).
 */
export async function ekSpkiFromTpm(tcti: string, alg: 'rsa' | 'ecc'): Promise<Uint8Array> {
  const dir = await mkdtemp(path.join(tmpdir(), 'keyhold-ek-'));
  const pub = path.join(dir, 'ek.pub');
  try {
    const before = await transientHandles(tcti);
    try {
      await run_('tpm2_createek', ['-T', tcti, '-c', path.join(dir, 'ek.ctx'), '-G', alg, '-u', pub]);
    } finally {
      for (const h of await transientHandles(tcti)) {
        if (!before.has(h)) await run_('tpm2_flushcontext', ['-T', tcti, h]);
      }
    }
    return tpmPublicToSpkiDer(parseTpm2bPublic(new Uint8Array(await readFile(pub))));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function run(argv: string[], io: CommandIo): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        'ek-pub': { type: 'string' },
        'ek-cert': { type: 'string' },
        tcti: { type: 'string' },
        alg: { type: 'string', default: 'rsa' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (err) {
    io.stderr.write(`keyhold ek-hash: ${(err as Error).message}\n${USAGE}\n`);
    return EXIT.USAGE;
  }
  if (values.help === true) {
    io.stderr.write(`${USAGE}\n`);
    return EXIT.OK;
  }
  const sources = [values['ek-pub'], values['ek-cert'], values.tcti].filter((v) => v !== undefined);
  if (sources.length !== 1 || (values.alg !== 'rsa' && values.alg !== 'ecc')) {
    io.stderr.write(`keyhold ek-hash: give exactly one of --ek-pub, --ek-cert, --tcti (and --alg rsa|ecc)\n${USAGE}\n`);
    return EXIT.USAGE;
  }
  try {
    let hash: string;
    let extra: Record<string, string> = {};
    let source: string;
    if (values['ek-pub'] !== undefined) {
      source = 'ek-pub';
      hash = ekHash(ekSpkiFromPublicFile(new Uint8Array(await readFile(values['ek-pub']))));
    } else if (values['ek-cert'] !== undefined) {
      source = 'ek-cert';
      const cert = decodeUnverifiedEkCertificate(ekCertDerFromFile(new Uint8Array(await readFile(values['ek-cert']))));
      hash = cert.ekHash;
      extra = Object.fromEntries(
        Object.entries({ tpmManufacturer: cert.tpmManufacturer, tpmModel: cert.tpmModel, tpmVersion: cert.tpmVersion, issuer: cert.issuer }).filter(
          (e): e is [string, string] => e[1] !== undefined,
        ),
      );
    } else {
      source = 'tpm';
      hash = ekHash(await ekSpkiFromTpm(values.tcti as string, values.alg as 'rsa' | 'ecc'));
    }
    io.stdout.write(values.json === true ? `${JSON.stringify({ ekHash: hash, source, ...extra })}\n` : `${hash}\n`);
    return EXIT.OK;
  } catch (err) {
    if (err instanceof IdentityError || (err as NodeJS.ErrnoException).code !== undefined) {
      io.stderr.write(`keyhold ek-hash: ${(err as Error).message}\n`);
      return EXIT.FAIL;
    }
    throw err;
  }
}
