import type { status as GrpcStatusCode } from '@grpc/grpc-js';
import { OcicryptError } from '@keyhold/ocicrypt';
import { ProtocolError } from '@keyhold/protocol';
import { KbsClientError } from '../kbs-client/errors.js';

/**
 * Stable codes for everything the key provider refuses. Messages name the kid (a resource name,
 * not a secret) but never carry a KEK, optsdata, token or evidence.
 */
export type KeyProviderErrorCode =
  /** The keyprovider protocol message is not what ocicrypt sends. */
  | 'REQUEST_INVALID'
  /** `keywrap` on the guest: images are encrypted by their owner, not by the node. */
  | 'OP_UNSUPPORTED'
  /** The annotation packet is malformed (not JSON, bad fields, bad IV, unknown wrap_type). */
  | 'PACKET_INVALID'
  /** The packet names a KEK provider other than the KBS. */
  | 'PACKET_PROVIDER_UNSUPPORTED'
  /** The kid is not a kbs:///REPO/TYPE/TAG resource URI. */
  | 'KID_INVALID'
  /** The KBS has no resource named by the kid (HTTP 404). */
  | 'KEK_NOT_FOUND'
  /** The KBS refused to release the KEK to this node (HTTP 403, resource policy). */
  | 'KEK_RELEASE_DENIED'
  /** The KBS did not accept this node's evidence (untrusted AK, bad quote). */
  | 'ATTESTATION_FAILED'
  /** The KBS or the TPM cannot be reached right now. */
  | 'KBS_UNAVAILABLE'
  /** The node cannot attest: TPM, AK state or agent configuration failure. */
  | 'ATTESTER_UNAVAILABLE'
  /** Any other KBS answer. */
  | 'KBS_ERROR'
  /** The released KEK is not 32 bytes. */
  | 'KEK_INVALID'
  /** A `--decryption-key` resource or file is not a PEM or DER private key. */
  | 'DECRYPTION_KEY_INVALID'
  /** The packet did not authenticate under the KEK (wrong KEK or corrupt packet). */
  | 'UNWRAP_FAILED'
  | 'INTERNAL';

