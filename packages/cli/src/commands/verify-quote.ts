import { createPublicKey } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { Command, CommanderError, Option } from 'commander';
import {
  IdentityError,
  VerifierError,
  decodeUnverifiedSignature,
  decodeUnverifiedTpm2ToolsPcrFile,
  parseTpm2bPublic,
  pcrBankByAlgId,
  tpmPublicToSpkiDer,
  verifyQuote,
  type UnverifiedSignature,
  type VerifiedQuote,
} from '@keyhold/verifier';
import { EXIT, type CommandIo } from '../command.js';

const DESCRIPTION = [
  'Verifies a TPM2_Quote like tpm2_checkquote (same short flags), but strictly: magic and type, the signature with the AK (RSASSA, RSAPSS, ECDSA; SHA-256/384), the nonce, that the quote selects exactly the PCRs of the file (one bank), and the PCR digest. On success it prints the PCRs and the signature as tpm2_checkquote does; on failure nothing on stdout and the reason on stderr. It does not decide whether the AK is trustworthy.',
  'Differences from tpm2_checkquote: -q and -f are required (a quote without its nonce may be a replay, one without its PCR values proves no state), -g must name the signature\'s hash when given, and -l is not supported (give the PCR file of tpm2_quote -o).',
  'Exit status: 0 valid, 1 invalid, 2 usage error.',
].join('\n\n');

/** Input files are small TPM structures; refuse anything larger before reading it. */
const MAX_FILE_BYTES = 64 * 1024;
const MAX_NONCE_BYTES = 64;
const HASH_NAMES = ['sha1', 'sha256', 'sha384', 'sha512'] as const;

class UsageError extends Error {}

