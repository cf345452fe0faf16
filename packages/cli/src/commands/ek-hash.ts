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
import { promisify } from 'node:util';
import { CliError, UsageError } from '@keyhold/command-line';
import { canonicalSpkiDer, decodeUnverifiedEkCertificate, ekHash, IdentityError, parseTpm2bPublic, stripEkCertPadding, tpmPublicToSpkiDer } from '@keyhold/verifier';
import { EXIT } from '../command.js';
import type { KeyholdRun } from '../keyhold-run.js';

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

/** A tpm2-tools failure as one line naming the TCTI it tried (and what tpm2-tools said). */
function tpmToolError(err: unknown, tcti: string): CliError {
  const e = err as { code?: unknown; stderr?: unknown; message?: string };
  if (e.code === 'ENOENT') return new CliError('TPM2_TOOLS_MISSING', 'tpm2-tools is not installed (tpm2_createek not found)', { cause: err, hint: 'apt-get install tpm2-tools' });
  const said = typeof e.stderr === 'string' ? e.stderr.trim().split('\n').filter(Boolean).pop() : undefined;
  return new CliError('TPM_UNAVAILABLE', `cannot read the EK through TCTI ${tcti}${said !== undefined ? `: ${said}` : ''}`, {
    cause: err,
    hint: 'check --tcti (e.g. device:/dev/tpmrm0, swtpm:host=127.0.0.1,port=2321) and that the TPM answers (tpm2_getcap -T TCTI properties-fixed)',
  });
}

/**
 * `keyhold ek-hash`: print hex SHA-256 of the EK's DER SubjectPublicKeyInfo (the node identity the
 * KBS allowlist and enrolments use), from --ek-pub, --ek-cert or a TPM (--tcti).
 */
export async function printEkHash(o: { ekPub?: string; ekCert?: string; tcti?: string; alg: string }, run: KeyholdRun): Promise<number> {
  const sources = [o.ekPub, o.ekCert, o.tcti].filter((v) => v !== undefined);
  if (sources.length !== 1) throw new UsageError('give exactly one of --ek-pub, --ek-cert, --tcti');
  if (o.alg !== 'rsa' && o.alg !== 'ecc') throw new UsageError('--alg must be rsa or ecc');
  let hash: string;
  let extra: Record<string, string> = {};
  let source: string;
  if (o.ekPub !== undefined) {
    source = 'ek-pub';
    hash = ekHash(ekSpkiFromPublicFile(new Uint8Array(await readFile(o.ekPub))));
  } else if (o.ekCert !== undefined) {
    source = 'ek-cert';
    const cert = decodeUnverifiedEkCertificate(ekCertDerFromFile(new Uint8Array(await readFile(o.ekCert))));
    hash = cert.ekHash;
    extra = Object.fromEntries(
      Object.entries({ tpmManufacturer: cert.tpmManufacturer, tpmModel: cert.tpmModel, tpmVersion: cert.tpmVersion, issuer: cert.issuer }).filter(
        (e): e is [string, string] => e[1] !== undefined,
      ),
    );
  } else {
    source = 'tpm';
    const tcti = o.tcti as string;
    let spki: Uint8Array;
    try {
      spki = await ekSpkiFromTpm(tcti, o.alg);
    } catch (err) {
      if (err instanceof IdentityError) throw err;
      throw tpmToolError(err, tcti);
    }
    hash = ekHash(spki);
  }
  run.io.stdout.write(run.json ? `${JSON.stringify({ ekHash: hash, source, ...extra })}\n` : `${hash}\n`);
  return EXIT.OK;
}
