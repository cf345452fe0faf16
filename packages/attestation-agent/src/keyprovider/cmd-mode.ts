import { MAX_KEYPROVIDER_MESSAGE_BYTES } from '@keyhold/ocicrypt';
import { KeyProviderError } from './errors.js';
import type { UnwrapService } from './unwrap-service.js';

/** Read all of `stdin`, refusing more than `maxBytes`. */
export async function readBounded(stdin: NodeJS.ReadableStream, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stdin) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    size += b.length;
    // SECURITY: bound what a caller makes us buffer (STYLE §6).
    if (size > maxBytes) throw new KeyProviderError('REQUEST_INVALID', 'key provider request on stdin is too large');
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}

/**
 * ocicrypt's `cmd` key provider: one request JSON on stdin, one answer JSON on stdout
 * (containers/ocicrypt keywrap/keyprovider: the command's stdout is parsed, a non-zero exit
 * with stderr is the error). Throws {@link KeyProviderError}; writes nothing on failure.
 */
export async function runKeyProviderCmd(service: UnwrapService, stdin: NodeJS.ReadableStream, stdout: NodeJS.WritableStream): Promise<void> {
  const request = await readBounded(stdin, MAX_KEYPROVIDER_MESSAGE_BYTES);
  const reply = await service.handleMessage(request);
  // The reply is not zeroed here: the stream may still hold this very buffer until it is flushed.
  await new Promise<void>((resolve, reject) => {
    stdout.write(reply, (err) => (err ? reject(err) : resolve()));
  });
}
