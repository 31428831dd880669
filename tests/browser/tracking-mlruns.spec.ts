import { expect, test, type Page } from '@playwright/test';
import { zipSync, strToU8 } from 'fflate';
import { readFileSync } from 'node:fs';
import { openWithHook, type TestHook } from './support/tracking.ts';

const EXP = '412345678901234567';
const PARENT = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
const CHILD = '0f1e2d3c4b5a69788796a5b4c3d2e1f0';

function runMeta(runId: string, name: string, start: number): string {
  return [
    `artifact_uri: file:///home/u/mlruns/${EXP}/${runId}/artifacts`,
    'deleted_time: null',
    `end_time: ${start + 5000}`,
    "entry_point_name: ''",
    `experiment_id: '${EXP}'`,
    'lifecycle_stage: active',
    `run_id: ${runId}`,
    `run_name: ${name}`,
    `run_uuid: ${runId}`,
    "source_name: ''",
    'source_type: 4',
    "source_version: ''",
    `start_time: ${start}`,
    'status: 3',
    'tags: []',
    'user_id: ada',
    '',
  ].join('\n');
}

/** A small store as Python MLflow's file store lays it out: a parent run, a nested run, artifacts. */
function mlrunsZip(badMetricLine = false): Uint8Array {
  const t0 = 1721450907221;
  const files: Record<string, Uint8Array> = {
    'mlruns/0/meta.yaml': strToU8(
      "artifact_location: file:///home/u/mlruns/0\ncreation_time: 1721450900000\nexperiment_id: '0'\nlast_update_time: 1721450900000\nlifecycle_stage: active\nname: Default\n",
    ),
    [`mlruns/${EXP}/meta.yaml`]: strToU8(
      `artifact_location: file:///home/u/mlruns/${EXP}\ncreation_time: ${t0}\nexperiment_id: '${EXP}'\nlast_update_time: ${t0}\nlifecycle_stage: active\nname: imported-sweep\n`,
    ),
    [`mlruns/${EXP}/tags/team`]: strToU8('vision'),
    [`mlruns/${EXP}/${PARENT}/meta.yaml`]: strToU8(runMeta(PARENT, 'parent-run', t0)),
    [`mlruns/${EXP}/${PARENT}/params/lr`]: strToU8('0.01'),
    [`mlruns/${EXP}/${PARENT}/metrics/acc`]: strToU8(
      `${t0 + 1000} 0.5 0\n${t0 + 2000} 0.75 1\n${badMetricLine ? 'not-a-number 0.9 2' : `${t0 + 3000} 0.9 2`}\n`,
    ),
    [`mlruns/${EXP}/${PARENT}/tags/mlflow.runName`]: strToU8('parent-run'),
    [`mlruns/${EXP}/${PARENT}/tags/mlflow.user`]: strToU8('ada'),
    [`mlruns/${EXP}/${PARENT}/tags/mlflow.note.content`]: strToU8('Imported **from Python**'),
    [`mlruns/${EXP}/${PARENT}/artifacts/summary.json`]: strToU8('{"best": 0.9}'),
    [`mlruns/${EXP}/${CHILD}/meta.yaml`]: strToU8(runMeta(CHILD, 'child-run', t0 + 100)),
    [`mlruns/${EXP}/${CHILD}/params/fold`]: strToU8('1'),
    [`mlruns/${EXP}/${CHILD}/metrics/acc`]: strToU8(`${t0 + 1500} 0.8 0\n`),
    [`mlruns/${EXP}/${CHILD}/tags/mlflow.runName`]: strToU8('child-run'),
    [`mlruns/${EXP}/${CHILD}/tags/mlflow.parentRunId`]: strToU8(PARENT),
  };
  return zipSync(files);
}

