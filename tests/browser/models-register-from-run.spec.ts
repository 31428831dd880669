import { expect, test, type Page } from '@playwright/test';
import { createExperiment, logRuns, openWithHook, type TestHook } from './support/tracking.ts';
import { seriousA11yViolations } from './support/axe.ts';

const MLMODEL = [
  'artifact_path: model',
  'flavors:',
  '  python_function:',
  '    loader_module: mlflow.pyfunc.model',
  '    python_version: 3.11.9',
  'mlflow_version: 2.14.3',
  '',
].join('\n');

/** Logs an MLflow model (MLmodel + a weights file) under `folder/` of the run. */
async function logModelFolder(page: Page, runId: string, folder: string): Promise<void> {
  await page.evaluate(
    async ({ runId, folder, text }) => {
      const t = await (
        globalThis as unknown as { tabflowTest: TestHook }
      ).tabflowTest.getTracking();
      await t.logText(runId, text, `${folder}/MLmodel`);
      await t.logText(runId, 'weights', `${folder}/data/weights.bin`);
      await t.logText(runId, 'notes', 'notes.txt');
    },
    { runId, folder, text: MLMODEL },
  );
}

test('register a model from the MLmodel folder of a run, as a new model and as a new version, and see the lineage both ways', async ({
  page,
}) => {
  await page.setViewportSize({ width: 1280, height: 900 });
  await openWithHook(page);
  const exp = await createExperiment(page, 'training');
  const [runId] = await logRuns(page, exp, [{ name: 'trainer', params: { lr: '0.1' } }]);
  await logModelFolder(page, runId!, 'classifier');

  await page.goto(`./?test#/experiments/${exp}/runs/${runId}`);
  await page.getByRole('tab', { name: 'Artifacts' }).click();
  const folders = page.getByTestId('run-model-folders');
  await expect(folders).toContainText('classifier/');
  await folders.getByRole('button', { name: 'Register model from classifier/' }).click();
  const dialog = page.getByRole('dialog', { name: 'Register model from classifier/' });
  await expect(dialog).toBeVisible();
  expect(await seriousA11yViolations(page)).toEqual([]);
  await expect(dialog.getByLabel('Model name')).toHaveValue('classifier');
  await dialog.getByLabel('Model name').fill('iris classifier');
  await dialog.getByRole('button', { name: 'Register' }).click();

  // Lands on the new version, which links back to the run.
  await expect(page).toHaveURL(/#\/models\/iris%20classifier\/versions\/1$/);
  const meta = page.getByTestId('version-meta');
  await expect(meta).toContainText(`runs:/${runId}/classifier`);
  await expect(meta).toContainText('Registered from run artifacts at classifier');
  await expect(page.getByRole('region', { name: 'Files' })).toContainText('data/weights.bin');
  await expect(page.getByRole('region', { name: 'Files' })).not.toContainText('notes.txt');

  // Again, as a new version of the model that now exists.
  await page.goto(`./?test#/experiments/${exp}/runs/${runId}`);
  await page.getByRole('tab', { name: 'Artifacts' }).click();
  await page.getByRole('button', { name: 'Register model from classifier/' }).click();
  await dialog.getByLabel('Model name').fill('iris classifier');
  await dialog.getByRole('button', { name: 'Register' }).click();
  await expect(dialog.getByRole('alert')).toContainText('exists already');
  await dialog.getByLabel('A new version of an existing model').check();
  await expect(dialog.getByRole('combobox')).toHaveValue('iris classifier');
  await dialog.getByRole('button', { name: 'Register' }).click();
  await expect(page).toHaveURL(/#\/models\/iris%20classifier\/versions\/2$/);

  // The run page lists both versions.
  await page.goto(`./?test#/experiments/${exp}/runs/${runId}`);
  const versions = page.getByTestId('run-model-versions');
  await expect(versions).toContainText('iris classifier version 1');
  await expect(versions).toContainText('iris classifier version 2');
});

test('a run without an MLmodel offers no Register model button', async ({ page }) => {
  await openWithHook(page);
  const exp = await createExperiment(page, 'plain');
  const [runId] = await logRuns(page, exp, [{ name: 'no-model' }]);
  await page.evaluate(async (runId) => {
    const t = await (globalThis as unknown as { tabflowTest: TestHook }).tabflowTest.getTracking();
    await t.logText(runId, 'hello', 'readme.txt');
  }, runId!);
  await page.goto(`./?test#/experiments/${exp}/runs/${runId}`);
  await page.getByRole('tab', { name: 'Artifacts' }).click();
  await expect(page.getByTestId('artifact-viewer')).toContainText('hello');
  await expect(page.getByRole('button', { name: /Register model/ })).toHaveCount(0);
  await expect(page.getByTestId('run-model-versions')).toHaveCount(0);
});
