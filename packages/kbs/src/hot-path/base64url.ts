/**
 * base64url (RFC 4648 §5, no padding) for the hot path. Node's `Buffer` decoder silently skips
 * characters outside the alphabet, so decoding first checks the alphabet and the length, as jose's
 * decoder does: a token cannot smuggle bytes past a check by adding junk characters.
 */

const ALPHABET = /^[A-Za-z0-9_-]*$/;

export function encodeBase64url(bytes: Uint8Array | string): string {
  return (typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)).toString('base64url');
}

/** Decode strict base64url; `undefined` when the text is not base64url (callers map it to their error). */
export function decodeBase64urlStrict(text: string): Buffer | undefined {
  // SECURITY: only the base64url alphabet, no padding, no length that no encoding produces; Node's
  // lenient decoder would otherwise ignore stray characters (malleable input) (RFC 7515 §2, RFC 4648 §5).
  if (!ALPHABET.test(text) || text.length % 4 === 1) return undefined;
  return Buffer.from(text, 'base64url');
}
