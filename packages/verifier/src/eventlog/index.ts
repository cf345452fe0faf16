// Entry point `@keyhold/verifier/eventlog`: the TCG PC Client event log alone (parse, replay,
// decode, verify against a quote). It loads no X.509 or schema code, so tools that only read
// event logs (`keyhold eventlog`) start fast. Everything here is also exported from the package root.
export { EventLogError, type EventLogErrorCode } from './errors.js';
export { EVENTLOG_BANKS, isEventLogBank, type EventLogBank } from './algorithms.js';
export { eventTypeName } from './event-types.js';
export { parseEventLog, forEachDigestHex, MAX_PCR_INDEX, type EventLog, type RawEvent, type EventDigest, type SpecIdHeader, type ParseEventLogOptions } from './parse.js';
export { replayEventLog, initialPcrValue, type BankReplay, type ReplayOptions } from './replay.js';
export { decodeUnverifiedEvents, decodeEvent, preferredBank, type DecodedEvent, type EventDetails } from './decode.js';
export { formatGuid, type EfiSignature } from './efi-variable.js';
export {
  decodeUnverifiedUefiVariable,
  decodeUnverifiedImageLoad,
  decodeUnverifiedFirmwareBlob,
  decodeUnverifiedGptEvent,
  decodeUnverifiedLoadOption,
  decodeUnverifiedSignatureLists,
  decodeUnverifiedStartupLocality,
  type UnverifiedUefiVariable,
  type UnverifiedImageLoad,
  type UnverifiedFirmwareBlob,
  type UnverifiedGptEvent,
  type UnverifiedLoadOption,
  type UnverifiedSignatureList,
} from './event-data.js';
export { verifyEventLogAgainstQuote, DEFAULT_LOG_PCRS, type VerifiedEventLog, type QuotedPcrs, type VerifyEventLogOptions } from './verify.js';
