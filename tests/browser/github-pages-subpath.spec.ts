import { expect, test } from '@playwright/test';
import { startStaticServer } from './support/static-server.ts';

// GitHub Pages serves the build from /<repo>/ and sends no COOP/COEP headers.
test('the build runs from a sub-path and the service worker makes it isolated', async ({
  page,
}) => {
  const server = await startStaticServer(process.env.TABFLOW_OUT_DIR ?? 'dist', '/tabflow/', 4180);
  try {
    await page.goto(`${server.url}#/models/phi3`);
    await expect(page.locator('main')).toHaveAttribute('data-page', 'model');
    await expect(page.locator('main')).toContainText('No registered model named “phi3”');
    // The first load is not isolated; once the worker controls the page it reloads once.
    await expect
      .poll(() => page.evaluate(() => crossOriginIsolated).catch(() => false), { timeout: 20_000 })
      .toBe(true);
    await expect(page.locator('main')).toHaveAttribute('data-page', 'model');

    // Offline from the sub-path too: the host goes away, the shell still opens.
    server.setDown(true);
    await page.goto(`${server.url}#/settings`);
    await expect(page.getByTestId('isolated')).toContainText('Yes');
  } finally {
    await server.close();
  }
});
