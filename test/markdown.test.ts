import { expect, test } from 'vitest';
import { renderMarkdown } from '../demo/markdown.js';

test('model output is escaped before any markup is added', () => {
  const html = renderMarkdown('Hi <script>alert(1)</script> <img src=x onerror=alert(1)> & "q"');
  expect(html).not.toMatch(/<script|<img/);
  expect(html).toContain('&lt;script&gt;');
  expect(html).toContain('&amp; &quot;q&quot;');
});

test('fenced code, inline code, bold and paragraphs', () => {
  expect(renderMarkdown('a **b** `c`\n\n```js\nx < 1\n```\nafter')).toBe('<p>a <strong>b</strong> <code>c</code></p><pre><code>x &lt; 1</code></pre><p>after</p>');
  // A fence still streaming renders as code so far.
  expect(renderMarkdown('```\nlet a')).toBe('<pre><code>let a</code></pre>');
});
