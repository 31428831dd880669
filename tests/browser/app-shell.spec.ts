import { expect, test, type Page } from '@playwright/test';
import { mkdirSync } from 'node:fs';
import { seriousA11yViolations } from './support/axe.ts';
import { startPreview } from './support/preview-server.ts';

const nav = (page: Page) => page.getByRole('navigation', { name: 'Main' });

test('every page is reachable from the nav and shows its empty state', async ({ page }) => {
  await page.goto('./');
  await expect(page.locator('main')).toHaveAttribute('data-page', 'experiments');
  await expect(page.getByTestId('empty-state')).toContainText(
    'No experiments yet — create one or import an mlruns folder',
  );
  expect(await seriousA11yViolations(page)).toEqual([]);

  if (process.env.UPDATE_SCREENSHOTS) {
    mkdirSync('docs/screenshots', { recursive: true });
    await page.setViewportSize({ width: 1200, height: 700 });
    await page.screenshot({ path: 'docs/screenshots/experiments-empty.png' });
  }

  const pages = [
    { link: 'Models', page: 'models', text: 'No registered models yet' },
    { link: 'Playground', page: 'playground', text: 'No servable model yet' },
    { link: 'Settings', page: 'settings', text: 'Cross-origin isolated' },
    { link: 'Experiments', page: 'experiments', text: 'No experiments yet' },
  ];
  for (const p of pages) {
    await nav(page).getByRole('link', { name: p.link }).click();
    await expect(page.locator('main')).toHaveAttribute('data-page', p.page);
    await expect(page.locator('main')).toContainText(p.text);
    await expect(nav(page).getByRole('link', { name: p.link })).toHaveAttribute(
      'aria-current',
      'page',
    );
    expect(await seriousA11yViolations(page), `accessibility of ${p.page}`).toEqual([]);
  }

  // The back button walks the history of routes.
  await page.goBack();
  await expect(page.locator('main')).toHaveAttribute('data-page', 'settings');
  await page.goBack();
  await expect(page.locator('main')).toHaveAttribute('data-page', 'playground');
  await page.goForward();
  await expect(page.locator('main')).toHaveAttribute('data-page', 'settings');
});

test('deep links open the page they name, with a true empty state', async ({ page }) => {
  const links = [
    { hash: '#/experiments/0', page: 'experiment', text: 'No experiment with id “0”' },
    {
      hash: '#/experiments/0/runs/0123456789abcdef0123456789abcdef',
      page: 'run',
      text: 'No run with id “0123456789abcdef0123456789abcdef”',
    },
    { hash: '#/compare-runs?runs=', page: 'compare', text: 'Nothing to compare yet' },
    { hash: '#/models/phi3', page: 'model', text: 'No registered model named “phi3”' },
    { hash: '#/models/phi3/versions/2', page: 'model-version', text: 'No version 2 of “phi3”' },
    { hash: '#/playground', page: 'playground', text: 'No servable model yet' },
    { hash: '#/settings', page: 'settings', text: 'Storage' },
    { hash: '#/no/such/page', page: 'not-found', text: 'Nothing lives at' },
  ];
  for (const l of links) {
    await page.goto(`./${l.hash}`);
    await expect(page.locator('main')).toHaveAttribute('data-page', l.page);
    await expect(page.locator('main')).toContainText(l.text);
    expect(await seriousA11yViolations(page), `accessibility of ${l.hash}`).toEqual([]);
  }
});

test('the preview is cross-origin isolated and Settings says so', async ({ page }) => {
  await page.goto('./#/settings');
  expect(await page.evaluate(() => crossOriginIsolated)).toBe(true);
  await expect(page.getByTestId('isolated')).toContainText('Yes');
  await expect(page.getByTestId('threads')).toContainText('logical cores');
  // --enable-unsafe-webgpu gives a SwiftShader adapter even without a GPU.
  await expect(page.getByTestId('webgpu')).toContainText('Available');
  await expect(page.getByTestId('storage-usage')).toContainText('available to this site');
});

test('after the first visit the shell opens with the network gone', async ({ page }) => {
  const preview = await startPreview(4181);
  try {
    await page.goto(`${preview.url}#/models`);
    await page.evaluate(async () => {
      await navigator.serviceWorker.ready;
      if (!navigator.serviceWorker.controller) {
        await new Promise((ok) => navigator.serviceWorker.addEventListener('controllerchange', ok));
      }
    });
  } finally {
    await preview.stop();
  }
  await page.reload();
  await expect(page.locator('main')).toHaveAttribute('data-page', 'models');
  await expect(page.locator('main')).toContainText('No registered models yet');
  expect(await page.evaluate(() => crossOriginIsolated)).toBe(true);
  await page.goto(`${preview.url}#/settings`);
  await expect(page.getByTestId('offline')).toContainText('Ready');
});