/** Everything the store holds about an experiment's runs, in a comparable form. */
async function snapshot(page: Page, experimentId: string): Promise<unknown> {
  return page.evaluate(async (experimentId) => {
    const t = await (globalThis as unknown as { tabflowTest: TestHook }).tabflowTest.getTracking();
    const exp = await t.getExperiment(experimentId);
    const { runs } = await t.searchRuns({
      experimentIds: [experimentId],
      orderBy: ['attributes.run_name ASC'],
    });
    const out = [];
    for (const r of runs) {
      const history: Record<string, unknown> = {};
      for (const k of Object.keys(r.metrics))
        history[k] = await t.getMetricHistory(r.info.runId, k);
      const artifacts = await t.listArtifacts(r.info.runId);
      const files: Record<string, string> = {};
      for (const a of artifacts)
        if (!a.isDir) files[a.path] = await t.readArtifactText(r.info.runId, a.path);
      out.push({
        info: { ...r.info, artifactUri: undefined },
        params: r.params,
        tags: r.tags,
        history,
        files,
      });
    }
    return { name: exp.name, tags: exp.tags, runs: out };
  }, experimentId);
}

async function importZip(page: Page, zip: Uint8Array): Promise<void> {
  await page.getByRole('button', { name: 'Import mlruns' }).first().click();
  await expect(page.getByRole('dialog', { name: 'Import an mlruns store' })).toBeVisible();
  await page.getByTestId('mlruns-zip-input').setInputFiles({
    name: 'mlruns.zip',
    mimeType: 'application/zip',
    buffer: Buffer.from(zip),
  });
}

test('a bad file aborts the import with its name and line, and stores nothing', async ({
  page,
}) => {
  await openWithHook(page);
  await importZip(page, mlrunsZip(true));
  const error = page.getByTestId('import-error');
  await expect(error).toContainText('Nothing was imported.');
  await expect(error).toContainText(`mlruns/${EXP}/${PARENT}/metrics/acc`);
  await expect(error).toContainText('line 3');
  await page.getByRole('dialog').getByRole('button', { name: 'Close' }).click();
  await expect(page.getByTestId('empty-state')).toContainText('No experiments yet');
  const count = await page.evaluate(async () => {
    const t = await (globalThis as unknown as { tabflowTest: TestHook }).tabflowTest.getTracking();
    return (await t.listExperiments({ viewType: 'ALL' })).length;
  });
  expect(count).toBe(0);
});

test('import an mlruns zip, see its runs, export it and re-import the same data', async ({
  page,
  browser,
}) => {
  await page.setViewportSize({ width: 1280, height: 800 });
  await openWithHook(page);
  await importZip(page, mlrunsZip());
  await expect(page.getByTestId('import-result')).toContainText(
    'Imported 2 experiments, 2 runs, 4 metric points',
  );
  await page.getByRole('dialog').getByRole('button', { name: 'Done' }).click();
  await expect(page.getByTestId('experiments-table')).toContainText('imported-sweep');

  await page.getByRole('link', { name: 'imported-sweep' }).click();
  await expect(page.getByTestId('run-count')).toContainText('2 runs');
  await page.getByRole('button', { name: 'Expand 1 child runs of parent-run' }).click();
  await expect(page.getByTestId('runs-table')).toContainText('child-run');
  await page.getByRole('link', { name: 'parent-run' }).click();
  await expect(page.getByTestId('markdown')).toContainText('Imported from Python');
  await expect(page.getByTestId('metrics-table')).toContainText('0.9');
  await page.getByRole('tab', { name: 'Artifacts' }).click();
  await expect(page.getByTestId('artifact-viewer')).toContainText('"best": 0.9');
  const before = await snapshot(page, EXP);

  // Export the experiment as an mlruns zip.
  await page.goto('./?test#/experiments');
  await page.getByLabel('Select experiment imported-sweep').check();
  const download = page.waitForEvent('download');
  await page.getByRole('button', { name: 'Export (1)' }).click();
  const file = await download;
  expect(file.suggestedFilename()).toBe('mlruns.zip');
  const exported = readFileSync((await file.path())!);

  // A fresh browser profile imports the exported zip and holds the same data.
  const other = await browser.newContext();
  const fresh = await other.newPage();
  await openWithHook(fresh);
  await importZip(fresh, new Uint8Array(exported));
  await expect(fresh.getByTestId('import-result')).toContainText(
    'Imported 1 experiment, 2 runs, 4 metric points',
  );
  expect(await snapshot(fresh, EXP)).toEqual(before);
  await other.close();
});
