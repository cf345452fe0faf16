/**
 * Reference values are checked when they are uploaded, by the same parsers the appraisal uses, so a
 * typo is refused at once (400 naming the name and the value's position) instead of being stored and
 * then failing every attestation (issue 12, item 4). Names the built-in appraisal reads:
 *   `<tee>_pcrNN` (and `pcrNN`)  hex of a PCR bank's digest: 40, 64, 96 or 128 hex digits (SHA-1,
 *                               SHA-256, SHA-384, SHA-512); NN is two digits, 00..23
 *   `tpm_measured_boot`         exactly one measured-boot reference state (JSON; verifier's parser)
 *   `tpm_runtime_policy`        one or more Keylime runtime policies (JSON; verifier's parser)
 *   `trusted_ak`                standard base64 of a DER SubjectPublicKeyInfo (RSA or EC)
 * Other names are the owner's own (read by their CEL policies) and are stored as given. Messages
 * name the reference value and the position of the bad value, never the value itself (values may be
 * large, and echoing input back is how injection starts).
 */
import { createPublicKey } from 'node:crypto';
import { parseMeasuredBootReferenceState, parseRuntimePolicy } from '@keyhold/verifier';
import { KbsError } from '../errors.js';

/** `pcrNN`, `tpm_pcrNN`, `az-snp-vtpm_pcrNN`, ...: the digits are captured. */
const PCR_NAME = /^(?:[A-Za-z0-9-]+_)?pcr([0-9]+)$/;
const HEX = /^[0-9A-Fa-f]+$/;
/** Hex lengths of the PCR banks a TPM quotes: SHA-1, SHA-256, SHA-384, SHA-512. */
const DIGEST_HEX_LENGTHS = new Set([40, 64, 96, 128]);
const STD_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const MAX_DETAIL_CHARS = 200;

export const MEASURED_BOOT_NAME = 'tpm_measured_boot';
export const RUNTIME_POLICY_NAME = 'tpm_runtime_policy';
export const TRUSTED_AK_NAME = 'trusted_ak';

function refuse(name: string, why: string): KbsError {
  return new KbsError('BAD_REQUEST', `reference value ${name}: ${why.slice(0, MAX_DETAIL_CHARS)}`);
}

/** "value 2 of 3" (1-based), or "its value" for a single one. */
function which(i: number, n: number): string {
  return n === 1 ? 'its value' : `value ${i + 1} of ${n}`;
}

function parseJson(name: string, v: string, i: number, n: number): unknown {
  try {
    return JSON.parse(v);
  } catch {
    throw refuse(name, `${which(i, n)} is not JSON`);
  }
}

/** The parser's own message (a coded error from the verifier), without the code prefix repeated. */
function reasonOf(err: unknown): string {
  return err instanceof Error ? err.message.replace(/[\u0000-\u001f\u007f]/g, ' ') : 'invalid';
}

function checkPcr(name: string, digits: string, values: readonly string[]): void {
  const n = Number(digits);
  // SECURITY: the policies compare `pcrNN` with two digits for PCRs 0..23 only; any other spelling
  // would be stored and silently never compared — a pin that pins nothing (fail closed at upload).
  if (digits.length !== 2 || !(n >= 0 && n <= 23)) throw refuse(name, `PCR index must be two digits 00..23 (e.g. ${name.replace(/pcr[0-9]+$/, 'pcr07')})`);
  if (values.length === 0) throw refuse(name, 'no values: a pinned PCR needs at least one accepted value');
  values.forEach((v, i) => {
    // SECURITY: a value that is not a digest of a PCR bank can never match, so every attestation
    // would be contraindicated by a typo; refuse it at upload (TPM 2.0 Part 2 §10.5, TPMU_HA).
    if (!HEX.test(v) || !DIGEST_HEX_LENGTHS.has(v.length)) {
      throw refuse(name, `${which(i, values.length)} is not hex of a SHA-1/256/384/512 PCR digest (40, 64, 96 or 128 hex digits; it has ${v.length} characters)`);
    }
  });
}

function checkTrustedAk(name: string, values: readonly string[]): void {
  values.forEach((v, i) => {
    // SECURITY: AKs are compared as DER SPKI; anything else never matches (and lenient base64 would
    // give two spellings of one key) — refuse it at upload (Trustee's trusted_ak format).
    if (v.length === 0 || !STD_BASE64.test(v)) throw refuse(name, `${which(i, values.length)} is not standard base64 (of a DER SubjectPublicKeyInfo)`);
    let type: string | undefined;
    try {
      type = createPublicKey({ key: Buffer.from(v, 'base64'), format: 'der', type: 'spki' }).asymmetricKeyType;
    } catch {
      throw refuse(name, `${which(i, values.length)} is not a DER SubjectPublicKeyInfo (base64); the agent prints one: keyhold-agent ak`);
    }
    if (type !== 'rsa' && type !== 'ec') throw refuse(name, `${which(i, values.length)} is a ${String(type)} key; a TPM AK is RSA or EC`);
  });
}

function checkMeasuredBoot(name: string, values: readonly string[]): void {
  // SECURITY: exactly one reference state, as the appraisal requires (ambiguity would fail every attestation).
  if (values.length !== 1) throw refuse(name, `must hold exactly one measured-boot reference state (it has ${values.length} values)`);
  try {
    parseMeasuredBootReferenceState(parseJson(name, values[0]!, 0, 1));
  } catch (err) {
    if (err instanceof KbsError) throw err;
    throw refuse(name, reasonOf(err));
  }
}

function checkRuntimePolicy(name: string, values: readonly string[]): void {
  if (values.length === 0) throw refuse(name, 'no values: give at least one runtime policy');
  values.forEach((v, i) => {
    try {
      parseRuntimePolicy(parseJson(name, v, i, values.length));
    } catch (err) {
      if (err instanceof KbsError) throw err;
      throw refuse(name, `${which(i, values.length)}: ${reasonOf(err)}`);
    }
  });
}

/**
 * Check the reference values of one upload (names already validated as identifiers). Throws KbsError
 * BAD_REQUEST naming the first bad name; nothing of the upload is stored then.
 */
export function validateReferenceValues(entries: Readonly<Record<string, readonly string[]>>): void {
  for (const [name, values] of Object.entries(entries)) {
    const pcr = PCR_NAME.exec(name);
    if (pcr !== null) checkPcr(name, pcr[1]!, values);
    else if (name === TRUSTED_AK_NAME) checkTrustedAk(name, values);
    else if (name === MEASURED_BOOT_NAME) checkMeasuredBoot(name, values);
    else if (name === RUNTIME_POLICY_NAME) checkRuntimePolicy(name, values);
  }
}
