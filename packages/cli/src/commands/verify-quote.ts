import { createPublicKey } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import {
  VerifierError,
  decodeUnverifiedTpm2ToolsPcrFile,
  pcrBankByAlgId,
  verifyQuote,
  type VerifiedQuote,
} from '@keyhold/verifier';
import { EXIT, type CommandIo } from '../command.js';

const USAGE = `Usage: keyhold verify-quote --ak FILE --message FILE --signature FILE --pcrs FILE --nonce HEX [--json]

Verifies a TPM2_Quote like tpm2_checkquote, but strictly: magic and type, signature with the AK
(RSASSA, RSAPSS, ECDSA; SHA-256/384), the nonce, that the quote selects exactly the PCRs in the
file (one bank), and the PCR digest. It does not decide whether the AK is trustworthy.

  --ak FILE         AK public key: PEM or DER SubjectPublicKeyInfo (tpm2_createak -f pem)
  --message FILE    TPMS_ATTEST (tpm2_quote -m)
  --signature FILE  TPMT_SIGNATURE (tpm2_quote -s)
  --pcrs FILE       PCR values in tpm2-tools format (tpm2_quote -o)
  --nonce HEX       the qualifying data given to tpm2_quote -q
  --json            print the verified quote as JSON on stdout

Exit status: 0 valid, 1 invalid, 2 usage error.`;

/** Input files are small TPM structures; refuse anything larger before reading it. */
const MAX_FILE_BYTES = 64 * 1024;
const MAX_NONCE_BYTES = 64;

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

/** A PEM public key (or certificate) becomes DER SPKI; anything else is passed on as DER for the verifier to judge. */
function akToSpkiDer(bytes: Uint8Array): Uint8Array {
  const text = Buffer.from(bytes).toString('latin1');
  if (!text.includes('-----BEGIN')) return bytes;
  try {
    return createPublicKey(text).export({ format: 'der', type: 'spki' });
  } catch (cause) {
    throw new VerifierError('QUOTE_INVALID_AK', 'AK PEM does not hold a public key', { cause });
  }
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

export async function run(argv: string[], io: CommandIo): Promise<number> {
  let values: { ak?: string; message?: string; signature?: string; pcrs?: string; nonce?: string; json?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        ak: { type: 'string' },
        message: { type: 'string' },
        signature: { type: 'string' },
        pcrs: { type: 'string' },
        nonce: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: false,
      strict: true,
    }));
  } catch (err) {
    io.stderr.write(`keyhold verify-quote: ${(err as Error).message.split('\n')[0]}\n`);
    return EXIT.USAGE;
  }
  if (values.help === true) {
    io.stdout.write(`${USAGE}\n`);
    return EXIT.OK;
  }
  const { ak, message, signature, pcrs, nonce } = values;
  if (ak === undefined || message === undefined || signature === undefined || pcrs === undefined || nonce === undefined) {
    io.stderr.write('keyhold verify-quote: --ak, --message, --signature, --pcrs and --nonce are required (see --help)\n');
    return EXIT.USAGE;
  }
  const nonceHex = nonce.startsWith('0x') ? nonce.slice(2) : nonce;
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(nonceHex) || nonceHex.length > 2 * MAX_NONCE_BYTES) {
    io.stderr.write(`keyhold verify-quote: --nonce must be hex of at most ${MAX_NONCE_BYTES} bytes\n`);
    return EXIT.USAGE;
  }

  let files: [Uint8Array, Uint8Array, Uint8Array, Uint8Array];
  try {
    files = await Promise.all([
      readInput(ak, '--ak'),
      readInput(message, '--message'),
      readInput(signature, '--signature'),
      readInput(pcrs, '--pcrs'),
    ]);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.stderr.write(`keyhold verify-quote: ${err.message}\n`);
    return EXIT.USAGE;
  }
  const [akBytes, messageBytes, signatureBytes, pcrBytes] = files;

  let verified: VerifiedQuote;
  try {
    const banks = decodeUnverifiedTpm2ToolsPcrFile(pcrBytes);
    const only = banks[0];
    const bank = only === undefined ? undefined : pcrBankByAlgId(only.hashAlg);
    if (banks.length !== 1 || only === undefined || bank === undefined) {
      io.stderr.write('keyhold verify-quote: the PCR file must hold exactly one SHA-1, SHA-256 or SHA-384 bank\n');
      return EXIT.FAIL;
    }
    verified = verifyQuote({
      message: messageBytes,
      signature: signatureBytes,
      akPublicKeyDer: akToSpkiDer(akBytes),
      pcrs: { bank, values: only.values },
      expectedExtraData: Buffer.from(nonceHex, 'hex'),
    });
  } catch (err) {
    if (!(err instanceof VerifierError)) throw err;
    io.stderr.write(`keyhold verify-quote: invalid quote: ${err.message} (${err.code})\n`);
    return EXIT.FAIL;
  }

  if (values.json === true) {
    io.stdout.write(`${JSON.stringify(toJson(verified))}\n`);
  } else {
    const list = [...verified.pcrs.keys()].join(',');
    io.stdout.write(`quote OK: ${verified.signatureScheme}-${verified.hashAlgorithm}, ${verified.pcrBank} PCRs ${list}\n`);
  }
  return EXIT.OK;
}
