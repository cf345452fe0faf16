import {
  appraiseMeasuredBoot,
  EventLogError,
  isEventLogBank,
  parseEventLog,
  parseMeasuredBootReferenceState,
  verifyEventLogAgainstQuote,
  DEFAULT_LOG_PCRS,
  type MeasuredBootFailure,
  type MeasuredBootReferenceState,
  type VerifiedEventLog,
} from '@keyhold/verifier';
import { KbsError } from '../../errors.js';
import type { ReferenceSnapshot } from '../../state/ports.js';
import { AR4SI, type TrustworthinessVector } from '../../token/ear-claims.js';
import type { TpmExtension, TpmExtensionInput, TpmExtensionResult } from './tpm-extension.js';

/** Reference value holding the owner's measured-boot reference state: one value, its JSON text. */
export const MEASURED_BOOT_REFERENCE = 'tpm_measured_boot';
/** Evidence member carrying the TCG PC Client event log: standard base64 of the binary log. */
export const EVENT_LOG_FIELD = 'event_log';
/** Default bound on the decoded event log (real logs are tens of KiB). */
export const MAX_EVENT_LOG_BYTES = 64 * 1024 * 1024;
/** Failures listed in the token claims (the first names the first failing check). */
const MAX_REPORTED_FAILURES = 5;

export interface MeasuredBootExtensionOptions {
  /** Refuse evidence without an event log (`[tpm] require_event_log`). */
  readonly requireEventLog: boolean;
  /** Accept replay against a SHA-1 quote (`[tpm] allow_sha1_event_log`). */
  readonly allowSha1: boolean;
  /** Upper bound on the decoded log; default {@link MAX_EVENT_LOG_BYTES}. */
  readonly maxEventLogBytes?: number;
}

/** The claims this extension adds under `annotated-evidence.tpm.measured_boot`. */
export interface MeasuredBootClaims {
  readonly ok: boolean;
  /** False when the log was verified but the owner stored no reference state. */
  readonly appraised: boolean;
  readonly bank?: string;
  readonly verified_pcrs?: number[];
  readonly events?: number;
  readonly failures: { check: string; reason: string; event?: number }[];
  /** The first failure, as the denial reason. */
  readonly reason?: string;
}

const CATEGORY_KEY = { hardware: 'hardware', configuration: 'configuration', executables: 'executables' } as const;

/**
 * Measured boot for `tpm` evidence. When the evidence carries `event_log`, it is parsed and replayed
 * against the quote-verified PCRs **before** any decoded event is used (a log that does not replay
 * to a quoted PCR refuses the attestation, naming the PCR); then, when the owner stored
 * `tpm_measured_boot`, the verified events are appraised against it and the result sets the
 * `hardware`, `configuration` and `executables` claims, with a reason naming the first failing event.
 * Guarantees: only quoted PCRs of the quoted bank count; SHA-1 only when allowed; a reference state
 * without a log, or an invalid reference state, never passes. It does not check PCRs the log does
 * not describe (IMA's PCR10 is the IMA extension's).
 */
export class MeasuredBootExtension implements TpmExtension {
  readonly name = 'measured-boot';
  readonly #opts: MeasuredBootExtensionOptions;
  readonly #maxBytes: number;
  /** Parsed reference states per stored value list (the store replaces lists, never mutates them). */
  readonly #stateCache = new WeakMap<readonly string[], MeasuredBootReferenceState | KbsError>();

  constructor(opts: MeasuredBootExtensionOptions) {
    const max = opts.maxEventLogBytes ?? MAX_EVENT_LOG_BYTES;
    if (!Number.isSafeInteger(max) || max <= 0) throw new TypeError('maxEventLogBytes must be a positive integer');
    this.#opts = opts;
    this.#maxBytes = max;
  }

