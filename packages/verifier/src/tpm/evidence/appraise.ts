import { createHash, timingSafeEqual } from 'node:crypto';
import { VerifierError } from '../../errors.js';
import { verifyQuote, type VerifiedQuote } from '../quote/verify.js';
import { decodeUnverifiedTpmEvidence, TPM_EVIDENCE_PCR_COUNT } from './decode.js';

/** Byte length of the runtime-data binding digest carried in extraData for `tpm` evidence (PROTOCOL-NOTES §1). */
export const REPORT_DATA_BYTES = 32;
/**
 * Longest qualifying data a TPM takes (TPM2B_DATA holds a TPMT_HA: 64 bytes). Azure vTPM evidence
 * carries the whole runtime-data digest (48 bytes for SHA-384), not a 32-byte prefix.
 */
export const MAX_REPORT_DATA_BYTES = 64;
/** Byte length of the init-data digest extended into PCR8 (Trustee, guest-components). */
export const INIT_DATA_DIGEST_BYTES = 32;
const INIT_DATA_PCR = 8;

/**
 * How the AK is to be trusted. There is no default: the caller must choose.
 * - `trusted-list`: the owner's `trusted_ak` reference values (DER SPKI). The evidence's AK must be
 *   byte-for-byte one of them; an empty list trusts nothing (fail closed).
 * - `not-checked`: the caller establishes AK trust elsewhere (e.g. EK certificate and credential
 *   activation). The result says `akTrusted: 'not-checked'`; release code must then fail closed
 *   unless that other check passed.
 */
export type AkTrust =
  | { readonly mode: 'trusted-list'; readonly trustedAkSpkiDer: readonly Uint8Array[] }
  | { readonly mode: 'not-checked' };

export interface AppraiseTpmEvidenceOptions {
  /**
   * The runtime-data binding digest the quote's extraData must equal: 32 bytes for `tpm` evidence
   * (the KBS fits it), the full digest (1..64 bytes) for Azure vTPM evidence.
   */
  readonly expectedReportData: Uint8Array;
  readonly akTrust: AkTrust;
  /** 32-byte init-data digest; when present PCR8 must equal sha256(0x00*32 ‖ digest). */
  readonly initDataDigest?: Uint8Array;
}

type PcrIndex = '00' | '01' | '02' | '03' | '04' | '05' | '06' | '07' | '08' | '09' | '10' | '11' |
  '12' | '13' | '14' | '15' | '16' | '17' | '18' | '19' | '20' | '21' | '22' | '23';

declare const verifiedTpmClaimsBrand: unique symbol;

/**
 * Claims from appraised `tpm` evidence, named as Trustee names them (lowercase hex PCRs of the
 * SHA-256 bank). Only `appraiseTpmEvidence` constructs one.
 */
export type VerifiedTpmClaims = {
  readonly [K in `pcr${PcrIndex}`]: string;
} & {
  readonly [verifiedTpmClaimsBrand]: true;
  /** Standard base64 of the AK's DER SubjectPublicKeyInfo. */
  readonly ak_public: string;
  /** Hex of the quote's extraData (the runtime-data binding digest). */
  readonly report_data: string;
  /** Hex of PCR8 (where the init-data digest is extended). */
  readonly init_data: string;
  readonly quote: {
    /** TPMS_CLOCK_INFO.clock, decimal (UINT64 milliseconds). */
    readonly clock: string;
    readonly resetCount: number;
    readonly restartCount: number;
    /** TPMS_ATTEST.firmwareVersion, 16 hex digits. */
    readonly firmwareVersion: string;
  };
};

export interface TpmAppraisal {
  readonly claims: VerifiedTpmClaims;
  /** `listed` when the AK was found in the trusted list; `not-checked` when the caller opted out. */
  readonly akTrusted: 'listed' | 'not-checked';
  readonly quote: VerifiedQuote;
}

const verifiedClaims = new WeakSet<object>();

/** True only for claims objects returned by `appraiseTpmEvidence`. */
export function isVerifiedTpmClaims(value: unknown): value is VerifiedTpmClaims {
  return typeof value === 'object' && value !== null && verifiedClaims.has(value);
}

