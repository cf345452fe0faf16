import { PassThrough } from 'node:stream';

/**
 * Streams for a command under test and what it wrote: stdout as bytes (each chunk copied as it is
 * written, since the agent zeroes a secret once the stream has taken it) and stderr as text.
 */
export function captureCliOutput(): { io: { stdout: PassThrough; stderr: PassThrough }; out: () => Buffer; err: () => string } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const chunks: Buffer[] = [];
  let err = '';
  stdout.on('data', (b: Buffer) => chunks.push(Buffer.from(b)));
  stderr.on('data', (b: Buffer) => (err += b.toString()));
  return { io: { stdout, stderr }, out: () => Buffer.concat(chunks), err: () => err };
}
