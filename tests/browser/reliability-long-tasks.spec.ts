// Long tasks on the main thread (PerformanceObserver 'longtask', buffered) while the app imports
// a generated 2,000-run mlruns zip, exports it, filters its runs, and charts a 100k-point metric.
// The longest task of each phase is printed; phases listed in ENFORCED fail above 100 ms.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { expect, test, type CDPSession, type Page } from '@playwright/test';
import { strToU8, zipSync, type Zippable } from 'fflate';
import { openWithHook, type TestHook } from './support/tracking.ts';

// No Playwright trace: its DOM snapshots run in the page and would be measured as the app's.
test.use({ serviceWorkers: 'block', trace: 'off' });
// A long task is wall time: on a shared two-core machine under a load of 15-20, the page's main
// thread waits for the CPU now and then, and a task of a few milliseconds is measured at over
// 100 ms in any phase (search and chart included). A task the app itself makes long shows up in
// every attempt; one the machine made long does not, so the test gets two more attempts.
test.describe.configure({ retries: process.env.LONG_TASK_PROFILE ? 0 : 2 });

const RUNS = 2000;
const LIMIT_MS = 100;
/** "2000 runs" or "2,000 runs", however the page groups digits. */
const ALL_RUNS = new RegExp(`${RUNS.toLocaleString('en-US').replace(',', ',?')}\\s+runs`);
const EXP = '734561234567890123';

/**
 * Phases the product is held to 100 ms now. The others are measured and printed (RELIABILITY.md
 * records the figures) but not failed on.
 */
const ENFORCED = new Set<string>(
  (process.env.LONG_TASK_ENFORCE ?? 'import,export,search,chart').split(',').filter(Boolean),
);

function mlrunsZip(): Uint8Array {
  const t0 = 1_720_000_000_000;
  const tree: Zippable = {};
  const put = (p: string, text: string) => (tree[`mlruns/${p}`] = strToU8(text));
  put(
    `${EXP}/meta.yaml`,
    `artifact_location: file:///tmp/mlruns/${EXP}\ncreation_time: ${t0}\nexperiment_id: '${EXP}'\nlast_update_time: ${t0}\nlifecycle_stage: active\nname: long-tasks\n`,
  );
  const lrs = ['0.1', '0.01', '0.001', '0.0001'];
  for (let i = 0; i < RUNS; i++) {
    const id = i.toString(16).padStart(32, '0');
    const dir = `${EXP}/${id}`;
    const start = t0 + i * 1000;
    put(
      `${dir}/meta.yaml`,
      `artifact_uri: file:///tmp/mlruns/${dir}/artifacts\nend_time: ${start + 500}\nentry_point_name: ''\nexperiment_id: '${EXP}'\nlifecycle_stage: active\nrun_id: ${id}\nrun_name: run-${i}\nrun_uuid: ${id}\nsource_name: ''\nsource_type: 4\nsource_version: ''\nstart_time: ${start}\nstatus: 3\ntags: []\nuser_id: bench\n`,
    );
    put(`${dir}/params/lr`, lrs[i % 4]!);
    put(`${dir}/params/batch_size`, String(16 << (i % 3)));
    put(`${dir}/tags/mlflow.runName`, `run-${i}`);
    const acc = ((i * 7919) % 1000) / 1000;
    put(`${dir}/metrics/acc`, `${start} ${acc} 0\n${start + 1} ${acc} 1\n`);
    put(`${dir}/metrics/loss`, `${start} ${1 - acc} 0\n${start + 1} ${1 - acc} 1\n`);
  }
  return zipSync(tree);
}

interface Phase {
  name: string;
  longestMs: number;
  tasks: number;
  wallMs: number;
}

async function now(page: Page): Promise<number> {
  return page.evaluate(() => performance.now());
}

/**
 * With LONG_TASK_PROFILE set to a folder, each phase also writes a main-thread CPU profile
 * (`<phase>.cpuprofile`, open it in DevTools › Performance) to find what the long tasks run.
 */
const PROFILE_DIR = process.env.LONG_TASK_PROFILE;

async function startProfile(page: Page): Promise<CDPSession | null> {
  if (!PROFILE_DIR) return null;
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Profiler.enable');
  await cdp.send('Profiler.setSamplingInterval', { interval: 200 });
  await cdp.send('Profiler.start');
  return cdp;
}

/** Also writes the phase's long tasks, in ms from the profile's start (`<phase>.longtasks.json`). */
async function stopProfile(
  cdp: CDPSession | null,
  name: string,
  t0: number,
  tasks: { start: number; duration: number }[],
): Promise<void> {
  if (!cdp || !PROFILE_DIR) return;
  const { profile } = await cdp.send('Profiler.stop');
  mkdirSync(PROFILE_DIR, { recursive: true });
  writeFileSync(join(PROFILE_DIR, `${name}.cpuprofile`), JSON.stringify(profile));
  const rel = tasks.map((t) => ({ start: t.start - t0, duration: t.duration }));
  writeFileSync(join(PROFILE_DIR, `${name}.longtasks.json`), JSON.stringify(rel));
  await cdp.detach();
}