  async appraise(input: TpmExtensionInput): Promise<TpmExtensionResult> {
    const field = input.evidence[EVENT_LOG_FIELD];
    const state = this.#referenceState(input.references);
    if (field === undefined || field === null) {
      // SECURITY: a node that withholds its log cannot be appraised; when the owner requires one it is refused (log suppression).
      if (this.#opts.requireEventLog) throw new KbsError('ATTESTATION_FAILED', `evidence has no ${EVENT_LOG_FIELD} (required by [tpm] require_event_log)`);
      if (state === undefined) return {};
      // SECURITY: a reference state without a log to check it against must not pass (fail closed).
      const reason = `measured boot: no ${EVENT_LOG_FIELD} was sent but ${MEASURED_BOOT_REFERENCE} is set`;
      const claims: MeasuredBootClaims = { ok: false, appraised: false, failures: [], reason };
      return { vector: { configuration: AR4SI.UNSAFE }, claims: { measured_boot: claims } };
    }
    const bytes = decodeEventLogField(field, this.#maxBytes);
    const verified = this.#verify(bytes, input);
    if (state === undefined) {
      const claims: MeasuredBootClaims = { ok: true, appraised: false, ...summary(verified), failures: [] };
      return { claims: { measured_boot: claims } };
    }
    const result = appraiseMeasuredBoot(verified, state);
    const vector: Partial<TrustworthinessVector> = {};
    if (state.pcrs !== undefined) vector.hardware = AR4SI.GENUINE_HARDWARE;
    if (state.secureBoot !== undefined || state.pk || state.kek || state.db || state.dbxRequired || state.kernelCmdline) vector.configuration = AR4SI.APPROVED;
    if (state.bootApplications !== undefined) vector.executables = AR4SI.APPROVED;
    for (const f of result.failures) vector[CATEGORY_KEY[f.category]] = f.category === 'hardware' ? AR4SI.CONTRAINDICATED : AR4SI.UNSAFE;
    const first = result.failures[0];
    const claims: MeasuredBootClaims = {
      ok: result.ok,
      appraised: true,
      ...summary(verified),
      failures: result.failures.slice(0, MAX_REPORTED_FAILURES).map(failureClaim),
      ...(first !== undefined ? { reason: `measured boot: ${first.check}: ${first.reason}` } : {}),
    };
    return { vector, claims: { measured_boot: claims } };
  }

  /** Parse and replay against the quote; any failure refuses the attestation. */
  #verify(bytes: Uint8Array, input: TpmExtensionInput): VerifiedEventLog {
    const quote = input.verified.quote;
    const bank = quote.pcrBank;
    // SECURITY: only a bank the event log format knows can be replayed; anything else proves nothing (go-attestation eventlog.go).
    if (!isEventLogBank(bank)) throw new KbsError('ATTESTATION_FAILED', `event_log: the quoted ${String(bank)} bank cannot be replayed`);
    try {
      const log = parseEventLog(bytes);
      // The verified quote's PCRs only: values the evidence merely lists are never trusted here.
      // With init-data bound, PCR8 holds that binding (verified separately), not firmware events.
      const logPcrs = input.initDataBound ? DEFAULT_LOG_PCRS.filter((p) => p !== 8) : DEFAULT_LOG_PCRS;
      return verifyEventLogAgainstQuote(log, { bank, values: quote.pcrs }, { allowSha1: this.#opts.allowSha1, logPcrs });
    } catch (err) {
      if (err instanceof EventLogError) throw new KbsError('ATTESTATION_FAILED', `event_log: ${err.code}: ${err.message}`, { cause: err });
      throw err;
    }
  }

  #referenceState(references: ReferenceSnapshot): MeasuredBootReferenceState | undefined {
    const values = references.get(MEASURED_BOOT_REFERENCE);
    if (values === undefined) return undefined;
    let cached = this.#stateCache.get(values);
    if (cached === undefined) {
      cached = parseStateValues(values);
      this.#stateCache.set(values, cached);
    }
    if (cached instanceof KbsError) throw cached;
    return cached;
  }
}

function parseStateValues(values: readonly string[]): MeasuredBootReferenceState | KbsError {
  // SECURITY: exactly one reference state; several would leave open which one applies (fail closed on ambiguity).
  if (values.length !== 1) return new KbsError('ATTESTATION_FAILED', `reference value ${MEASURED_BOOT_REFERENCE} must hold exactly one JSON reference state`);
  let json: unknown;
  try {
    json = JSON.parse(values[0] as string);
  } catch {
    return new KbsError('ATTESTATION_FAILED', `reference value ${MEASURED_BOOT_REFERENCE} is not JSON`);
  }
  try {
    // SECURITY: an invalid reference state refuses every attestation instead of appraising against nothing (fail closed).
    return parseMeasuredBootReferenceState(json);
  } catch (err) {
    if (err instanceof EventLogError) return new KbsError('ATTESTATION_FAILED', `reference value ${MEASURED_BOOT_REFERENCE}: ${err.message}`, { cause: err });
    throw err;
  }
}

/** Standard base64 of the binary log, bounded before anything is decoded. */
export function decodeEventLogField(field: unknown, maxBytes: number): Uint8Array {
  // SECURITY: a non-string field is malformed evidence, not "no log" (type confusion).
  if (typeof field !== 'string') throw new KbsError('ATTESTATION_FAILED', `${EVENT_LOG_FIELD} must be a base64 string`);
  // SECURITY: length is checked before decoding so a huge field cannot exhaust memory (denial of service).
  if (field.length > Math.ceil(maxBytes / 3) * 4) throw new KbsError('ATTESTATION_FAILED', `${EVENT_LOG_FIELD} exceeds ${maxBytes} bytes`);
  // SECURITY: strict base64 only; Node's decoder skips junk, which would let two encodings mean one log (parser differential).
  if (field.length === 0 || field.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(field)) {
    throw new KbsError('ATTESTATION_FAILED', `${EVENT_LOG_FIELD} is not standard base64`);
  }
  return Buffer.from(field, 'base64');
}

function summary(v: VerifiedEventLog): { bank: string; verified_pcrs: number[]; events: number } {
  return { bank: v.bank, verified_pcrs: [...v.verifiedPcrs].sort((a, b) => a - b), events: v.events.length };
}

function failureClaim(f: MeasuredBootFailure): { check: string; reason: string; event?: number } {
  return { check: f.check, reason: f.reason, ...(f.eventIndex !== undefined ? { event: f.eventIndex } : {}) };
}
