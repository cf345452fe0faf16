import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createCliLogger } from './logger.js';

class Sink extends Writable {
  text = '';
  isTTY?: boolean;
  override _write(chunk: Buffer, _e: BufferEncoding, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

describe('createCliLogger', () => {
  it('writes JSON lines when the stream is not a terminal', async () => {
    const sink = new Sink();
    const log = await createCliLogger({ level: 'info', stream: sink });
    log.info({ url: 'http://x' }, 'keyhold-kbs listening');
    log.debug('hidden');
    await new Promise((r) => setImmediate(r));
    const line = JSON.parse(sink.text.trim()) as Record<string, unknown>;
    expect(line).toMatchObject({ level: 30, msg: 'keyhold-kbs listening', url: 'http://x' });
  });

  it('writes pretty human-readable lines on a terminal (pino-pretty)', async () => {
    const sink = new Sink();
    sink.isTTY = true;
    const log = await createCliLogger({ level: 'info', stream: sink });
    log.warn({ code: 'X' }, 'UnWrapKey refused');
    await new Promise((r) => setImmediate(r));
    const text = sink.text.replace(/\u001b\[[0-9;]*m/g, '');
    expect(text).toMatch(/^\[\d{2}:\d{2}:\d{2}\.\d{3}\] WARN: UnWrapKey refused\n {4}code: "X"\n$/);
    expect(() => JSON.parse(sink.text)).toThrow();
  });

  it('pretty can be forced either way', async () => {
    const sink = new Sink();
    const log = await createCliLogger({ level: 'info', stream: sink, pretty: true });
    log.info('hello');
    await new Promise((r) => setImmediate(r));
    expect(sink.text).toMatch(/INFO: hello/);
  });
});