/** Runs `fn`, then reports the long tasks that started in the phase's window. */
async function phase(page: Page, name: string, fn: () => Promise<void>): Promise<Phase> {
  const cdp = await startProfile(page);
  const t0 = await now(page);
  await fn();
  // Let trailing work (rendering after the last awaited state) report its long tasks.
  await page.waitForTimeout(300);
  const t1 = await now(page);
  const entries = await page.evaluate(
    ([a, b]) =>
      (
        globalThis as unknown as { __longTasks: { start: number; duration: number }[] }
      ).__longTasks.filter((t) => t.start + t.duration >= a! && t.start <= b!),
    [t0, t1],
  );
  await stopProfile(cdp, name, t0, entries);
  const tasks = entries.map((t) => t.duration);
  const p = { name, longestMs: Math.max(0, ...tasks), tasks: tasks.length, wallMs: t1 - t0 };
  console.log(
    `long tasks · ${p.name.padEnd(6)} longest ${p.longestMs.toFixed(0).padStart(5)} ms, ` +
      `${p.tasks} over 50 ms, phase ${(p.wallMs / 1000).toFixed(1)} s` +
      (ENFORCED.has(p.name) ? '' : ' (measured, not enforced)'),
  );
  return p;
}

test('no long task over 100 ms during import, export, search and charting of bench data', async ({
  page,
}, testInfo) => {
  test.setTimeout(600_000);
  await page.addInitScript(() => {
    const g = globalThis as unknown as { __longTasks: { start: number; duration: number }[] };
    g.__longTasks = [];
    new PerformanceObserver((list) => {
      for (const e of list.getEntries())
        g.__longTasks.push({ start: e.startTime, duration: e.duration });
    }).observe({ type: 'longtask', buffered: true });
  });
  await page.setViewportSize({ width: 1280, height: 860 });
  await openWithHook(page);
  const zipPath = testInfo.outputPath('mlruns.zip');
  mkdirSync(dirname(zipPath), { recursive: true });
  writeFileSync(zipPath, mlrunsZip());
  const phases: Phase[] = [];

  phases.push(
    await phase(page, 'import', async () => {
      await page.getByRole('button', { name: 'Import mlruns' }).first().click();
      // From a file on disk: a buffer would be decoded from base64 inside the page by
      // Playwright itself, a long task of its own that is not the app's.
      await page.getByTestId('mlruns-zip-input').setInputFiles(zipPath);
      await expect(page.getByTestId('import-result')).toContainText(
        new RegExp(`Imported 1 experiment,\\s+${ALL_RUNS.source}`),
        { timeout: 180_000 },
      );
    }),
  );
  await page.getByRole('dialog').getByRole('button', { name: 'Done' }).click();

  await page.goto('./?test#/experiments');
  await page.getByLabel('Select experiment long-tasks').check();
  phases.push(
    await phase(page, 'export', async () => {
      const download = page.waitForEvent('download', { timeout: 300_000 });
      await page.getByRole('button', { name: 'Export (1)' }).click();
      await download;
    }),
  );

  await page.goto(`./?test#/experiments/${EXP}`);
  await expect(page.getByTestId('run-count')).toContainText(ALL_RUNS, {
    timeout: 60_000,
  });
  await page.waitForTimeout(500);
  phases.push(
    await phase(page, 'search', async () => {
      await page.getByLabel('Filter runs').fill("metrics.acc > 0.5 and params.lr = '0.01'");
      await page.getByLabel('Filter runs').press('Enter');
      await expect(page.getByTestId('run-count')).not.toContainText(ALL_RUNS);
    }),
  );

  const runId = await page.evaluate(async () => {
    const t = await (globalThis as unknown as { tabflowTest: TestHook }).tabflowTest.getTracking();
    const exp = await t.createExperiment('chart-100k');
    const run = await t.startRun({ experimentId: exp, runName: 'long-curve' });
    const buf = t.metricBuffer(run.runId);
    for (let i = 0; i < 100_000; i++) {
      buf.log('loss', Math.exp(-i / 20_000) + 0.01 * Math.sin(i), { step: i, timestamp: 1e12 + i });
    }
    await buf.flush();
    await t.endRun(run.runId);
    return `${exp}/runs/${run.runId}`;
  });
  await page.goto(`./?test#/experiments/${runId}`);
  await expect(page.getByRole('tab', { name: /Metric charts/ })).toBeVisible();
  await page.waitForTimeout(500);
  phases.push(
    await phase(page, 'chart', async () => {
      await page.getByRole('tab', { name: /Metric charts/ }).click();
      // All 100k points loaded and drawn (the chart reports its count and draw time).
      const chart = page.getByTestId('line-chart').first();
      await expect(chart).toHaveAttribute('data-points', '100000', { timeout: 60_000 });
      await expect(chart).toHaveAttribute('data-draw-ms', /\d/);
      await expect(chart.locator('canvas')).toBeVisible();
    }),
  );

  const over = phases.filter((p) => ENFORCED.has(p.name) && p.longestMs > LIMIT_MS);
  expect(over.map((p) => `${p.name}: ${p.longestMs.toFixed(0)} ms`)).toEqual([]);
});
