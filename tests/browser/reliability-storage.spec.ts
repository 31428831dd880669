// Storage in a real Chromium: a small quota (set through the DevTools protocol) makes a big write
// fail mid-way with the space it needs and leaves nothing behind, and the pre-check refuses it
// early with the numbers; Settings exports everything and imports it into a fresh profile with
// every object store equal; weights are deleted from Settings while the registry entry stays.
import { expect, test, type Page } from '@playwright/test';
import { readFileSync } from 'node:fs';
import { strToU8, zipSync } from 'fflate';
import { openWithHook, type TestHook } from './support/tracking.ts';
import type { ReliabilityHook } from '../../src/lib/services/reliability-hook.ts';
import type { RegistryClient } from '../../src/lib/services/registry.ts';

test.use({ serviceWorkers: 'block' });

type Hooks = { tabflowTest: TestHook & { getRegistry(): Promise<RegistryClient> } };
type R = { tabflowReliability: ReliabilityHook };

async function open(page: Page, hash = '#/experiments') {
  await openWithHook(page, hash);
  await page.waitForFunction(() => 'tabflowReliability' in globalThis);
}

function modelZip(): number[] {
  const env = '    env:\n      conda: conda.yaml\n      virtualenv: python_env.yaml\n';
  const weights = new Uint8Array(1_500_000);
  crypto.getRandomValues(weights.subarray(0, 65536));
  for (let i = 65536; i < weights.length; i++) weights[i] = weights[i % 65536]!;
  return Array.from(
    zipSync({
      MLmodel: strToU8(
        `flavors:\n  onnx:\n    data: model.onnx\n    onnx_version: 1.16.1\n  python_function:\n    data: model.onnx\n${env}    loader_module: mlflow.onnx\n    python_version: 3.11.9\n`,
      ),
      'model.onnx': [weights, { level: 0 }],
      'conda.yaml': strToU8('name: x\n'),
      'python_env.yaml': strToU8('python: 3.11.9\n'),
    }),
  );
}

async function seed(page: Page): Promise<void> {
  await page.evaluate(async (zip) => {
    const h = (globalThis as unknown as Hooks).tabflowTest;
    const t = await h.getTracking();
    const exp = await t.createExperiment('kept-experiment', { tags: { team: 'qa' } });
    for (let r = 0; r < 3; r++) {
      const run = await t.startRun({ experimentId: exp, runName: `run-${r}` });
      await t.logParams(run.runId, { lr: 0.1 * (r + 1) });
      const buf = t.metricBuffer(run.runId);
      for (let i = 0; i < 2000; i++) buf.log('loss', 1 / (i + 1), { step: i, timestamp: 1e12 + i });
      await buf.flush();
      await t.logArtifact(run.runId, 'notes.md', `# run ${r}`);
      await t.endRun(run.runId);
    }
    const reg = await h.getRegistry();
    await reg.importModelZip(new File([new Uint8Array(zip)], 'model.zip'), { name: 'onnx-small' });
  }, modelZip());
}

test('a write past a small quota rolls back and says how much space it needs', async ({ page }) => {
  await open(page);
  const origin = new URL(page.url()).origin;
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Storage.overrideQuotaForOrigin', { origin, quotaSize: 24 * 1024 * 1024 });
  const r = await page.evaluate(async () => {
    const h = (globalThis as unknown as R).tabflowReliability;
    const db = await h.getDatabase();
    const count = async () => ({
      files: await db.count('blobFiles'),
      chunks: await db.count('blobChunks'),
    });
    const before = await count();
    const size = 64 * 1024 * 1024;
    // The pre-check reads navigator.storage.estimate(), which the quota override does not
    // change: ask it for more than the whole quota it reports.
    const est = await navigator.storage.estimate();
    let early = '';
    try {
      await h.ensureSpaceFor(est.quota!, 'a file as big as the quota');
    } catch (e) {
      early = `${(e as Error).name}: ${(e as Error).message}`;
    }
    // Write it anyway, past the pre-check, to see the browser refuse it mid-way.
    let midway = '';
    let needed = 0;
    const bytes = new Uint8Array(size);
    for (let i = 0; i < size; i += 65536) crypto.getRandomValues(bytes.subarray(i, i + 65536));
    try {
      await h.writeBlob(db, 'too-big', bytes, { chunkSize: 4 * 1024 * 1024, expectedSize: size });
    } catch (e) {
      midway = `${(e as Error).name}: ${(e as Error).message}`;
      needed = (e as { neededBytes?: number }).neededBytes ?? 0;
    }
    return { before, after: await count(), early, midway, needed };
  });
  await cdp.send('Storage.overrideQuotaForOrigin', { origin });
  expect(r.early).toMatch(
    /^InsufficientStorageError: Not enough storage for a file as big as the quota: it needs about [\d.]+ GB, and the browser allows [\d.]+ GB more \([\d.]+ [KM]B used of [\d.]+ GB\)\. Nothing was written\./,
  );
  expect(r.midway).toMatch(
    /^StorageQuotaError: The browser refused to store more data \(quota exceeded\)\. About 67\.1 MB more space is needed/,
  );
  expect(r.needed).toBe(64 * 1024 * 1024);
  expect(r.after).toEqual(r.before);
});

