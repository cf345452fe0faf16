import { OcicryptError } from './errors.js';
import { fromBase64, toBase64 } from './internal/bytes.js';

/**
 * Codec for ocicrypt's key-provider protocol messages: the JSON carried in the single `bytes`
 * field of `keyprovider.KeyProviderService` requests/replies and on a `cmd` provider's
 * stdin/stdout (containers/ocicrypt keywrap/keyprovider/keyprovider.go). Byte fields are base64
 * strings from Go peers and arrays of numbers from Rust peers (ocicrypt-rs); both are read,
 * Go's form is written.
 */

export type KeyProviderOperation = 'keywrap' | 'keyunwrap';
/** ocicrypt's `map[string][][]byte` (EncryptConfig/DecryptConfig `Parameters`). */
export type KeyProviderParameters = Readonly<Record<string, readonly Uint8Array[]>>;

export interface KeyProviderInput {
  readonly op: KeyProviderOperation;
  readonly keywrapparams: {
    readonly ec: { readonly Parameters: KeyProviderParameters; readonly DecryptConfig: { readonly Parameters: KeyProviderParameters } | null } | null;
    readonly optsdata: Uint8Array | null;
  };
  readonly keyunwrapparams: {
    readonly dc: { readonly Parameters: KeyProviderParameters } | null;
    readonly annotation: Uint8Array | null;
  };
}

export interface KeyProviderOutput {
  readonly keywrapresults: { readonly annotation: Uint8Array | null } | null;
  readonly keyunwrapresults: { readonly optsdata: Uint8Array | null } | null;
}

/** Largest message accepted. */
export const MAX_KEYPROVIDER_MESSAGE_BYTES = 1024 * 1024;
const MAX_FIELD_BYTES = 256 * 1024;
const MAX_PARAM_KEYS = 64;
const MAX_PARAM_VALUES = 64;

function bad(msg: string, cause?: unknown): OcicryptError {
  return new OcicryptError('KEYPROVIDER_MESSAGE_MALFORMED', msg, cause === undefined ? undefined : { cause });
}

function parseMessage(msg: Uint8Array | string): Record<string, unknown> {
  const size = typeof msg === 'string' ? Buffer.byteLength(msg) : msg.byteLength;
  // SECURITY: bound what a peer makes us parse (STYLE §6).
  if (size > MAX_KEYPROVIDER_MESSAGE_BYTES) throw bad('key provider message is too large');
  let v: unknown;
  // SECURITY: a message that is not a JSON object is refused before any field is read, so
  // hostile peers get a typed error and never a crash (STYLE §6).
  try {
    v = JSON.parse(typeof msg === 'string' ? msg : Buffer.from(msg).toString('utf8'));
  } catch (cause) {
    throw bad('key provider message is not JSON', cause);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad('key provider message is not a JSON object');
  return v as Record<string, unknown>;
}

function objectOrNull(v: unknown, what: string): Record<string, unknown> | null {
  if (v === undefined || v === null) return null;
  // SECURITY: nested members must be objects; arrays or scalars are refused, not coerced.
  if (typeof v !== 'object' || Array.isArray(v)) throw bad(`${what} must be an object`);
  return v as Record<string, unknown>;
}

/** A Go `[]byte` (base64 string) or Rust `Vec<u8>` (array of 0..255); null when absent. */
export function decodeBytesField(v: unknown, what: string): Uint8Array | null {
  if (v === undefined || v === null) return null;
  if (typeof v === 'string') return fromBase64(v, 'KEYPROVIDER_MESSAGE_MALFORMED', what, MAX_FIELD_BYTES);
  if (Array.isArray(v)) {
    // SECURITY: check the length before allocating (STYLE §6).
    if (v.length > MAX_FIELD_BYTES) throw bad(`${what} is too large`);
    const out = new Uint8Array(v.length);
    for (let i = 0; i < v.length; i++) {
      const n: unknown = v[i];
      // SECURITY: every element must be a byte; 256 or -1 would silently wrap in a Uint8Array.
      if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 255) throw bad(`${what} is not an array of bytes`);
      out[i] = n;
    }
    return out;
  }
  // SECURITY: byte fields have exactly the two encodings Go and Rust peers use.
  throw bad(`${what} must be a base64 string or an array of bytes`);
}

function decodeParameters(v: unknown, what: string): KeyProviderParameters {
  const o = objectOrNull(v, what);
  if (o === null) return {};
  const keys = Object.keys(o);
  // SECURITY: bound the map a peer can send.
  if (keys.length > MAX_PARAM_KEYS) throw bad(`${what} has too many entries`);
  const out: Record<string, Uint8Array[]> = Object.create(null) as Record<string, Uint8Array[]>;
  for (const k of keys) {
    const list = o[k];
    if (list === null) {
      out[k] = [];
      continue;
    }
    // SECURITY: each parameter is a short list of byte strings (ocicrypt map[string][][]byte).
    if (!Array.isArray(list) || list.length > MAX_PARAM_VALUES) throw bad(`${what} values must be short lists`);
    out[k] = list.map((x, i) => {
      const b = decodeBytesField(x, `${what}[${i}]`);
      if (b === null) throw bad(`${what} values must not be null`);
      return b;
    });
  }
  return out;
}

