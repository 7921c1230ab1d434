/**
 * Replies as Markdown: marked (GFM: code blocks, lists, tables, links) renders, then DOMPurify
 * sanitizes. Two layers, because model output is untrusted text: marked is told to escape any raw
 * HTML and to drop links and images whose URL is not http(s)/mailto, so its output alone is safe
 * (test/markdown.test.ts checks it in Node, where there is no DOM); DOMPurify then removes
 * anything that still slipped through, in the page. No inline styles or handlers are produced,
 * so this runs under a strict Content-Security-Policy.
 */
import DOMPurify from 'dompurify';
import { Marked, type Tokens } from 'marked';

const escape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');

/** The URL when it is one a reply may link to (absolute http(s) or mailto), else undefined. */
export function safeUrl(href: string): string | undefined {
  try {
    const url = new URL(href);
    return ['http:', 'https:', 'mailto:'].includes(url.protocol) ? url.href : undefined;
  } catch {
    return undefined;
  }
}

const marked = new Marked({
  gfm: true,
  breaks: true,
  renderer: {
    // Raw HTML in a reply is shown as text, never parsed.
    html: ({ text }: Tokens.HTML | Tokens.Tag) => escape(text),
    link(this: { parser: { parseInline(tokens: Tokens.Generic[]): string } }, { href, title, tokens }: Tokens.Link) {
      const text = this.parser.parseInline(tokens);
      const url = safeUrl(href);
      if (!url) return text;
      return `<a href="${escape(url)}"${title ? ` title="${escape(title)}"` : ''} target="_blank" rel="noopener noreferrer">${text}</a>`;
    },
    // Images would load from anywhere the model names: shown as their link instead.
    image({ href, text }: Tokens.Image) {
      const url = safeUrl(href);
      return url ? `<a href="${escape(url)}" target="_blank" rel="noopener noreferrer">${escape(text || url)}</a>` : escape(text);
    },
    code({ text, lang }: Tokens.Code) {
      const language = (lang ?? '').match(/^[\w+-]*/)?.[0] ?? '';
      return `<pre${language ? ` data-lang="${escape(language)}"` : ''}><code>${escape(text)}</code></pre>`;
    },
  },
});

/** Markdown to HTML with raw HTML escaped and unsafe URLs dropped (pure; no DOM needed). */
export function markdownToHtml(text: string): string {
  return marked.parse(text, { async: false });
}

let hooked = false;
/** Markdown to sanitized HTML, for innerHTML in the page. */
export function renderMarkdown(text: string): string {
  if (!hooked) {
    hooked = true;
    DOMPurify.addHook('afterSanitizeAttributes', (node) => {
      if (node.tagName === 'A') {
        if (!safeUrl(node.getAttribute('href') ?? '')) node.removeAttribute('href');
        node.setAttribute('target', '_blank');
        node.setAttribute('rel', 'noopener noreferrer');
      }
    });
  }
  return DOMPurify.sanitize(markdownToHtml(text), { FORBID_TAGS: ['style', 'img', 'form', 'input', 'button'], FORBID_ATTR: ['style'] });
}
