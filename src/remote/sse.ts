import { WebGGUFError } from '../errors.js';

/** One server-sent event: its type (`message` unless the server named one) and its data lines joined by '\n'. */
export interface ServerSentEvent {
  event: string;
  data: string;
}

/** The longest event a server may send (a whole chat chunk is a few kB; an error body less). */
export const MAX_EVENT_CHARS = 16 * 2 ** 20;

/**
 * The event-stream format (WHATWG HTML, "server-sent events"), fed text in pieces cut anywhere:
 * lines end in CRLF, LF or CR (a CR at the end of one piece and an LF at the start of the next are
 * one line end), a blank line ends an event, `data` lines of one event are joined with '\n',
 * `:` lines are comments (keep-alives such as `: ping`), unknown fields are ignored. One addition:
 * llama.cpp's server sends a failure as an `error: {...}` line, a field the standard does not
 * have; it becomes an event of type `error` with that data.
 */
export class SseParser {
  private line = '';
  private afterCR = false;
  private started = false;
  private event = '';
  private data: string[] | undefined;
  private size = 0;

  /** Feeds text; returns the events it completed. */
  push(text: string): ServerSentEvent[] {
    const events: ServerSentEvent[] = [];
    if (!this.started && text.length > 0) {
      this.started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    let start = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      if (c === 10 && this.afterCR && i === start && this.line === '') {
        // The LF of a CRLF split across pieces (or right after the CR in this one).
        this.afterCR = false;
        start = i + 1;
        continue;
      }
      this.line += text.slice(start, i);
      this.endLine(events);
      this.afterCR = c === 13;
      start = i + 1;
      if (this.afterCR && text.charCodeAt(i + 1) === 10) {
        this.afterCR = false;
        start = ++i + 1;
      }
    }
    if (start < text.length) {
      this.afterCR = false;
      this.line += text.slice(start);
      this.check(this.size + this.line.length);
    }
    return events;
  }

  /**
   * The end of the stream. The standard drops an event that no blank line ended; a server that
   * ends its last event (often `data: [DONE]`) with one line end only is common, so it is kept.
   */
  end(): ServerSentEvent[] {
    const events: ServerSentEvent[] = [];
    if (this.line !== '') this.endLine(events);
    this.endLine(events);
    return events;
  }

  private endLine(events: ServerSentEvent[]): void {
    const line = this.line;
    this.line = '';
    if (line === '') {
      if (this.data !== undefined) events.push({ event: this.event || 'message', data: this.data.join('\n') });
      this.event = '';
      this.data = undefined;
      this.size = 0;
      return;
    }
    if (line.charCodeAt(0) === 58 /* ':' */) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    if (field === 'data' || field === 'error') this.check((this.size += value.length));
    if (field === 'data') (this.data ??= []).push(value);
    else if (field === 'event') this.event = value;
    else if (field === 'error') {
      this.event = 'error';
      (this.data ??= []).push(value);
    }
  }

  private check(chars: number): void {
    if (chars > MAX_EVENT_CHARS) {
      throw new WebGGUFError('server', `the server sent an event of more than ${MAX_EVENT_CHARS} characters; this is not an event stream an OpenAI-compatible server sends`);
    }
  }
}
