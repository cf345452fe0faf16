/**
 * How `get-resource` prints a secret on stdout: raw bytes, or base64 and a newline. Shared by the
 * CLI and its resource-socket fast path (fast-get-resource.ts), which must print identically.
 */
import type { CliIo } from '@keyhold/command-line/reporting';

/** `raw` (keyhold-agent's default) or `base64` + newline (kbs-client's). */
export type SecretEncoding = 'raw' | 'base64';

/** Write the secret to stdout; resolves once the stream has taken the bytes (the caller zeroes them then). */
export function printSecret(secret: Uint8Array, encoding: SecretEncoding, io: CliIo): Promise<void> {
  const data = encoding === 'base64' ? `${Buffer.from(secret.buffer, secret.byteOffset, secret.byteLength).toString('base64')}\n` : secret;
  return new Promise<void>((resolve, reject) => io.stdout.write(data, (err) => (err ? reject(err) : resolve())));
}
