import { expect, test } from '@playwright/test';
import { unzipSync } from 'fflate';
import { readFileSync } from 'node:fs';
import { createExperiment, logRuns, openWithHook, type TestHook } from './support/tracking.ts';

test('the runs filter and sort live in the URL: a deep link and the back button restore them', async ({
  page,
}) => {
  await page.setViewportSize({ width: 1280, height: 800 });
  await openWithHook(page);
  const exp = await createExperiment(page, 'sweep');
  await logRuns(page, exp, [
    { name: 'run-a', params: { lr: '0.01' }, metrics: { acc: [0.5, 0.95] } },
    { name: 'run-b', params: { lr: '0.1' }, metrics: { acc: [0.4, 0.7] } },
    { name: 'run-c', params: { lr: '0.01' }, metrics: { acc: [0.6, 0.92] } },
  ]);
  await page.goto(`./?test#/experiments/${exp}`);
  await expect(page.getByTestId('run-count')).toContainText('3 runs');

  const box = page.getByRole('searchbox', { name: 'Filter runs' });
  await box.fill("params.lr = '0.01'");
  await box.press('Enter');
  await expect(page.getByTestId('run-count')).toContainText('2 runs');
  await expect(page).toHaveURL(/\?filter=params\.lr\+%3D\+%270\.01%27$/);

  await page.getByRole('columnheader', { name: /acc/ }).getByRole('button').click();
  await expect(page).toHaveURL(/orderBy=metrics\.%60acc%60\+DESC$/);
  const names = () =>
    page.getByTestId('runs-table').getByRole('link', { name: /^run-/ }).allTextContents();
  await expect.poll(names).toEqual(['run-a', 'run-c']);

  // A deep link (a fresh page load) gives the same view.
  const url = page.url();
  await page.goto('about:blank');
  await page.goto(url);
  await expect(page.getByTestId('run-count')).toContainText('2 runs');
  await expect(page.getByRole('searchbox', { name: 'Filter runs' })).toHaveValue(
    "params.lr = '0.01'",
  );
  await expect.poll(names).toEqual(['run-a', 'run-c']);

  // Back: the sort goes, then the filter.
  await page.goto(url.replace(/(#[^?]*)\?.*$/, '$1'));
  await expect(page.getByTestId('run-count')).toContainText('3 runs');
  await page.goBack();
  await expect(page.getByTestId('run-count')).toContainText('2 runs');
  await expect(page.getByRole('searchbox', { name: 'Filter runs' })).toHaveValue(
    "params.lr = '0.01'",
  );
});

test('export selected runs as an mlruns zip holding only those runs', async ({ page }) => {
  await openWithHook(page);
  const exp = await createExperiment(page, 'to share');
  const ids = await logRuns(page, exp, [
    { name: 'keep-1', metrics: { loss: [1, 0.5] } },
    { name: 'skip', metrics: { loss: [2] } },
    { name: 'keep-2', params: { k: 'v' } },
  ]);
  await page.goto(`./?test#/experiments/${exp}`);
  await page.getByLabel('Select run keep-1').check();
  await page.getByLabel('Select run keep-2').check();
  const download = page.waitForEvent('download');
  await page.getByRole('button', { name: 'Export selected runs' }).click();
  const file = await download;
  expect(file.suggestedFilename()).toBe('mlruns.zip');
  await expect(page.getByTestId('export-status')).toContainText('Exported 2 runs');
  const paths = Object.keys(unzipSync(readFileSync((await file.path())!)));
  const runFolders = new Set(
    paths
      .map((p) => p.split('/'))
      .filter((p) => p[1] === exp && /^[0-9a-f]{32}$/.test(p[2] ?? ''))
      .map((p) => p[2]),
  );
  expect([...runFolders].sort()).toEqual([ids[0], ids[2]].sort());
  expect(paths).toContain(`mlruns/${exp}/${ids[0]}/metrics/loss`);
  expect(paths).toContain(`mlruns/${exp}/${ids[2]}/params/k`);
});

test('deleting an experiment hides its runs with it, and restoring brings them all back', async ({
  page,
}) => {
  await openWithHook(page);
  await createExperiment(page, 'stays');
  const exp = await createExperiment(page, 'short-lived');
  await logRuns(page, exp, [{ name: 'r1' }, { name: 'r2' }]);
  await page.goto('./?test#/experiments');
  await page.getByRole('button', { name: 'Delete short-lived' }).click();
  await expect(page.getByTestId('experiments-table')).toContainText('stays');
  await expect(page.getByTestId('experiments-table')).not.toContainText('short-lived');
  await page.getByLabel('Show deleted').check();
  await expect(page.getByTestId('deleted-note')).toContainText(
    "A deleted experiment's runs are hidden with it",
  );
  await page.goto(`./?test#/experiments/${exp}`);
  await expect(
    page.getByRole('status').filter({ hasText: 'This experiment is deleted' }),
  ).toContainText('its runs are hidden with it');
  // The runs themselves keep their lifecycle (MLflow's file store does not mark them deleted).
  const stages = await page.evaluate(async (exp) => {
    const t = await (globalThis as unknown as { tabflowTest: TestHook }).tabflowTest.getTracking();
    const { runs } = await t.searchRuns({ experimentIds: [exp], runViewType: 'ALL' });
    return runs.map((r) => r.info.lifecycleStage);
  }, exp);
  expect(stages).toEqual(['active', 'active']);

  await page.goto('./?test#/experiments');
  await page.getByLabel('Show deleted').check();
  await page.getByRole('button', { name: 'Restore short-lived' }).click();
  await page.getByLabel('Show deleted').uncheck();
  await page.getByRole('link', { name: 'short-lived' }).click();
  await expect(page.getByTestId('run-count')).toContainText('2 runs');
});
