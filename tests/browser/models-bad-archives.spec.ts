import { expect, test, type Page } from '@playwright/test';
import { mkdirSync } from 'node:fs';
import { seriousA11yViolations } from './support/axe.ts';
import { buildBadArchives, buildTraversalZip } from './support/model-zips.ts';
import { openImportDialog } from './support/models-ui.ts';

const shots = process.env.UPDATE_SCREENSHOTS ? 'docs/screenshots' : 'test-results';

/** What the registry holds, read through the page's own services. */
async function storedModels(
  page: Page,
): Promise<{ models: number; files: number; blobChunks: number }> {
  return page.evaluate(async () => {
    const hook = (
      globalThis as unknown as {
        tabflowTest: {
          getRegistry(): Promise<{
            db: IDBDatabase & { count(store: string): Promise<number> };
            searchRegisteredModels(): Promise<{ models: unknown[] }>;
          }>;
        };
      }
    ).tabflowTest;
    const registry = await hook.getRegistry();
    const { models } = await registry.searchRegisteredModels();
    return {
      models: models.length,
      files: await registry.db.count('modelFiles'),
      blobChunks: await registry.db.count('blobChunks'),
    };
  });
}

test('a zip that writes outside its folder is refused with its own error, and nothing is stored', async ({
  page,
}) => {
  const dialog = await openImportDialog(page);
  await dialog.getByLabel('Model zip file').setInputFiles(buildTraversalZip());
  const error = dialog.getByTestId('import-error');
  await expect(error).toContainText('Unsafe path in the archive');
  await expect(error).toContainText('../../evil.txt');
  await expect(dialog.getByRole('button', { name: 'Import', exact: true })).toBeDisabled();
  expect(await seriousA11yViolations(page)).toEqual([]);
  mkdirSync(shots, { recursive: true });
  await page.setViewportSize({ width: 1200, height: 800 });
  await page.screenshot({ path: `${shots}/models-import-refused.png` });

  await dialog.getByRole('button', { name: 'Close' }).click();
  await expect(dialog).toBeHidden();
  await expect(page.getByTestId('empty-state')).toContainText('No registered models yet');
  expect(await storedModels(page)).toEqual({ models: 0, files: 0, blobChunks: 0 });
});

test('not a zip, a truncated zip and a zip without MLmodel each get their own error', async ({
  page,
}) => {
  const bad = buildBadArchives();
  const dialog = await openImportDialog(page);
  const cases = [
    { file: bad.notAZip, title: 'Not a zip archive', detail: 'not a zip archive' },
    { file: bad.truncated, title: 'The archive is truncated', detail: 'truncated' },
    { file: bad.noMLmodel, title: 'MLmodel file missing', detail: 'no MLmodel file was found' },
  ];
  for (const c of cases) {
    await dialog.getByLabel('Model zip file').setInputFiles(c.file);
    const error = dialog.getByTestId('import-error');
    await expect(error).toContainText(c.title);
    await expect(error).toContainText(c.detail);
  }
  await dialog.getByRole('button', { name: 'Close' }).click();
  await expect(page.getByTestId('empty-state')).toContainText('No registered models yet');
  expect(await storedModels(page)).toEqual({ models: 0, files: 0, blobChunks: 0 });
});
