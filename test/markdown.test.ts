/**
 * The demo's Markdown before its sanitizer (marked alone, in Node): raw HTML is text, unsafe URLs
 * are dropped. test/demo.test.ts checks the same replies in the page, through DOMPurify too.
 */
import { expect, test } from 'vitest';
import { markdownToHtml, safeUrl } from '../demo/markdown.js';

test('raw HTML in model output is escaped, never parsed', () => {
  const html = markdownToHtml('Hi <script>alert(1)</script> <img src=x onerror=alert(1)> & "q"\n\n<div onclick="x()">block</div>\n\n<iframe src="https://evil.example"></iframe>');
  expect(html).not.toMatch(/<(script|img|div|iframe)/i);
  expect(html).toContain('&lt;script&gt;');
  expect(html).toContain('&lt;img src=x onerror=alert(1)&gt;');
  expect(html).toContain('&lt;div onclick=&quot;x()&quot;&gt;');
});

test('links: http(s) with rel=noopener; javascript:, data: and relative ones lose their link', () => {
  const html = markdownToHtml('[ok](https://example.com/a?b=1) [bad](javascript:alert(1)) [bad2](JaVaScRiPt:alert(1)) [d](data:text/html,<script>x</script>) [rel](/local) <javascript:alert(1)> ![i](javascript:alert(1))');
  expect(html).toContain('<a href="https://example.com/a?b=1" target="_blank" rel="noopener noreferrer">ok</a>');
  expect(html).not.toMatch(/href="(javascript|data|\/local)|<img/i);
  expect(html.match(/<a /g)).toHaveLength(1);
  expect(html).toContain('bad');
  expect(safeUrl('vbscript:x')).toBeUndefined();
  expect(safeUrl('mailto:a@b.c')).toBe('mailto:a@b.c');
});

test('code blocks, inline code, lists, tables, emphasis', () => {
  const html = markdownToHtml('a **b** `c<d>`\n\n```js\nx < 1 && "y"\n```\n\n- one\n- two\n\n1. first\n\n| h | i |\n|---|---|\n| 1 | <b>2</b> |');
  expect(html).toContain('<strong>b</strong>');
  expect(html).toContain('<code>c&lt;d&gt;</code>');
  expect(html).toContain('<pre data-lang="js"><code>x &lt; 1 &amp;&amp; &quot;y&quot;</code></pre>');
  expect(html).toMatch(/<ul>\s*<li>one<\/li>\s*<li>two<\/li>\s*<\/ul>/);
  expect(html).toMatch(/<ol>\s*<li>first<\/li>/);
  expect(html).toMatch(/<table>[\s\S]*<th>h<\/th>[\s\S]*<td>&lt;b&gt;2&lt;\/b&gt;<\/td>/);
  // A fence still streaming renders as code so far; a language name cannot break out of its attribute.
  expect(markdownToHtml('```\nlet a')).toBe('<pre><code>let a</code></pre>');
  expect(markdownToHtml('```js"><script>\nx\n```')).toContain('<pre data-lang="js"><code>x</code></pre>');
});