function requireLength(value: unknown, bytes: number, name: string): Uint8Array {
  if (!(value instanceof Uint8Array) || value.byteLength !== bytes) {
    throw new TypeError(`appraiseTpmEvidence: ${name} must be a ${bytes}-byte Uint8Array`);
  }
  return value;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && timingSafeEqual(a, b);
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/**
 * Appraise Trustee `tpm` primary evidence (already JSON-parsed). Guarantees, when it returns:
 *  1. the evidence has Trustee's shape (`ak_public`, `tpm_quote.{message,signature,pcrs[24]}`);
 *  2. when `akTrust.mode` is `trusted-list`, the AK is byte-for-byte in the list (an empty list
 *     rejects everything);
 *  3. everything `verifyQuote` guarantees, with the SHA-256 PCRs 0..23 as the required selection and
 *     `expectedReportData` as the required extraData;
 *  4. when `initDataDigest` is given, PCR8 = SHA-256(0x00 × 32 ‖ initDataDigest).
 *
 * It does **not** check: AK trust when `akTrust.mode` is `not-checked` (reported as such); EK/AK
 * certificates or credential activation; event logs; reference values for PCRs other than PCR8;
 * clock/reset monotonicity. Extra evidence fields are ignored.
 *
 * @throws VerifierError (`EVIDENCE_*`, `QUOTE_*`, `TPM_*`); TypeError for malformed options.
 */
export function appraiseTpmEvidence(evidence: unknown, options: AppraiseTpmEvidenceOptions): TpmAppraisal {
  const expectedReportData = options.expectedReportData;
  if (!(expectedReportData instanceof Uint8Array) || expectedReportData.byteLength === 0 || expectedReportData.byteLength > MAX_REPORT_DATA_BYTES) {
    throw new TypeError(`appraiseTpmEvidence: expectedReportData must be a Uint8Array of 1..${MAX_REPORT_DATA_BYTES} bytes`);
  }
  const initDataDigest =
    options.initDataDigest === undefined
      ? undefined
      : requireLength(options.initDataDigest, INIT_DATA_DIGEST_BYTES, 'initDataDigest');
  const akTrust = options.akTrust;
  if (akTrust?.mode !== 'trusted-list' && akTrust?.mode !== 'not-checked') {
    throw new TypeError('appraiseTpmEvidence: akTrust.mode must be "trusted-list" or "not-checked"');
  }
  if (akTrust.mode === 'trusted-list' && !Array.isArray(akTrust.trustedAkSpkiDer)) {
    throw new TypeError('appraiseTpmEvidence: akTrust.trustedAkSpkiDer must be an array');
  }

  const ev = decodeUnverifiedTpmEvidence(evidence);

  if (akTrust.mode === 'trusted-list') {
    // SECURITY: stops quotes signed by a key the owner never enrolled (a software key posing as a
    // TPM AK); an empty list fails closed (Trustee `trusted_ak` reference values).
    if (!akTrust.trustedAkSpkiDer.some((der) => der instanceof Uint8Array && sameBytes(der, ev.akPublicDer))) {
      throw new VerifierError('EVIDENCE_AK_NOT_TRUSTED', 'the AK is not in the trusted AK list');
    }
  }

  const values = new Map<number, Uint8Array>();
  for (let i = 0; i < TPM_EVIDENCE_PCR_COUNT; i++) values.set(i, ev.pcrs[i] as Uint8Array);
  const quote = verifyQuote({
    message: ev.message,
    signature: ev.signature,
    akPublicKeyDer: ev.akPublicDer,
    pcrs: { bank: 'sha256', values },
    expectedExtraData: expectedReportData,
  });

  const pcr8 = quote.pcrs.get(INIT_DATA_PCR) as Uint8Array;
  if (initDataDigest !== undefined) {
    const expected = createHash('sha256').update(new Uint8Array(32)).update(initDataDigest).digest();
    // SECURITY: stops a workload started with other init-data (policy, KBS URL, certificates)
    // from receiving secrets meant for this one: the agent extends the init-data digest into
    // PCR8 from a reset value of zero (Trustee tpm verifier; guest-components attester).
    if (!sameBytes(pcr8, expected)) {
      throw new VerifierError('EVIDENCE_INIT_DATA_MISMATCH', 'PCR8 does not match the init-data digest');
    }
  }

  const pcrClaims: Record<string, string> = {};
  for (const [index, value] of quote.pcrs) pcrClaims[`pcr${String(index).padStart(2, '0')}`] = hex(value);
  const claims = Object.freeze({
    ...pcrClaims,
    ak_public: Buffer.from(ev.akPublicDer).toString('base64'),
    report_data: hex(quote.extraData),
    init_data: hex(pcr8),
    quote: Object.freeze({
      clock: quote.clockInfo.clock.toString(10),
      resetCount: quote.clockInfo.resetCount,
      restartCount: quote.clockInfo.restartCount,
      firmwareVersion: quote.firmwareVersion.toString(16).padStart(16, '0'),
    }),
  }) as unknown as VerifiedTpmClaims;
  verifiedClaims.add(claims);
  return Object.freeze({ claims, akTrusted: akTrust.mode === 'trusted-list' ? 'listed' : 'not-checked', quote });
}
