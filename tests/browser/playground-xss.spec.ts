// Model answers are untrusted: HTML in them must render as inert text, images must not load,
// and nothing in them may run. The answer is put into a stored conversation and opened.
import { expect, test } from '@playwright/test';

test.use({ serviceWorkers: 'block' });

const HOSTILE = [
  'Here is an image: <img src=x onerror="window.__pwned = 1">',
  '<script>window.__pwned = 2</script>',
  '[click](javascript:window.__pwned=3) and <a href="#" onclick="window.__pwned=4">link</a>',
  '![tracker](http://127.0.0.1:9/steal.png)',
  '',
  '```python',
  'def answer():',
  '    return "<b>42</b>"  # not HTML',
  '```',
].join('\n');

test('a model answer with <img onerror> and <script> renders inert', async ({ page }) => {
  const requests: string[] = [];
  page.on('request', (r) => requests.push(r.url()));
  await page.goto('./?test#/playground');
  await page.waitForFunction(() => 'tabflowPlaygroundTest' in window);
  await page.evaluate(async (content) => {
    const hook = (
      window as unknown as {
        tabflowPlaygroundTest: { putConversation(v: unknown): Promise<string> };
      }
    ).tabflowPlaygroundTest;
    await hook.putConversation({
      format: 'tabflow.conversation/1',
      title: 'Hostile answer',
      mode: 'chat',
      model: { name: 'm', version: '1' },
      system_prompt: '',
      settings: {},
      messages: [
        { role: 'user', content: 'Say something <i>dangerous</i>' },
        {
          role: 'assistant',
          content,
          response: { object: 'chat.completion', choices: [{ message: { content } }] },
        },
      ],
    });
  }, HOSTILE);
  await page.reload();
  await page
    .getByTestId('conversation-item')
    .getByRole('button', { name: /^Hostile answer/ })
    .click();
  const answer = page.getByTestId('message-assistant').getByTestId('answer-content');
  await expect(answer).toContainText('<img src=x onerror="window.__pwned = 1">');
  await expect(answer).toContainText('<script>window.__pwned = 2</script>');
  await expect(page.getByTestId('message-user')).toContainText('Say something <i>dangerous</i>');

  // Nothing became an element: no img, script, handler attribute or javascript: URL.
  const dom = await answer.evaluate((el) => ({
    imgs: el.querySelectorAll('img').length,
    scripts: el.querySelectorAll('script').length,
    handlers: [...el.querySelectorAll('*')].filter((n) =>
      [...n.attributes].some((a) => a.name.startsWith('on')),
    ).length,
    jsLinks: [...el.querySelectorAll('a')].filter((a) =>
      /^\s*javascript:/i.test(a.getAttribute('href') ?? ''),
    ).length,
    links: [...el.querySelectorAll('a[href]')].map((a) => ({
      href: a.getAttribute('href'),
      rel: a.getAttribute('rel'),
    })),
    keyword: el.querySelector('pre code .tok-keyword')?.textContent,
    codeText: el.querySelector('pre code')?.textContent,
  }));
  expect(dom).toMatchObject({ imgs: 0, scripts: 0, handlers: 0, jsLinks: 0, keyword: 'def' });
  expect(dom.codeText).toContain('return "<b>42</b>"');
  expect(dom.links.every((l) => l.rel === 'noopener noreferrer')).toBe(true);
  expect(dom.links.map((l) => l.href)).toContain('http://127.0.0.1:9/steal.png');

  // Clicking what looks like links runs nothing; the raw JSON is text too.
  await page
    .getByTestId('message-assistant')
    .getByRole('button', { name: 'View raw JSON' })
    .click();
  await expect(page.getByTestId('raw-json')).toContainText('<script>window.__pwned = 2</script>');
  expect(
    await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned),
  ).toBeUndefined();
  expect(requests.filter((u) => /steal\.png|\/x$/.test(u))).toEqual([]);
});
