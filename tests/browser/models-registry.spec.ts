import { expect, test, type Download } from '@playwright/test';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { seriousA11yViolations } from './support/axe.ts';
import { buildOnnxModelZip } from './support/model-zips.ts';
import { openImportDialog } from './support/models-ui.ts';

const shots = process.env.UPDATE_SCREENSHOTS ? 'docs/screenshots' : 'test-results';
const XSS = '<img src=x onerror="window.__xss=1">';

async function importIris(page: import('@playwright/test').Page, version: string) {
  const dialog = await openImportDialog(page);
  await dialog.getByLabel('Model zip file').setInputFiles(buildOnnxModelZip().path);
  // MLflow wrote the generic artifact path `model`, so the name comes from the file name.
  await expect(dialog.getByLabel('Register as')).toHaveValue('iris-onnx');
  await expect(dialog.getByTestId('import-preview')).toContainText('onnx, python_function');
  await dialog.getByRole('button', { name: 'Import', exact: true }).click();
  await expect(page.getByRole('heading', { level: 1 })).toHaveText(
    `iris-onnx · version ${version}`,
  );
}

test('a registered model: versions, aliases, stages, tags, description, search, rename, delete, registry archive', async ({
  page,
}) => {
  await importIris(page, '1');
  // An onnx-flavor model: a tensor signature and the onnx flavor block.
  await expect(page.getByTestId('signature-inputs')).toContainText('Tensor(float32)');
  await expect(page.getByTestId('signature-inputs')).toContainText('shape (-1, 4)');
  await expect(page.getByTestId('mlmodel')).toContainText(
    'CUDAExecutionProvider, CPUExecutionProvider',
  );
  await importIris(page, '2');

  await page
    .getByRole('navigation', { name: 'Breadcrumb' })
    .getByRole('link', { name: 'iris-onnx' })
    .click();
  await expect(page.locator('main')).toHaveAttribute('data-page', 'model');
  const versions = page.getByTestId('versions-table');
  await expect(versions.getByRole('row')).toHaveCount(3);

  // Aliases: a reserved name is refused; @champion is set, moved, deleted.
  const aliases = page.getByTestId('aliases');
  await aliases.getByRole('textbox', { name: 'Alias', exact: true }).fill('latest');
  await aliases.getByRole('button', { name: 'Set alias' }).click();
  await expect(aliases.getByRole('alert')).toContainText('reserved');
  await aliases.getByRole('textbox', { name: 'Alias', exact: true }).fill('champion');
  await aliases.getByLabel('Version for the alias').selectOption('1');
  await aliases.getByRole('button', { name: 'Set alias' }).click();
  await expect(versions.getByRole('row', { name: /Version 1/ })).toContainText('@champion');
  await aliases.getByLabel('Version of alias champion').selectOption('2');
  await expect(versions.getByRole('row', { name: /Version 2/ })).toContainText('@champion');
  await expect(versions.getByRole('row', { name: /Version 1/ })).not.toContainText('@champion');

  // Stages: with "archive existing", moving v2 to Production archives v1 there.
  await page.getByLabel('Stage of version 1').selectOption('Production');
  await expect(page.getByLabel('Stage of version 1')).toHaveValue('Production');
  await page.getByLabel(/archives the versions already there/).check();
  await page.getByLabel('Stage of version 2').selectOption('Production');
  await expect(page.getByLabel('Stage of version 2')).toHaveValue('Production');
  await expect(page.getByLabel('Stage of version 1')).toHaveValue('Archived');

  expect(await seriousA11yViolations(page)).toEqual([]);

  // Untrusted text stays text: a tag and a Markdown description holding HTML run nothing.
  const tags = page.getByTestId('tags');
  await tags.getByLabel('Tag key').fill('task');
  await tags.getByLabel('Tag value').fill(XSS);
  await tags.getByRole('button', { name: 'Add tag' }).click();
  await expect(tags.getByRole('cell', { name: XSS })).toBeVisible();
  await page.getByRole('button', { name: 'Edit description of model iris-onnx' }).click();
  await page
    .getByLabel('Description of model iris-onnx (Markdown)')
    .fill(`**Iris** classifier ${XSS} <script>window.__xss=2</script>`);
  await page.getByRole('button', { name: 'Save description' }).click();
  const description = page.getByTestId('description');
  await expect(description.locator('strong')).toHaveText('Iris');
  await expect(page.locator('main img[onerror], main script')).toHaveCount(0);
  expect(
    await page.evaluate(() => (window as unknown as { __xss?: number }).__xss),
  ).toBeUndefined();
  mkdirSync(shots, { recursive: true });
  await page.setViewportSize({ width: 1200, height: 900 });
  await page.screenshot({ path: `${shots}/models-model-page.png`, fullPage: true });
  // The dark theme keeps its contrast too.
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.screenshot({ path: 'test-results/models-model-page-dark.png', fullPage: true });
  await page.emulateMedia({ colorScheme: 'light' });

  // Search by name and by tag on the list.
  await page.getByRole('link', { name: 'Models', exact: true }).first().click();
  const table = page.getByTestId('models-table');
  await expect(table.getByRole('row')).toHaveCount(2);
  await expect(table).toContainText(XSS);
  await expect(table).toContainText('@champion: v2');
  const search = page.getByRole('search', { name: 'Search registered models' });
  await search.getByLabel('Name').fill('RIS-ON');
  await search.getByRole('button', { name: 'Search' }).click();
  await expect(table.getByRole('row')).toHaveCount(2);
  await search.getByLabel('Name').fill('nothing-like-this');
  await search.getByRole('button', { name: 'Search' }).click();
  await expect(
    page.getByRole('status').filter({ hasText: 'No registered model matches' }),
  ).toBeVisible();
  await search.getByLabel('Name').fill('');
  await search.getByLabel('Tag').fill('task');
  await search.getByRole('button', { name: 'Search' }).click();
  await expect(page.getByTestId('models-table').getByRole('row')).toHaveCount(2);
  await search.getByLabel('Tag').fill('task=other');
  await search.getByRole('button', { name: 'Search' }).click();
  await expect(page.getByTestId('models-table')).toHaveCount(0);
  await search.getByRole('button', { name: 'Clear' }).click();
  await expect(page.getByTestId('models-table').getByRole('row')).toHaveCount(2);
  expect(await seriousA11yViolations(page)).toEqual([]);
  await page.screenshot({ path: `${shots}/models-list.png` });

  // The whole registry as one archive.
  const [download]: [Download, void] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Export registry' }).click(),
  ]);
  const archive = join('test-results', 'model-zips', 'downloads', 'registry.zip');
  await download.saveAs(archive);

  // Rename, then delete with a confirmation that names what goes.
  await page.getByRole('link', { name: 'iris-onnx', exact: true }).click();
  await page.getByRole('button', { name: 'Rename' }).click();
  const rename = page.getByRole('dialog', { name: 'Rename model' });
  await rename.getByLabel('New name for “iris-onnx”').fill('iris-classifier');
  await rename.getByRole('button', { name: 'Rename' }).click();
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('iris-classifier');
  await expect(page).toHaveURL(/#\/models\/iris-classifier$/);
  await expect(page.getByTestId('versions-table').getByRole('row')).toHaveCount(3);

  await page.getByRole('button', { name: 'Delete model' }).click();
  const confirm = page.getByRole('dialog', { name: 'Delete model “iris-classifier”?' });
  await expect(confirm.getByTestId('delete-summary')).toContainText('iris-classifier');
  await expect(confirm.getByTestId('delete-summary')).toContainText('2 versions (v2, v1)');
  await expect(confirm.getByTestId('delete-summary')).toContainText('@champion');
  await confirm.getByRole('button', { name: 'Cancel' }).click();
  await expect(confirm).toBeHidden();
  await page.getByRole('button', { name: 'Delete model' }).click();
  await confirm.getByRole('button', { name: 'Delete model' }).click();
  await expect(page.locator('main')).toHaveAttribute('data-page', 'models');
  await expect(page.getByTestId('empty-state')).toContainText('No registered models yet');

  // Importing the registry archive brings back the model as it was exported.
  await page.getByLabel('Registry archive').setInputFiles(archive);
  await expect(
    page.getByRole('status').filter({ hasText: 'Imported 1 model (2 versions)' }),
  ).toBeVisible();
  await page.getByRole('link', { name: 'iris-onnx', exact: true }).click();
  await expect(page.getByLabel('Stage of version 2')).toHaveValue('Production');
  await expect(
    page.getByTestId('versions-table').getByRole('row', { name: /Version 2/ }),
  ).toContainText('@champion');
});
