import { describe, expect, it } from 'vitest';
import { decodeBytesMessage, encodeBytesMessage } from './protobuf-bytes-message.js';

const MAX = 1024 * 1024;

describe('protobuf { bytes = 1 } codec', () => {
  it('round-trips small, 127/128-byte boundary and large payloads', () => {
    for (const n of [1, 127, 128, 300, 70_000]) {
      const p = Buffer.alloc(n, 7);
      const enc = encodeBytesMessage(p);
      expect(enc[0]).toBe(0x0a);
      expect(decodeBytesMessage(enc, MAX).equals(p)).toBe(true);
    }
  });

  it('matches protoc encoding of "hi" (0a 02 68 69) and encodes empty as an empty message', () => {
    expect(encodeBytesMessage(Buffer.from('hi')).toString('hex')).toBe('0a026869');
    expect(encodeBytesMessage(Buffer.alloc(0)).length).toBe(0);
    expect(decodeBytesMessage(Buffer.alloc(0), MAX).length).toBe(0);
  });

  it('skips unknown fields and keeps the last field 1', () => {
    const msg = Buffer.concat([Buffer.from([0x10, 0x96, 0x01]), Buffer.from('0a0161', 'hex'), Buffer.from([0x1d, 1, 2, 3, 4]), Buffer.from('0a0162', 'hex'), Buffer.from([0x21, 1, 2, 3, 4, 5, 6, 7, 8])]);
    expect(decodeBytesMessage(msg, MAX).toString()).toBe('b');
  });

  it.each([
    ['a truncated varint', Buffer.from([0x0a, 0x80])],
    ['a length past the end', Buffer.from([0x0a, 0x05, 0x61])],
    ['a huge length', Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f])],
    ['an 11-byte varint', Buffer.from([0x0a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01])],
    ['field number 0', Buffer.from([0x02, 0x00])],
    ['a group wire type', Buffer.from([0x0b])],
    ['field 1 as a varint', Buffer.from([0x08, 0x01])],
    ['a truncated fixed64', Buffer.from([0x11, 1, 2])],
  ])('refuses %s', (_name, bytes) => {
    expect(() => decodeBytesMessage(bytes, MAX)).toThrow(expect.objectContaining({ code: 'REQUEST_INVALID' }));
  });

  it('refuses a message above the limit before parsing it', () => {
    expect(() => decodeBytesMessage(encodeBytesMessage(Buffer.alloc(100)), 50)).toThrow(expect.objectContaining({ code: 'REQUEST_INVALID' }));
  });
});