test('Export everything, then Import everything in a fresh profile: every store is equal', async ({
  page,
  browser,
}) => {
  await open(page);
  await seed(page);
  const before = await page.evaluate(() =>
    (globalThis as unknown as R).tabflowReliability.snapshotStores(),
  );
  expect(before.runs).toHaveLength(3);
  expect(before.modelVersions).toHaveLength(1);

  await page.goto('./?test#/settings');
  const data = page.getByTestId('storage-manager');
  await expect(data.getByTestId('usage-models')).toContainText('onnx-small');
  await expect(data.getByTestId('usage-experiments')).toContainText('kept-experiment');
  await data.getByLabel('Include model weights').check();
  const download = page.waitForEvent('download');
  await data.getByRole('button', { name: 'Export everything' }).click();
  const file = await download;
  expect(file.suggestedFilename()).toMatch(/^tabflow-backup-\d{4}-\d\d-\d\d\.zip$/);
  await expect(data.getByTestId('storage-message')).toContainText('model weights included');
  const backup = readFileSync((await file.path())!);

  const other = await browser.newContext({ serviceWorkers: 'block' });
  const fresh = await other.newPage();
  await open(fresh, '#/settings');
  // Something already there is replaced.
  await fresh.evaluate(async () => {
    const t = await (globalThis as unknown as Hooks).tabflowTest.getTracking();
    await t.createExperiment('to-be-replaced');
  });
  const freshData = fresh.getByTestId('storage-manager');
  await freshData.getByTestId('backup-input').setInputFiles({
    name: 'backup.zip',
    mimeType: 'application/zip',
    buffer: backup,
  });
  await freshData.getByRole('button', { name: 'Replace with the backup' }).click();
  await expect(freshData.getByTestId('storage-message')).toContainText(
    'Imported 1 experiments, 3 runs, 1 models (1 versions)',
  );
  const after = await fresh.evaluate(() =>
    (globalThis as unknown as R).tabflowReliability.snapshotStores(),
  );
  expect(Object.keys(after).sort()).toEqual(Object.keys(before).sort());
  for (const name of Object.keys(before)) {
    expect(after[name]?.length, `${name}: record count`).toBe(before[name]!.length);
    expect(after[name], `${name}: records`).toEqual(before[name]);
  }
  await fresh.goto('./?test#/experiments');
  await expect(fresh.getByTestId('experiments-table')).toContainText('kept-experiment');
  await expect(fresh.getByTestId('experiments-table')).not.toContainText('to-be-replaced');
  await other.close();
});

test('Settings deletes a version’s weights and keeps its registry entry', async ({ page }) => {
  await open(page);
  await seed(page);
  await page.goto('./?test#/settings');
  const data = page.getByTestId('storage-manager');
  await data.getByRole('button', { name: 'Delete weights of onnx-small version 1' }).click();
  await data.getByRole('alertdialog').getByRole('button', { name: 'Delete weights' }).click();
  await expect(data.getByTestId('storage-message')).toContainText(
    'Deleted 1 weight file of onnx-small version 1 (1.50 MB). The registry entry is kept',
  );
  await expect(data.getByTestId('usage-models')).toContainText('deleted');
  await page.goto('./?test#/models/onnx-small/versions/1');
  await expect(page.locator('main')).toContainText('tabflow.weights_removed');
  await expect(page.locator('main')).toContainText('MLmodel');
});