export class KeyProviderError extends Error {
  override readonly name = 'KeyProviderError';
  readonly code: KeyProviderErrorCode;
  constructor(code: KeyProviderErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/**
 * gRPC status codes (grpc/doc/statuscodes.md), the values of grpc-js's `status` (errors.test.ts
 * checks): spelled out so that `keyprovider cmd`, which ocicrypt starts once per layer key, does not
 * load gRPC (~45 ms) for them.
 */
const GrpcStatus = {
  UNKNOWN: 2 as GrpcStatusCode.UNKNOWN,
  INVALID_ARGUMENT: 3 as GrpcStatusCode.INVALID_ARGUMENT,
  NOT_FOUND: 5 as GrpcStatusCode.NOT_FOUND,
  PERMISSION_DENIED: 7 as GrpcStatusCode.PERMISSION_DENIED,
  FAILED_PRECONDITION: 9 as GrpcStatusCode.FAILED_PRECONDITION,
  UNIMPLEMENTED: 12 as GrpcStatusCode.UNIMPLEMENTED,
  INTERNAL: 13 as GrpcStatusCode.INTERNAL,
  UNAVAILABLE: 14 as GrpcStatusCode.UNAVAILABLE,
} as const;

/** The one table from error code to gRPC status (what ocicrypt's gRPC client sees). */
export const GRPC_STATUS_OF: Readonly<Record<KeyProviderErrorCode, GrpcStatusCode>> = Object.freeze({
  REQUEST_INVALID: GrpcStatus.INVALID_ARGUMENT,
  OP_UNSUPPORTED: GrpcStatus.UNIMPLEMENTED,
  PACKET_INVALID: GrpcStatus.INVALID_ARGUMENT,
  PACKET_PROVIDER_UNSUPPORTED: GrpcStatus.INVALID_ARGUMENT,
  KID_INVALID: GrpcStatus.INVALID_ARGUMENT,
  KEK_NOT_FOUND: GrpcStatus.NOT_FOUND,
  KEK_RELEASE_DENIED: GrpcStatus.PERMISSION_DENIED,
  ATTESTATION_FAILED: GrpcStatus.PERMISSION_DENIED,
  KBS_UNAVAILABLE: GrpcStatus.UNAVAILABLE,
  ATTESTER_UNAVAILABLE: GrpcStatus.UNAVAILABLE,
  KBS_ERROR: GrpcStatus.UNKNOWN,
  KEK_INVALID: GrpcStatus.FAILED_PRECONDITION,
  DECRYPTION_KEY_INVALID: GrpcStatus.FAILED_PRECONDITION,
  UNWRAP_FAILED: GrpcStatus.INVALID_ARGUMENT,
  INTERNAL: GrpcStatus.INTERNAL,
});

const OCICRYPT_CODES: Partial<Record<OcicryptError['code'], KeyProviderErrorCode>> = {
  KEYPROVIDER_MESSAGE_MALFORMED: 'REQUEST_INVALID',
  PACKET_MALFORMED: 'PACKET_INVALID',
  PACKET_WRAP_TYPE_UNSUPPORTED: 'PACKET_INVALID',
  NO_WRAPPED_KEY: 'PACKET_INVALID',
  PACKET_PROVIDER_UNSUPPORTED: 'PACKET_PROVIDER_UNSUPPORTED',
  PACKET_KEK_INVALID: 'KEK_INVALID',
  PACKET_UNWRAP_FAILED: 'UNWRAP_FAILED',
};

/** A KBS client failure fetching the KEK `kid`, as the key provider reports it. */
export function kekFetchError(err: KbsClientError, kid: string): KeyProviderError {
  const name = JSON.stringify(kid.slice(0, 256));
  const why = err.status !== undefined ? `HTTP ${err.status}: ${err.message}` : err.message;
  switch (err.code) {
    case 'RESOURCE_NOT_FOUND':
      return new KeyProviderError('KEK_NOT_FOUND', `the KBS has no KEK ${name} (${why})`, { cause: err });
    case 'POLICY_DENY':
      return new KeyProviderError('KEK_RELEASE_DENIED', `the KBS refused to release KEK ${name} to this node (${why})`, { cause: err });
    case 'ATTESTATION_FAILED':
    case 'UNAUTHORIZED':
    case 'EVIDENCE_FAILED':
      return new KeyProviderError('ATTESTATION_FAILED', `attestation failed, KEK ${name} not released (${why})`, { cause: err });
    case 'KBS_UNREACHABLE':
    case 'KBS_UNAVAILABLE':
      return new KeyProviderError('KBS_UNAVAILABLE', `cannot fetch KEK ${name}: ${err.message}`, { cause: err });
    default:
      return new KeyProviderError('KBS_ERROR', `cannot fetch KEK ${name}: ${err.code}: ${err.message}`, { cause: err });
  }
}

/** Any failure of an unwrap as a KeyProviderError (the only error type the transports render). */
export function asKeyProviderError(err: unknown): KeyProviderError {
  if (err instanceof KeyProviderError) return err;
  if (err instanceof OcicryptError) {
    const code = OCICRYPT_CODES[err.code] ?? 'PACKET_INVALID';
    return new KeyProviderError(code, err.message, { cause: err });
  }
  if (err instanceof ProtocolError) return new KeyProviderError('KID_INVALID', `kid: ${err.message}`, { cause: err });
  if (err instanceof KbsClientError) return kekFetchError(err, '?');
  const e = err as { code?: unknown; message?: unknown } | undefined;
  // TPM and configuration failures (AgentError, TpmError) mean the node cannot attest now.
  if (typeof e?.code === 'string' && (e.code.startsWith('TPM_') || e.code === 'AK_STORE_FAILED' || e.code === 'INIT_DATA_CONFLICT' || e.code === 'CONFIG_INVALID' || e.code === 'CVM_PLATFORM_UNAVAILABLE')) {
    return new KeyProviderError('ATTESTER_UNAVAILABLE', `cannot attest: ${e.code}: ${String(e.message)}`, { cause: err });
  }
  return new KeyProviderError('INTERNAL', 'internal error while unwrapping the key', { cause: err });
}
