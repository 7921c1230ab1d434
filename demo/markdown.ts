/**
 * A deliberately small Markdown renderer for replies: fenced code, inline code, bold, italics and
 * paragraphs. Everything is HTML-escaped first, so model output can never inject markup.
 */
const escape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function inline(s: string): string {
  return s
    .replace(/`([^`\n]+)`/g, '<code>$1</code>')
    .replace(/\*\*([^*\n]+)\*\*/g, '<strong>$1</strong>')
    .replace(/(^|[^*])\*([^*\n]+)\*/g, '$1<em>$2</em>');
}

export function renderMarkdown(text: string): string {
  const out: string[] = [];
  // Split on fences; an unclosed fence (still streaming) renders as code so far.
  const parts = escape(text).split(/^```[^\n]*\n?/m);
  parts.forEach((part, i) => {
    if (i % 2 === 1) {
      out.push(`<pre><code>${part.replace(/\n$/, '')}</code></pre>`);
    } else {
      for (const para of part.split(/\n{2,}/)) if (para.trim()) out.push(`<p>${inline(para)}</p>`);
    }
  });
  return out.join('');
}
