// Imports refuse early when the browser says the files will not fit (the model import dialog and
// the mlruns import dialog, with navigator.storage.estimate() reporting an almost full quota), and
// Markdown notes render without remote image sources.
import { expect, test } from '@playwright/test';
import { strToU8, zipSync } from 'fflate';
import { openWithHook, type TestHook } from './support/tracking.ts';
import { buildOnnxModelZip } from './support/model-zips.ts';

test.use({ serviceWorkers: 'block' });

/** The browser reports 1 MB of quota left. */
async function almostFull(page: import('@playwright/test').Page): Promise<void> {
  await page.addInitScript(() => {
    const estimate = () => Promise.resolve({ usage: 99 * 1024 * 1024, quota: 100 * 1024 * 1024 });
    Object.defineProperty(navigator.storage, 'estimate', { value: estimate, configurable: true });
  });
}

test('the model import dialog refuses a model that will not fit, with the numbers', async ({
  page,
}) => {
  await almostFull(page);
  const zip = buildOnnxModelZip('too-big-onnx.zip');
  await page.goto('./?test#/models');
  await page.getByRole('button', { name: 'Import model' }).first().click();
  const dialog = page.getByRole('dialog', { name: 'Import an MLflow model' });
  await dialog.getByLabel('Model zip file').setInputFiles(zip.path);
  await expect(dialog.getByTestId('import-preview')).toBeVisible();
  await dialog.getByLabel('Register as').fill('too-big');
  await dialog.getByRole('button', { name: 'Import', exact: true }).click();
  const error = dialog.getByTestId('import-error');
  await expect(error).toContainText('Not enough storage');
  await expect(error).toContainText('Not enough storage for too-big-onnx.zip: it needs about');
  await expect(error).toContainText('Nothing was written');
  const models = await page.evaluate(async () => {
    const h = globalThis as unknown as {
      tabflowTest: {
        getRegistry(): Promise<{ searchRegisteredModels(): Promise<{ models: unknown[] }> }>;
      };
    };
    const reg = await h.tabflowTest.getRegistry();
    return (await reg.searchRegisteredModels()).models.length;
  });
  expect(models).toBe(0);
});

test('the mlruns import dialog refuses a store that will not fit', async ({ page }) => {
  await almostFull(page);
  await openWithHook(page);
  const big = new Uint8Array(9 * 1024 * 1024);
  crypto.getRandomValues(big.subarray(0, 65536));
  const zip = zipSync({
    'mlruns/1/meta.yaml': strToU8('experiment_id: "1"\nname: big\nlifecycle_stage: active\n'),
    'mlruns/1/abc/artifacts/blob.bin': [big, { level: 0 }],
  });
  await page.getByRole('button', { name: 'Import mlruns' }).first().click();
  await page.getByTestId('mlruns-zip-input').setInputFiles({
    name: 'big-mlruns.zip',
    mimeType: 'application/zip',
    buffer: Buffer.from(zip),
  });
  const error = page.getByTestId('import-error');
  await expect(error).toContainText('Not enough storage for big-mlruns.zip');
  const count = await page.evaluate(async () => {
    const t = await (globalThis as unknown as { tabflowTest: TestHook }).tabflowTest.getTracking();
    return (await t.listExperiments({ viewType: 'ALL' })).length;
  });
  expect(count).toBe(0);
});

test('Markdown notes keep local images and drop remote image sources', async ({ page }) => {
  const remote: string[] = [];
  page.on('request', (r) => {
    if (/evil\.example|tracker\.test/.test(r.url())) remote.push(r.url());
  });
  await openWithHook(page);
  const note = [
    '# Notes',
    '![pixel](https://evil.example/pixel.png)',
    '![proto](//tracker.test/p.gif)',
    '<img src="http://evil.example/a.png" srcset="http://evil.example/b.png 2x, /ok.png 1x">',
    '<picture><source srcset="https://evil.example/c.webp"><img src="https://evil.example/d.png"></picture>',
    '<svg><image href="https://evil.example/e.svg"></image><use href="https://evil.example/f.svg#x"></use></svg>',
    '![inline](data:image/gif;base64,R0lGODlhAQABAAAAACw=)',
    '![local](./favicon.svg)',
    '[a link](https://example.org/page)',
    '<a href="https://example.org/x" target="_top">top</a>',
  ].join('\n\n');
  const experimentId = await page.evaluate(async (text) => {
    const t = await (globalThis as unknown as { tabflowTest: TestHook }).tabflowTest.getTracking();
    return t.createExperiment('with-note', { tags: { 'mlflow.note.content': text } });
  }, note);
  await page.goto(`./?test#/experiments/${experimentId}`);
  const md = page.getByTestId('markdown').first();
  await expect(md).toContainText('Notes');
  const html = await md.innerHTML();
  expect(html).not.toMatch(/evil\.example|tracker\.test/);
  expect(html).toContain('data:image/gif;base64');
  expect(html).toMatch(/src="\.\/favicon\.svg"/);
  const links = await md
    .locator('a')
    .evaluateAll((as) =>
      as.map((a) => ({ target: a.getAttribute('target'), rel: a.getAttribute('rel') })),
    );
  expect(links.length).toBeGreaterThanOrEqual(2);
  for (const l of links) expect(l).toEqual({ target: '_blank', rel: 'noopener noreferrer' });
  await page.waitForTimeout(300);
  expect(remote).toEqual([]);
});
