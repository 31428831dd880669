import { expect, type Download, type Page } from '@playwright/test';
import { join } from 'node:path';

/** Opens the import dialog from the Models page (header or empty state). */
export async function openImportDialog(page: Page) {
  await page.goto('./?test#/models');
  await expect(page.locator('main')).toHaveAttribute('data-page', 'models');
  await page.getByRole('button', { name: 'Import model' }).first().click();
  const dialog = page.getByRole('dialog', { name: 'Import an MLflow model' });
  await expect(dialog).toBeVisible();
  return dialog;
}

/** Imports a zip (or a folder) through the dialog under `name`; lands on the version page. */
export async function importThroughUi(
  page: Page,
  source: { zip: string } | { folder: string },
  name: string,
  expectedVersion: string,
  opts: { screenshot?: string } = {},
) {
  const dialog = await openImportDialog(page);
  if ('zip' in source) await dialog.getByLabel('Model zip file').setInputFiles(source.zip);
  else await dialog.getByLabel('Model folder').setInputFiles(source.folder);
  await expect(dialog.getByTestId('import-preview')).toBeVisible();
  await dialog.getByLabel('Register as').fill(name);
  if (opts.screenshot) await page.screenshot({ path: opts.screenshot });
  await dialog.getByRole('button', { name: 'Import', exact: true }).click();
  await expect(page.locator('main')).toHaveAttribute('data-page', 'model-version', {
    timeout: 60_000,
  });
  await expect(page.getByRole('heading', { level: 1 })).toHaveText(
    `${name} · version ${expectedVersion}`,
  );
}

/** Clicks "Export as MLflow model zip" on a version page and saves the download. */
export async function exportVersion(page: Page, saveAs: string): Promise<string> {
  const [download]: [Download, void] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Export as MLflow model zip' }).click(),
  ]);
  const path = join('test-results', 'model-zips', 'downloads', saveAs);
  await download.saveAs(path);
  return path;
}