/**
 * Decode a key-provider request. Guarantees: `op` is keywrap/keyunwrap; keywrap carries
 * `optsdata`, keyunwrap carries `annotation`; all byte fields decoded and size-bounded.
 */
export function decodeKeyProviderInput(msg: Uint8Array | string): KeyProviderInput {
  const o = parseMessage(msg);
  // SECURITY: only the two operations ocicrypt defines.
  if (o.op !== 'keywrap' && o.op !== 'keyunwrap') throw bad('op must be keywrap or keyunwrap');
  const kw = objectOrNull(o.keywrapparams, 'keywrapparams') ?? {};
  const ku = objectOrNull(o.keyunwrapparams, 'keyunwrapparams') ?? {};
  const ec = objectOrNull(kw.ec, 'keywrapparams.ec');
  const ecDc = ec === null ? null : objectOrNull(ec.DecryptConfig, 'keywrapparams.ec.DecryptConfig');
  const dc = objectOrNull(ku.dc, 'keyunwrapparams.dc');
  const input: KeyProviderInput = {
    op: o.op,
    keywrapparams: {
      ec: ec === null ? null : { Parameters: decodeParameters(ec.Parameters, 'ec.Parameters'), DecryptConfig: ecDc === null ? null : { Parameters: decodeParameters(ecDc.Parameters, 'ec.DecryptConfig.Parameters') } },
      optsdata: decodeBytesField(kw.optsdata, 'keywrapparams.optsdata'),
    },
    keyunwrapparams: {
      dc: dc === null ? null : { Parameters: decodeParameters(dc.Parameters, 'dc.Parameters') },
      annotation: decodeBytesField(ku.annotation, 'keyunwrapparams.annotation'),
    },
  };
  // SECURITY: each operation must carry its input, so handlers never act on a missing field.
  if (input.op === 'keywrap' && input.keywrapparams.optsdata === null) throw bad('keywrap needs keywrapparams.optsdata');
  if (input.op === 'keyunwrap' && input.keyunwrapparams.annotation === null) throw bad('keyunwrap needs keyunwrapparams.annotation');
  return input;
}

function encodeParameters(p: KeyProviderParameters): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(p)) out[k] = v.map(toBase64);
  return out;
}

/** Encode a request as Go ocicrypt does (`null` for absent members, base64 byte fields). */
export function encodeKeyProviderInput(input: KeyProviderInput): Buffer {
  const { ec, optsdata } = input.keywrapparams;
  const { dc, annotation } = input.keyunwrapparams;
  return Buffer.from(
    JSON.stringify({
      op: input.op,
      keywrapparams: {
        ec: ec === null ? null : { Parameters: encodeParameters(ec.Parameters), DecryptConfig: { Parameters: ec.DecryptConfig === null ? null : encodeParameters(ec.DecryptConfig.Parameters) } },
        optsdata: optsdata === null ? null : toBase64(optsdata),
      },
      keyunwrapparams: { dc: dc === null ? null : { Parameters: encodeParameters(dc.Parameters) }, annotation: annotation === null ? null : toBase64(annotation) },
    }),
    'utf8',
  );
}

/** Decode a key-provider reply (what ocicrypt reads back). */
export function decodeKeyProviderOutput(msg: Uint8Array | string): KeyProviderOutput {
  const o = parseMessage(msg);
  const kw = objectOrNull(o.keywrapresults, 'keywrapresults');
  const ku = objectOrNull(o.keyunwrapresults, 'keyunwrapresults');
  return {
    keywrapresults: kw === null ? null : { annotation: decodeBytesField(kw.annotation, 'keywrapresults.annotation') },
    keyunwrapresults: ku === null ? null : { optsdata: decodeBytesField(ku.optsdata, 'keyunwrapresults.optsdata') },
  };
}

/** `{"keywrapresults":{"annotation":"<b64>"}}`. */
export function encodeKeyWrapOutput(annotation: Uint8Array): Buffer {
  return Buffer.from(JSON.stringify({ keywrapresults: { annotation: toBase64(annotation) } }), 'utf8');
}

/** `{"keyunwrapresults":{"optsdata":"<b64>"}}`. */
export function encodeKeyUnwrapOutput(optsData: Uint8Array): Buffer {
  return Buffer.from(JSON.stringify({ keyunwrapresults: { optsdata: toBase64(optsData) } }), 'utf8');
}
