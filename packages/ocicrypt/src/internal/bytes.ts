import { OcicryptError, type OcicryptErrorCode } from '../errors.js';

const STD_B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Standard base64 with padding, as Go's encoding/json writes []byte. */
export function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

/**
 * Strict standard base64 (padded). Node's decoder silently skips junk characters, so the
 * alphabet and padding are checked first.
 */
export function fromBase64(s: string, code: OcicryptErrorCode, what: string, maxBytes: number): Buffer {
  // SECURITY: bound the allocation before decoding attacker-sized input (STYLE §6).
  if (s.length > Math.ceil(maxBytes / 3) * 4) throw new OcicryptError(code, `${what} is too large`);
  // SECURITY: reject non-canonical base64 so two encodings never mean one value (RFC 4648 §3.5).
  if (!STD_B64.test(s)) throw new OcicryptError(code, `${what} is not standard base64`);
  return Buffer.from(s, 'base64');
}

/** Best-effort wipe of key material once it is no longer needed. */
export function wipe(...buffers: (Uint8Array | undefined)[]): void {
  for (const b of buffers) b?.fill(0);
}
