/** Stable codes for malformed protocol messages (parsing at the edge). */
export type ProtocolErrorCode =
  | 'PROTOCOL_MALFORMED'
  | 'PROTOCOL_VERSION_UNSUPPORTED'
  | 'PROTOCOL_INVALID_RESOURCE_PATH'
  | 'PROTOCOL_INVALID_TEE_PUBKEY'
  | 'PROTOCOL_INVALID_INIT_DATA';

export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  readonly code: ProtocolErrorCode;
  constructor(code: ProtocolErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** Prefix of Trustee's error `type` URIs. */
export const ERROR_TYPE_PREFIX = 'https://github.com/confidential-containers/kbs/errors/';

/**
 * The error variants Keyhold puts on the wire, named as Trustee names them where Trustee has one,
 * so Trustee clients recognise them.
 */
export const KBS_ERROR_VARIANTS = [
  'InvalidRequest',
  'InvalidRequestPath',
  'ProtocolVersion',
  'UnsupportedTee',
  'CookieNotFound',
  'ExpiredCookie',
  'UnAuthenticatedCookie',
  'NonceMismatch',
  'AttestationFailed',
  'TokenNotFound',
  'TokenVerifierError',
  'PolicyDeny',
  'ResourceNotFound',
  'JweError',
  'PayloadTooLarge',
  'UnsupportedMediaType',
  'RateLimited',
  // Keyhold's: the KBS holds as many pending sessions (count or bytes) as it may; retry later (429).
  'TooManySessions',
  'AdminAuthAccess',
  'NodeRevoked',
  /** A failed appraisal banned the node until the owner lifts the ban (Keyhold, issue 13). */
  'NodeBanned',
  'StorageUnavailable',
  'InternalError',
] as const;
export type KbsErrorVariant = (typeof KBS_ERROR_VARIANTS)[number];

/** Trustee's error body: `{"type": "<prefix><Variant>", "detail": "..."}`. */
export interface ErrorInformation {
  type: string;
  detail: string;
}

export function errorInformation(variant: KbsErrorVariant, detail: string): ErrorInformation {
  return { type: ERROR_TYPE_PREFIX + variant, detail };
}

/** The variant named by an error body's `type`, or undefined when it is not one of ours. */
export function errorVariantOf(info: { type?: unknown }): KbsErrorVariant | undefined {
  if (typeof info.type !== 'string' || !info.type.startsWith(ERROR_TYPE_PREFIX)) return undefined;
  const v = info.type.slice(ERROR_TYPE_PREFIX.length);
  return (KBS_ERROR_VARIANTS as readonly string[]).includes(v) ? (v as KbsErrorVariant) : undefined;
}
