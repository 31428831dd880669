import { expect, test } from '@playwright/test';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startStaticServer } from './support/static-server.ts';

test('a newly deployed build shows an update prompt that reloads into it', async ({ page }) => {
  const site = mkdtempSync(join(tmpdir(), 'tabflow-site-'));
  cpSync(process.env.TABFLOW_OUT_DIR ?? 'dist', site, { recursive: true });
  const server = await startStaticServer(site, '/tabflow/', 4182);
  try {
    await page.goto(`${server.url}#/settings`);
    await expect(page.getByTestId('offline')).toContainText('Ready');
    // The page reloads itself once to become isolated; an evaluate that meets the reload retries.
    await expect
      .poll(() => page.evaluate(() => crossOriginIsolated).catch(() => false), { timeout: 20_000 })
      .toBe(true);
    await expect(page.getByTestId('offline')).toContainText('Ready');

    // "Deploy" a new build: a service worker with another build id.
    const swPath = join(site, 'sw.js');
    const sw = readFileSync(swPath, 'utf8');
    writeFileSync(swPath, sw.replace(/const BUILD_ID = '[^']+'/, "const BUILD_ID = 'next-build'"));

    await page.getByRole('button', { name: 'Check for updates' }).click();
    const banner = page.getByRole('status').filter({ hasText: 'A new version of Tabflow' });
    await expect(banner).toBeVisible();
    await banner.getByRole('button', { name: 'Reload to update' }).click();
    await expect(banner).toBeHidden();
    await expect(page.getByTestId('offline')).toContainText('Ready');
    const buildId = await page.evaluate(async () => {
      const sw = navigator.serviceWorker.controller;
      if (!sw) return null;
      return new Promise<string>((ok) => {
        navigator.serviceWorker.addEventListener(
          'message',
          (e: MessageEvent<{ buildId: string }>) => ok(e.data.buildId),
          { once: true },
        );
        sw.postMessage('build-id');
      });
    });
    expect(buildId).toBe('next-build');
  } finally {
    await server.close();
    rmSync(site, { recursive: true, force: true });
  }
});
