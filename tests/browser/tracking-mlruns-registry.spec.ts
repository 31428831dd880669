import { expect, test, type Page } from '@playwright/test';
import { unzipSync, zipSync, strToU8 } from 'fflate';
import { readFileSync, writeFileSync } from 'node:fs';
import { openWithHook, type TestHook } from './support/tracking.ts';

// Written by Python MLflow 3.17.2 (scripts/interop/make_mlruns_registry_fixture.py): a run with a
// model among its artifacts and a logged model; "My Model" with 4 live versions (alias champion
// on 2), and "other".
const FIXTURE = readFileSync(
  new URL('../fixtures/mlruns-registry-mlflow-3.17.zip', import.meta.url),
);
const EXP = '616257020072782523';
const RUN = '492bedf1223147108413181155696afd';

async function importZip(page: Page, zip: Uint8Array | string): Promise<void> {
  await page.getByRole('button', { name: 'Import mlruns' }).first().click();
  await expect(page.getByRole('dialog', { name: 'Import an mlruns store' })).toBeVisible();
  await page
    .getByTestId('mlruns-zip-input')
    .setInputFiles(
      typeof zip === 'string'
        ? zip
        : { name: 'mlruns.zip', mimeType: 'application/zip', buffer: Buffer.from(zip) },
    );
}

async function counts(page: Page): Promise<number[]> {
  return page.evaluate(async () => {
    const hook = (
      globalThis as unknown as {
        tabflowTest: TestHook & {
          getRegistry(): Promise<{ searchRegisteredModels(): Promise<{ models: unknown[] }> }>;
        };
      }
    ).tabflowTest;
    const t = await hook.getTracking();
    const r = await hook.getRegistry();
    return [
      (await t.listExperiments({ viewType: 'ALL' })).length,
      (await r.searchRegisteredModels()).models.length,
    ];
  });
}

test('an mlruns zip brings its model registry: versions hold the run and logged-model files, and the run page lists them', async ({
  page,
}) => {
  await page.setViewportSize({ width: 1280, height: 900 });
  await openWithHook(page);
  await importZip(page, FIXTURE);
  await expect(page.getByTestId('import-result')).toContainText('2 registered models (5 versions)');
  await page.getByRole('dialog').getByRole('button', { name: 'Done' }).click();

  await page.goto('./?test#/models/My%20Model/versions/1');
  await expect(page.getByTestId('version-meta')).toContainText(`runs:/${RUN}/saved`);
  await expect(page.getByTestId('version-meta')).toContainText(
    'Registered from run artifacts at saved',
  );
  await expect(page.getByRole('region', { name: 'Files' })).toContainText('python_model.pkl');
  await page.goto('./?test#/models/My%20Model/versions/2');
  await expect(page.getByRole('region', { name: 'Files' })).toContainText('MLmodel');
  await expect(page.getByRole('region', { name: 'Aliases' })).toContainText('champion');

  // The run page shows which versions came from the run.
  await page.goto(`./?test#/experiments/${EXP}/runs/${RUN}`);
  const versions = page.getByTestId('run-model-versions');
  await expect(versions).toContainText('My Model version 1');
  await expect(versions).toContainText('other version 1');
  await versions.getByRole('link', { name: 'My Model version 3' }).click();
  await expect(page).toHaveURL(/#\/models\/My%20Model\/versions\/3$/);

  // Export everything with the registry: the models/ folder is in the zip.
  await page.goto('./?test#/experiments');
  const download = page.waitForEvent('download');
  await page.getByRole('button', { name: 'Export all with registry' }).click();
  const zip = unzipSync(readFileSync((await (await download).path())!));
  const input = unzipSync(FIXTURE);
  for (const p of [
    'mlruns/models/My Model/meta.yaml',
    'mlruns/models/My Model/aliases/champion',
    'mlruns/models/My Model/version-3/meta.yaml',
    'mlruns/models/other/version-1/meta.yaml',
  ]) {
    expect(zip[p], p).toEqual(input[p]);
  }
});

test('an import can be cancelled while it writes, and then nothing is stored', async ({
  page,
}, testInfo) => {
  await openWithHook(page);
  // A store with a big artifact, so the write takes long enough to cancel.
  const big = new Uint8Array(96 * 1024 * 1024);
  for (let i = 0; i < big.length; i += 4096) big[i] = i & 0xff;
  const files = unzipSync(FIXTURE);
  files[`mlruns/${EXP}/${RUN}/artifacts/big.bin`] = big;
  const zip = zipSync(
    Object.fromEntries(
      Object.entries(files).map(([k, v]) => [k, [v, { level: 0 }] as [Uint8Array, { level: 0 }]]),
    ),
  );
  const path = testInfo.outputPath('mlruns.zip');
  writeFileSync(path, zip);
  const before = await counts(page);
  await importZip(page, path);
  const progress = page.getByTestId('import-progress');
  await expect(progress).toHaveAttribute('data-step', /writing|parsing|checking|unzipping/);
  await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();
  await expect(page.getByTestId('import-error')).toContainText('Import cancelled');
  expect(await counts(page)).toEqual(before);
});

test('a bad registry file aborts the whole import, naming the file', async ({ page }) => {
  await openWithHook(page);
  const files = unzipSync(FIXTURE);
  files['mlruns/models/My Model/aliases/champion'] = strToU8('9');
  await importZip(page, zipSync(files));
  const error = page.getByTestId('import-error');
  await expect(error).toContainText('mlruns/models/My Model/aliases/champion');
  await expect(error).toContainText('points at version 9, which does not exist');
  expect(await counts(page)).toEqual([0, 0]);
});
