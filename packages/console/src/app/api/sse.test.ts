import { describe, expect, it } from 'vitest';
import { MAX_SSE_LINE_CHARS, SseParser } from './sse.js';

describe('SseParser', () => {
  it('parses frames split anywhere, skips comments, joins data lines, keeps the last id', () => {
    const text = ': ping\n\nid: 7\nevent: attestation\ndata: {"id":"7",\ndata: "type":"attestation"}\n\nid: 8\r\nevent: denial\r\ndata: {}\r\n\r\n';
    for (let cut = 0; cut <= text.length; cut++) {
      const p = new SseParser();
      const events = [...p.push(text.slice(0, cut)), ...p.push(text.slice(cut))];
      expect(events, `cut at ${cut}`).toEqual([
        { id: '7', event: 'attestation', data: '{"id":"7",\n"type":"attestation"}' },
        { id: '8', event: 'denial', data: '{}' },
      ]);
      expect(p.lastEventId).toBe('8');
    }
  });

  it('treats CRLF split across chunks as one line end, and field lines without a value', () => {
    const p = new SseParser();
    expect(p.push('data: a\r')).toEqual([]);
    expect(p.push('\n\r')).toEqual([{ event: 'message', data: 'a' }]);
    expect(p.push('\ndata\n\n')).toEqual([{ event: 'message', data: '' }]);
  });

  it('dispatches nothing for an event without data, and ignores unknown fields', () => {
    const p = new SseParser();
    expect(p.push('event: x\nretry: 10\nfoo: bar\n\n')).toEqual([]);
  });

  it('refuses an unbounded line (a broken or hostile server)', () => {
    const p = new SseParser();
    expect(() => p.push(`data: ${'x'.repeat(MAX_SSE_LINE_CHARS)}`)).toThrow(/longer than/);
  });
});
