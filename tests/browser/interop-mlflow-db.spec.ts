// MLflow's own database from the Settings page, in the built app (sql.js in the browser): export
// everything as a zip with mlflow.db and the run artifacts, then import that mlflow.db into a
// fresh browser profile. (Python MLflow's judgement of the same export is in
// tests/interop/mlflow-db-export.test.ts.)
import { expect, test } from '@playwright/test';
import { readFileSync } from 'node:fs';
import { unzipSync } from 'fflate';
import { createExperiment, logRuns, openWithHook, type TestHook } from './support/tracking.ts';

test('export as mlflow.db (zip), then import the mlflow.db into a fresh profile', async ({
  page,
  browser,
}) => {
  await openWithHook(page, '#/settings');
  const experimentId = await createExperiment(page, 'db-roundtrip');
  const [runId] = await logRuns(page, experimentId, [
    { name: 'r1', params: { lr: '0.1' }, metrics: { loss: [3, 2, 1] } },
  ]);
  await page.evaluate(async (runId) => {
    const hook = (globalThis as unknown as { tabflowTest: TestHook }).tabflowTest;
    await (await hook.getTracking()).logText(runId, 'artifact text', 'notes/a.txt');
  }, runId!);

  const download = page.waitForEvent('download');
  await page.getByRole('button', { name: 'Export as mlflow.db (zip)' }).click();
  const file = await (await download).path();
  const entries = unzipSync(new Uint8Array(readFileSync(file)));
  expect(Object.keys(entries).sort()).toEqual(
    [`mlartifacts/${experimentId}/${runId}/artifacts/notes/a.txt`, 'mlflow.db'].sort(),
  );
  await expect(page.getByRole('status').filter({ hasText: 'mlflow server' })).toBeVisible();

  const fresh = await browser.newContext();
  const other = await fresh.newPage();
  await openWithHook(other, '#/settings');
  await other.getByTestId('mlflow-db-input').setInputFiles({
    name: 'mlflow.db',
    mimeType: 'application/octet-stream',
    buffer: Buffer.from(entries['mlflow.db']!),
  });
  await expect(other.getByRole('status').filter({ hasText: 'Imported' })).toContainText(
    'Imported 1 experiments, 1 runs (3 metric points)',
  );
  const run = await other.evaluate(async (runId) => {
    const hook = (globalThis as unknown as { tabflowTest: TestHook }).tabflowTest;
    const t = await hook.getTracking();
    const r = await t.getRun(runId);
    return { params: r.params, history: (await t.getMetricHistory(runId, 'loss')).length };
  }, runId!);
  expect(run).toEqual({ params: { lr: '0.1' }, history: 3 });
  await fresh.close();
});
