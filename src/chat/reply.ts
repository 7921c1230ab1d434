/**
 * A chat reply split as it streams into thinking (`reasoning_content`), answer (`content`) and
 * tool calls. One object serves streamed and whole replies alike, so their results agree.
 */
import { heldPrefix, ToolCallParser, type ParsedCall, type ToolFormat } from './tool-format.js';

export interface ReplyPart {
  reasoning: string;
  content: string;
  calls: ParsedCall[];
}

const OPEN = '<think>';
const CLOSE = '</think>';

export interface ReplyOptions {
  /** The template thinks in <think>...</think>. */
  thinking: boolean;
  /** The prompt already opened <think> (the reply starts inside the thinking). */
  thinkingOpen: boolean;
  /** Parse tool calls in the answer: the format and the offered function names. */
  tools?: { format: ToolFormat; names: ReadonlySet<string> };
}

/** Whether a rendered prompt ends inside an open <think> (DeepSeek-R1 distills, Qwen3 thinking-only models). */
export function promptOpensThinking(prompt: string): boolean {
  return prompt.trimEnd().endsWith(OPEN);
}

export class ReplyParser {
  /** 'lead': before the reply shows whether it thinks; 'think'; 'answerLead': whitespace after </think>; 'answer'. */
  private state: 'lead' | 'think' | 'answerLead' | 'answer';
  private buffer = '';
  private readonly tools: ToolCallParser | undefined;
  /** Trailing whitespace held back until more text follows (dropped at the end where it ends a part). */
  private heldReasoning = '';
  private heldContent = '';
  private reasoningStarted = false;
  private called = false;

  constructor(options: ReplyOptions) {
    this.state = !options.thinking ? 'answer' : options.thinkingOpen ? 'think' : 'lead';
    this.tools = options.tools && new ToolCallParser(options.tools.format, options.tools.names);
  }

  push(text: string): ReplyPart {
    this.buffer += text;
    return this.drain(false);
  }

  /** The rest, once the reply has ended. */
  finish(): ReplyPart {
    return this.drain(true);
  }

  private drain(final: boolean): ReplyPart {
    let reasoning = '';
    let answer = '';
    for (let again = true; again;) {
      again = false;
      if (this.state === 'lead' || this.state === 'answerLead') {
        const text = this.buffer.trimStart();
        if (text === '' && !final) break;
        if (this.state === 'lead' && text.startsWith(OPEN)) {
          this.buffer = text.slice(OPEN.length);
          this.state = 'think';
          again = true;
        } else if (this.state === 'lead' && OPEN.startsWith(text) && !final) {
          break;
        } else {
          this.buffer = this.state === 'answerLead' ? text : this.buffer;
          this.state = 'answer';
          again = true;
        }
      } else if (this.state === 'think') {
        const at = this.buffer.indexOf(CLOSE);
        if (at >= 0) {
          reasoning += this.buffer.slice(0, at);
          this.buffer = this.buffer.slice(at + CLOSE.length);
          this.state = 'answerLead';
          again = true;
        } else {
          const keep = final ? 0 : heldPrefix(this.buffer, [CLOSE]);
          reasoning += this.buffer.slice(0, this.buffer.length - keep);
          this.buffer = this.buffer.slice(this.buffer.length - keep);
        }
      } else {
        answer += this.buffer;
        this.buffer = '';
      }
    }
    const part: ReplyPart = { reasoning: this.reasoningText(reasoning, final || this.state !== 'think'), content: '', calls: [] };
    if (this.tools) {
      const parsed = final ? mergeParts(this.tools.push(answer), this.tools.flush()) : this.tools.push(answer);
      part.calls = parsed.calls;
      if (parsed.calls.length) this.called = true;
      part.content = this.contentText(parsed.content, final);
    } else {
      part.content = answer;
    }
    return part;
  }

  /** Reasoning without its leading whitespace and, once it has ended, its trailing whitespace. */
  private reasoningText(text: string, ended: boolean): string {
    let all = this.heldReasoning + text;
    if (this.heldReasoning === '' && !this.reasoningStarted) all = all.trimStart();
    if (all !== '') this.reasoningStarted = true;
    const trimmed = all.trimEnd();
    this.heldReasoning = ended ? '' : all.slice(trimmed.length);
    return trimmed;
  }

  /** Content with trailing whitespace held while calls may follow; at the end it is dropped if the reply called a tool. */
  private contentText(text: string, final: boolean): string {
    const all = this.heldContent + text;
    const trimmed = all.trimEnd();
    if (final) {
      this.heldContent = '';
      return this.called ? trimmed : all;
    }
    this.heldContent = all.slice(trimmed.length);
    return trimmed;
  }
}

function mergeParts(a: { content: string; calls: ParsedCall[] }, b: { content: string; calls: ParsedCall[] }) {
  return { content: a.content + b.content, calls: [...a.calls, ...b.calls] };
}