async function readInput(file: string, what: string): Promise<Uint8Array> {
  try {
    const st = await stat(file);
    if (!st.isFile() || st.size > MAX_FILE_BYTES) throw new UsageError(`${what} ${file}: not a regular file of at most ${MAX_FILE_BYTES} bytes`);
    return await readFile(file);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? 'cannot read'}`);
  }
}

/**
 * The AK as DER SubjectPublicKeyInfo, from what tpm2_checkquote -u accepts: PEM (a public key or a
 * certificate), a TPM2B_PUBLIC (tpm2_createak -u, tpm2-tools' "tss" format; recognised by its
 * big-endian size prefix covering the rest of the file), or DER SPKI passed on for the verifier to judge.
 */
function akToSpkiDer(bytes: Uint8Array): Uint8Array {
  const text = Buffer.from(bytes).toString('latin1');
  if (text.includes('-----BEGIN')) {
    try {
      return createPublicKey(text).export({ format: 'der', type: 'spki' });
    } catch (cause) {
      throw new VerifierError('QUOTE_INVALID_AK', 'AK PEM does not hold a public key', { cause });
    }
  }
  if (bytes.byteLength >= 2 && ((bytes[0] as number) << 8) + (bytes[1] as number) === bytes.byteLength - 2) {
    try {
      return tpmPublicToSpkiDer(parseTpm2bPublic(bytes));
    } catch (cause) {
      throw new VerifierError('QUOTE_INVALID_AK', `AK TPM2B_PUBLIC is not a usable public key${cause instanceof IdentityError ? ` (${cause.code})` : ''}`, { cause });
    }
  }
  return bytes;
}

/** tpm2_checkquote's -q: a hex string (optionally 0x-prefixed), else a file holding the bytes. */
async function qualification(value: string): Promise<Uint8Array> {
  const hex = value.startsWith('0x') ? value.slice(2) : value;
  if (/^(?:[0-9a-fA-F]{2})*$/.test(hex)) {
    if (hex.length > 2 * MAX_NONCE_BYTES) throw new UsageError(`-q: at most ${MAX_NONCE_BYTES} bytes`);
    return Buffer.from(hex, 'hex');
  }
  let bytes: Uint8Array;
  try {
    bytes = await readInput(value, '-q');
  } catch {
    throw new UsageError(`-q ${value}: neither hex nor a readable file`);
  }
  if (bytes.byteLength > MAX_NONCE_BYTES) throw new UsageError(`-q ${value}: at most ${MAX_NONCE_BYTES} bytes`);
  return bytes;
}

/**
 * The signature as tpm2_checkquote prints it after `sig:`: the RSA signature, or for ECDSA the DER
 * ECDSA-Sig-Value (SEQUENCE of the INTEGERs r and s, RFC 3279 2.2.3) that OpenSSL verifies.
 */
function signatureHex(sig: UnverifiedSignature): string {
  if (sig.scheme !== 'ecdsa') return Buffer.from(sig.signature).toString('hex');
  return der(0x30, Buffer.concat([derInteger(sig.r), derInteger(sig.s)])).toString('hex');
}

function derInteger(bigEndian: Uint8Array): Buffer {
  let start = 0;
  while (start < bigEndian.byteLength - 1 && bigEndian[start] === 0) start++;
  const v = Buffer.from(bigEndian.subarray(start));
  return der(0x02, (v[0] as number) & 0x80 ? Buffer.concat([Buffer.from([0]), v]) : v);
}

function der(tag: number, body: Buffer): Buffer {
  const len = body.byteLength < 0x80 ? Buffer.from([body.byteLength]) : Buffer.from([0x81, body.byteLength]);
  return Buffer.concat([Buffer.from([tag]), len, body]);
}

/** tpm2_checkquote's stdout: the PCRs (upper-case hex, index left-aligned on two columns) by bank, then the signature. */
function checkquoteText(q: VerifiedQuote, sig: UnverifiedSignature): string {
  let s = `pcrs:\n  ${q.pcrBank}:\n`;
  for (const [i, v] of q.pcrs) s += `    ${String(i).padEnd(2)}: 0x${Buffer.from(v).toString('hex').toUpperCase()}\n`;
  return `${s}sig: ${signatureHex(sig)}\n`;
}

function toJson(q: VerifiedQuote): unknown {
  const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
  return {
    signatureScheme: q.signatureScheme,
    hashAlgorithm: q.hashAlgorithm,
    qualifiedSigner: hex(q.qualifiedSigner),
    extraData: hex(q.extraData),
    clockInfo: {
      clock: q.clockInfo.clock.toString(10),
      resetCount: q.clockInfo.resetCount,
      restartCount: q.clockInfo.restartCount,
      safe: q.clockInfo.safe,
    },
    firmwareVersion: q.firmwareVersion.toString(16).padStart(16, '0'),
    pcrBank: q.pcrBank,
    pcrs: Object.fromEntries([...q.pcrs].map(([i, v]) => [String(i), hex(v)])),
    pcrDigest: hex(q.pcrDigest),
  };
}

interface Options {
  public?: string;
  message?: string;
  signature?: string;
  pcr?: string;
  qualification?: string;
  hashAlgorithm?: (typeof HASH_NAMES)[number];
  json?: boolean;
}

/** `keyhold verify-quote -u AK -m MSG -s SIG -f PCRS -q NONCE [-g ALG] [--json]`. Returns the exit status. */
export async function run(argv: string[], io: CommandIo): Promise<number> {
  const program = new Command('keyhold verify-quote')
    .description(DESCRIPTION)
    .addOption(new Option('-u, --public <file>', 'AK public key: PEM, TPM2B_PUBLIC (tpm2_createak -u) or DER SubjectPublicKeyInfo'))
    .addOption(new Option('--ak <file>', 'same as -u').hideHelp())
    .option('-m, --message <file>', 'TPMS_ATTEST (tpm2_quote -m)')
    .option('-s, --signature <file>', 'TPMT_SIGNATURE (tpm2_quote -s)')
    .option('-f, --pcr <file>', 'PCR values in tpm2-tools format (tpm2_quote -o)')
    .addOption(new Option('--pcrs <file>', 'same as -f').hideHelp())
    .option('-q, --qualification <hex|file>', 'the qualifying data (nonce) given to tpm2_quote -q: hex, or a file holding it')
    .addOption(new Option('--nonce <hex>', 'same as -q').hideHelp())
    .addOption(new Option('-g, --hash-algorithm <alg>', "the quote's hash algorithm; must match the signature's").choices(HASH_NAMES))
    .addOption(new Option('-F, --format <format>', 'ignored (deprecated in tpm2_checkquote too)').hideHelp())
    .option('--json', 'print the verified quote as JSON instead')
    .helpOption('-h, --help', 'show this help')
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) });
  try {
    program.parse(argv, { from: 'user' });
  } catch (err) {
    if (!(err instanceof CommanderError)) throw err;
    return err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
  }
  const o = program.opts<Options & { ak?: string; pcrs?: string; nonce?: string }>();
  const ak = o.public ?? o.ak;
  const pcrs = o.pcr ?? o.pcrs;
  const nonce = o.qualification ?? o.nonce;
  if (ak === undefined || o.message === undefined || o.signature === undefined || pcrs === undefined || nonce === undefined) {
    io.stderr.write('keyhold verify-quote: -u, -m, -s, -f and -q are required (see --help)\n');
    return EXIT.USAGE;
  }

  let inputs: [Uint8Array, Uint8Array, Uint8Array, Uint8Array, Uint8Array];
  try {
    inputs = await Promise.all([readInput(ak, '-u'), readInput(o.message, '-m'), readInput(o.signature, '-s'), readInput(pcrs, '-f'), qualification(nonce)]);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.stderr.write(`keyhold verify-quote: ${err.message}\n`);
    return EXIT.USAGE;
  }
  const [akBytes, messageBytes, signatureBytes, pcrBytes, expectedExtraData] = inputs;

  let verified: VerifiedQuote;
  let signature: UnverifiedSignature;
  try {
    const banks = decodeUnverifiedTpm2ToolsPcrFile(pcrBytes);
    const only = banks[0];
    const bank = only === undefined ? undefined : pcrBankByAlgId(only.hashAlg);
    if (banks.length !== 1 || only === undefined || bank === undefined) {
      io.stderr.write('keyhold verify-quote: invalid quote: the PCR file must hold exactly one SHA-1, SHA-256 or SHA-384 bank\n');
      return EXIT.FAIL;
    }
    verified = verifyQuote({
      message: messageBytes,
      signature: signatureBytes,
      akPublicKeyDer: akToSpkiDer(akBytes),
      pcrs: { bank, values: only.values },
      expectedExtraData,
    });
    signature = decodeUnverifiedSignature(signatureBytes);
  } catch (err) {
    if (!(err instanceof VerifierError)) throw err;
    io.stderr.write(`keyhold verify-quote: invalid quote: ${err.message} (${err.code})\n`);
    return EXIT.FAIL;
  }
  // SECURITY: -g names the hash the caller expects; a quote signed over another hash is refused rather than reinterpreted.
  if (o.hashAlgorithm !== undefined && o.hashAlgorithm !== verified.hashAlgorithm) {
    io.stderr.write(`keyhold verify-quote: invalid quote: signed with ${verified.hashAlgorithm}, -g says ${o.hashAlgorithm}\n`);
    return EXIT.FAIL;
  }
  io.stdout.write(o.json === true ? `${JSON.stringify(toJson(verified))}\n` : checkquoteText(verified, signature));
  return EXIT.OK;
}
