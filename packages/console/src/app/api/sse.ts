/** One server-sent event (WHATWG HTML §9.2 "event stream interpretation"). */
export interface SseEvent {
  readonly id?: string;
  readonly event: string;
  readonly data: string;
}

/** A line longer than this ends the stream as malformed (a hostile or broken server cannot grow memory without bound). */
export const MAX_SSE_LINE_CHARS = 256 * 1024;

/**
 * Incremental parser of a `text/event-stream`: feed decoded text chunks as they arrive (a chunk may
 * end anywhere, even between CR and LF), get complete events back. Comment lines (`: ping`) are
 * skipped; `data` lines are joined with "\n"; an event without data is not dispatched; the last
 * `id` seen is kept for reconnecting with `after` / `Last-Event-ID`.
 */
export class SseParser {
  #buffer = '';
  #data: string[] = [];
  #event = '';
  #id: string | undefined;
  #lastId: string | undefined;
  #skipLf = false;

  get lastEventId(): string | undefined {
    return this.#lastId;
  }

  push(chunk: string): SseEvent[] {
    const out: SseEvent[] = [];
    let text = chunk;
    if (this.#skipLf && text.startsWith('\n')) text = text.slice(1);
    this.#skipLf = false;
    this.#buffer += text;
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.#buffer);
      if (m === null) break;
      const line = this.#buffer.slice(0, m.index);
      // A lone CR at the very end may be the first half of CRLF split across chunks.
      if (m[0] === '\r' && m.index === this.#buffer.length - 1) this.#skipLf = true;
      this.#buffer = this.#buffer.slice(m.index + m[0].length);
      const ev = this.#line(line);
      if (ev !== undefined) out.push(ev);
    }
    if (this.#buffer.length > MAX_SSE_LINE_CHARS) throw new Error(`event-stream line longer than ${MAX_SSE_LINE_CHARS} characters`);
    return out;
  }

  #line(line: string): SseEvent | undefined {
    if (line === '') {
      const data = this.#data;
      const event = this.#event || 'message';
      const id = this.#id;
      this.#data = [];
      this.#event = '';
      if (id !== undefined) this.#lastId = id;
      if (data.length === 0) return undefined;
      return { ...(id !== undefined ? { id } : {}), event, data: data.join('\n') };
    }
    if (line.startsWith(':')) return undefined;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.#data.push(value);
    else if (field === 'event') this.#event = value;
    else if (field === 'id' && !value.includes('\0')) this.#id = value;
    return undefined;
  }
}
