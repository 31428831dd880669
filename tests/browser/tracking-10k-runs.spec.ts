import { expect, test, type Page } from '@playwright/test';
import { openWithHook, type TestHook } from './support/tracking.ts';

const RUNS = Number(process.env.TRACKING_RUNS ?? 10_000);

async function timing(page: Page): Promise<number> {
  const el = page.getByTestId('runs-timing');
  await expect(el).toHaveAttribute('data-first-rows-ms', /\d/);
  return Number(await el.getAttribute('data-first-rows-ms'));
}

test('a 10k-run experiment: the table renders only visible rows, sorts and filters through the service', async ({
  page,
}) => {
  test.setTimeout(300_000);
  await page.setViewportSize({ width: 1280, height: 860 });
  await openWithHook(page);
  const generated = await page.evaluate(async (n) => {
    const t = await (globalThis as unknown as { tabflowTest: TestHook }).tabflowTest.getTracking();
    const experimentId = await t.createExperiment('ten-thousand');
    const started = performance.now();
    const lrs = ['0.1', '0.01', '0.001', '0.0001'];
    let seed = 7;
    const rand = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
    const one = async (i: number) => {
      const run = await t.startRun({
        experimentId,
        runName: `run-${i}`,
        startTime: 1.7e12 + i * 1000,
      });
      const params = Array.from({ length: 20 }, (_, p) => ({
        key: `p${p}`,
        value: p === 0 ? lrs[i % 4]! : String(i % (p + 2)),
      }));
      params[0]!.key = 'lr';
      const metrics = Array.from({ length: 10 }, (_, m) => ({
        key: m === 0 ? 'acc' : `m${m}`,
        value: rand(),
        step: 0,
        timestamp: 1.7e12 + i * 1000,
      }));
      await t.logBatch(run.runId, { params, metrics });
    };
    for (let i = 0; i < n; i += 100) {
      await Promise.all(Array.from({ length: Math.min(100, n - i) }, (_, j) => one(i + j)));
    }
    return { experimentId, seconds: (performance.now() - started) / 1000 };
  }, RUNS);
  console.log(
    `generated ${RUNS} runs (20 params, 10 metrics each) in ${generated.seconds.toFixed(1)} s`,
  );

  await page.goto(`./?test#/experiments/${generated.experimentId}`);
  await expect(page.getByTestId('run-count')).toContainText(`${RUNS.toLocaleString()} runs`, {
    timeout: 60_000,
  });
  const firstPaint = await timing(page);
  const allRows = Number(await page.getByTestId('runs-timing').getAttribute('data-all-rows-ms'));
  const table = page.getByTestId('runs-table');
  await expect(table).toHaveAttribute('data-row-count', String(RUNS));
  const domRows = await table.locator('[role=rowgroup]:last-child [role=row]').count();
  expect(domRows).toBeLessThan(100);

  // Scroll to the end: the last run is rendered on demand.
  await table.evaluate((el) => (el.scrollTop = el.scrollHeight));
  await expect(table.getByRole('link', { name: 'run-0', exact: true })).toBeVisible();

  // Sort by a metric.
  await table
    .getByRole('columnheader', { name: /Metric acc/ })
    .getByRole('button')
    .click();
  await expect(table.getByRole('columnheader', { name: /Metric acc/ })).toHaveAttribute(
    'aria-sort',
    'descending',
  );
  await expect(page.getByTestId('runs-timing')).toHaveAttribute('data-all-rows-ms', /\d/);
  const sortMs = await timing(page);
  const accs = await page.evaluate(async (experimentId) => {
    const t = await (globalThis as unknown as { tabflowTest: TestHook }).tabflowTest.getTracking();
    const r = await t.searchRuns({
      experimentIds: [experimentId],
      orderBy: ['metrics.acc DESC'],
      maxResults: 3,
    });
    return r.runs.map((x) => x.info.runName);
  }, generated.experimentId);
  await table.evaluate((el) => (el.scrollTop = 0));
  for (const name of accs)
    await expect(table.getByRole('link', { name, exact: true })).toBeVisible();

  // Filter with the grammar.
  const box = page.getByLabel('Filter runs');
  await box.fill("metrics.acc > 0.9 and params.lr = '0.01'");
  await box.press('Enter');
  await expect(page.getByTestId('run-count')).not.toContainText(`${RUNS.toLocaleString()} runs`);
  await expect(page.getByTestId('runs-timing')).toHaveAttribute('data-all-rows-ms', /\d/);
  const filterMs = await timing(page);
  const shown = Number(await table.getAttribute('data-row-count'));
  const expected = await page.evaluate(async (experimentId) => {
    const t = await (globalThis as unknown as { tabflowTest: TestHook }).tabflowTest.getTracking();
    const r = await t.searchRuns({
      experimentIds: [experimentId],
      filter: "metrics.acc > 0.9 and params.lr = '0.01'",
      maxResults: 50_000,
    });
    return r.runs.length;
  }, generated.experimentId);
  expect(shown).toBe(expected);
  expect(shown).toBeGreaterThan(0);
  expect(shown).toBeLessThan(RUNS / 4);

  console.log(
    `10k-run table: first rows ${firstPaint} ms (all ${allRows} ms), sort by metric ${sortMs} ms, ` +
      `filter "metrics.acc > 0.9 and params.lr = '0.01'" ${filterMs} ms (${shown} runs); ${domRows} rows in the DOM`,
  );
});
