import { OcicryptError } from '../errors.js';
import { fromBase64 } from '../internal/bytes.js';

/** Annotation prefix under which each key-wrapping scheme stores its wrapped keys. */
export const KEYS_ANNOTATION_PREFIX = 'org.opencontainers.image.enc.keys.';
export const PUBOPTS_ANNOTATION = 'org.opencontainers.image.enc.pubopts';

/**
 * Something that wraps a layer's optsdata (PrivateLayerBlockCipherOptions JSON) for one or
 * more key holders, like one of ocicrypt's key wrappers. The wrapped bytes are stored, base64
 * encoded and comma-joined with other values of the same scheme, in the annotation
 * `org.opencontainers.image.enc.keys.<scheme>`.
 */
export interface Recipient {
  /** `jwe`, or `provider.<name>` for a key provider. */
  readonly scheme: string;
  wrap(optsData: Uint8Array): Promise<Uint8Array>;
}

/**
 * Recovers a layer's optsdata from its descriptor annotations (the whole annotation map, as
 * ocicrypt hands it to its key wrappers). Throws an OcicryptError when it cannot.
 */
export type Unwrapper = (annotations: Readonly<Record<string, string>>) => Promise<Uint8Array>;

/** Most wrapped keys one annotation may carry. */
export const MAX_WRAPPED_KEYS = 64;

/** Split a keys annotation into its comma-separated, base64-decoded entries. */
export function splitKeysAnnotation(value: string, maxEntryBytes: number): Buffer[] {
  const parts = value.split(',');
  // SECURITY: bound the work one annotation can cause (STYLE §6).
  if (parts.length > MAX_WRAPPED_KEYS) throw new OcicryptError('NO_WRAPPED_KEY', 'too many wrapped keys in one annotation');
  return parts.map((v) => fromBase64(v, 'NO_WRAPPED_KEY', 'wrapped key', maxEntryBytes));
}
