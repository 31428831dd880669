import { expect, test, type Page } from '@playwright/test';
import { mkdirSync } from 'node:fs';
import { seriousA11yViolations } from './support/axe.ts';
import { logRuns, openWithHook, type TestHook } from './support/tracking.ts';

const shots = !!process.env.UPDATE_SCREENSHOTS;
async function shot(page: Page, name: string): Promise<void> {
  if (!shots) return;
  mkdirSync('docs/screenshots', { recursive: true });
  await page.screenshot({ path: `docs/screenshots/tracking-${name}.png` });
}

/** Ids of the runs the table shows, top to bottom. */
async function tableRunNames(page: Page): Promise<string[]> {
  return page
    .getByTestId('runs-table')
    .locator('[role=rowgroup]:last-child [role=row]')
    .evaluateAll((rows) =>
      rows
        .sort(
          (a, b) =>
            Number(a.getAttribute('aria-rowindex')) - Number(b.getAttribute('aria-rowindex')),
        )
        .map((r) => r.querySelector('.name a')?.textContent?.trim() ?? ''),
    );
}

test('create an experiment, log runs over steps, filter, sort, open a run, chart it, compare two runs', async ({
  page,
}) => {
  await page.setViewportSize({ width: 1280, height: 860 });
  await openWithHook(page);
  await expect(page.getByTestId('empty-state')).toContainText('No experiments yet');

  // Create through the dialog.
  await page.getByRole('button', { name: 'Create experiment' }).first().click();
  const dialog = page.getByRole('dialog', { name: 'Create experiment' });
  await dialog.getByLabel('Name', { exact: true }).fill('lr-sweep');
  await dialog.getByRole('button', { name: 'Create' }).click();
  await expect(dialog).toBeHidden();
  await expect(page.getByTestId('experiments-table')).toContainText('lr-sweep');
  // A second experiment with the same name is refused with MLflow's message.
  await page.getByRole('button', { name: 'Create experiment' }).first().click();
  await dialog.getByLabel('Name', { exact: true }).fill('lr-sweep');
  await dialog.getByRole('button', { name: 'Create' }).click();
  await expect(dialog.getByRole('alert')).toContainText("Experiment 'lr-sweep' already exists.");
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  expect(await seriousA11yViolations(page), 'experiments page').toEqual([]);
  await shot(page, 'experiments');

  await page.getByRole('link', { name: 'lr-sweep' }).click();
  await expect(page.locator('main')).toHaveAttribute('data-page', 'experiment');
  const experimentId = decodeURIComponent(page.url().split('#/experiments/')[1]!);
  await expect(page.getByTestId('empty-state')).toContainText('No runs in this experiment yet');

  // Log runs the way user code would; the open table follows the store.
  const ids = await logRuns(page, experimentId, [
    {
      name: 'lr-0.1',
      params: { lr: '0.1', optimizer: 'sgd' },
      metrics: { acc: [0.3, 0.5, 0.62], loss: [2, 1.4, 1.1] },
    },
    {
      name: 'lr-0.01',
      params: { lr: '0.01', optimizer: 'sgd' },
      metrics: { acc: [0.4, 0.8, 0.93], loss: [1.8, 0.6, 0.3] },
    },
    {
      name: 'lr-0.001',
      params: { lr: '0.001', optimizer: 'adam' },
      metrics: { acc: [0.2, 0.4, 0.55], loss: [2.2, 1.9, 1.6] },
    },
    {
      name: 'fold-1',
      parent: 1,
      params: { lr: '0.01', fold: '1' },
      metrics: { acc: [0.91, 0.95] },
    },
  ]);
  await expect(page.getByTestId('run-count')).toContainText('4 runs');
  // Newest first; the nested run is folded under its parent.
  expect(await tableRunNames(page)).toEqual(['lr-0.001', 'lr-0.01', 'lr-0.1']);
  await page.getByRole('button', { name: 'Expand 1 child runs of lr-0.01' }).click();
  expect(await tableRunNames(page)).toEqual(['lr-0.001', 'lr-0.01', 'fold-1', 'lr-0.1']);
  expect(await seriousA11yViolations(page), 'experiment page').toEqual([]);
  await shot(page, 'runs-table');

  // Sort by a metric through the service's order_by: descending first, then ascending.
  await page
    .getByRole('columnheader', { name: /Metric acc/ })
    .getByRole('button')
    .click();
  await expect(page.getByRole('columnheader', { name: /Metric acc/ })).toHaveAttribute(
    'aria-sort',
    'descending',
  );
  await expect.poll(() => tableRunNames(page)).toEqual(['lr-0.01', 'fold-1', 'lr-0.1', 'lr-0.001']);
  await page
    .getByRole('columnheader', { name: /Metric acc/ })
    .getByRole('button')
    .click();
  await expect.poll(() => tableRunNames(page)).toEqual(['lr-0.001', 'lr-0.1', 'lr-0.01', 'fold-1']);

  // MLflow's filter grammar.
  const filterBox = page.getByLabel('Filter runs');
  await filterBox.fill("metrics.acc > 0.9 and params.lr = '0.01'");
  await filterBox.press('Enter');
  await expect(page.getByTestId('run-count')).toContainText('2 runs');
  await filterBox.fill("params.optimizer = 'adam' and attributes.run_name LIKE 'lr-%'");
  await filterBox.press('Enter');
  await expect.poll(() => tableRunNames(page)).toEqual(['lr-0.001']);
  // A malformed filter says what is wrong and points at the token.
  await filterBox.fill('metrics.acc > 0.9 or params.lr = 1');
  await filterBox.press('Enter');
  const err = page.getByTestId('filter-error');
  await expect(err).toContainText("'OR'");
  await expect(err.locator('pre')).toHaveText(
    'metrics.acc > 0.9 or params.lr = 1\n' + ' '.repeat(18) + '^~',
  );
  await shot(page, 'filter-error');
  await page.getByRole('button', { name: 'Clear' }).click();
  await expect(page.getByTestId('run-count')).toContainText('4 runs');

  // Column chooser: hide the loss column.
  await page.getByText(/^Columns \(/).click();
  await expect(page.getByRole('columnheader', { name: /Metric loss/ })).toBeVisible();
  await page.getByRole('group', { name: 'Choose columns' }).getByLabel('loss').uncheck();
  await expect(page.getByRole('columnheader', { name: /Metric loss/ })).toHaveCount(0);
  await page.getByText(/^Columns \(/).click();

  // Open a run and see its chart.
  await page.getByRole('link', { name: 'lr-0.01', exact: true }).click();
  await expect(page.locator('main')).toHaveAttribute('data-page', 'run');
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('lr-0.01');
  await expect(page.getByTestId('params-table')).toContainText('optimizer');
  await expect(page.getByTestId('metrics-table')).toContainText('0.93');
  await expect(page.getByText('fold-1')).toBeVisible();
  expect(await seriousA11yViolations(page), 'run page').toEqual([]);
  await shot(page, 'run-overview');
  await page.getByRole('tab', { name: /Metric charts/ }).click();
  const chart = page.getByTestId('line-chart').filter({ hasText: 'acc' });
  await expect(chart).toHaveAttribute('data-points', '3');
  await expect(chart).toHaveAttribute('data-draw-ms', /\d/);
  await expect(chart.locator('canvas')).toBeVisible();
  await page.getByLabel('X axis').selectOption('relative');
  await page.getByLabel('Log scale (y)').check();
  await expect(chart.locator('canvas')).toBeVisible();
  const csv = page.waitForEvent('download');
  await chart.getByRole('button', { name: 'Download acc as CSV' }).click();
  const csvText = await (await csv).createReadStream().then(async (s) => {
    let out = '';
    for await (const c of s) out += c;
    return out;
  });
  expect(csvText.split('\r\n').slice(0, 2)).toEqual([
    'series,relative time (s),acc',
    'lr-0.01,0,0.4',
  ]);
  const png = page.waitForEvent('download');
  await chart.getByRole('button', { name: 'Download acc as PNG' }).click();
  expect((await png).suggestedFilename()).toBe('acc.png');
  expect(await seriousA11yViolations(page), 'run charts').toEqual([]);
  await shot(page, 'run-charts');

  // Tags edit from the run page.
  await page.getByRole('tab', { name: 'Overview' }).click();
  await page.getByLabel('New run tag key').fill('team');
  await page.getByLabel('New run tag value').fill('vision');
  await page.getByRole('button', { name: 'Add tag' }).click();
  await expect(page.getByTestId('tag-editor')).toContainText('vision');
  await page.getByRole('button', { name: 'Delete tag team' }).click();
  await expect(page.getByTestId('tag-editor')).not.toContainText('vision');

  // Select two runs and compare.
  await page.goBack();
  await expect(page.locator('main')).toHaveAttribute('data-page', 'experiment');
  await page.getByLabel('Select run lr-0.1', { exact: true }).check();
  await page.getByLabel('Select run lr-0.01', { exact: true }).check();
  await page.getByRole('button', { name: 'Compare (2)' }).click();
  await expect(page.locator('main')).toHaveAttribute('data-page', 'compare');
  expect(page.url()).toContain(`compare-runs?runs=`);
  const table = page.getByTestId('compare-table');
  await expect(table.locator('tr[data-key=lr]')).toHaveClass(/diff/);
  await expect(table.locator('tr[data-key=optimizer]')).not.toHaveClass(/diff/);
  await page.getByLabel('Show only differences').check();
  await expect(table.locator('tr[data-key=optimizer]')).toHaveCount(0);
  const overlay = page.getByTestId('line-chart').filter({ hasText: 'acc' });
  await expect(overlay).toHaveAttribute('data-points', '6');
  await expect(page.getByTestId('scatter-chart')).toHaveAttribute('data-points', '2');
  await expect(page.getByTestId('parallel-coordinates').locator('svg path')).toHaveCount(2);
  expect(await seriousA11yViolations(page), 'compare page').toEqual([]);
  await shot(page, 'compare');
  void ids;
});

test('run names, tags, notes and artifacts from untrusted sources render inert', async ({
  page,
}) => {
  await openWithHook(page);
  const payload = `<img src=x onerror="globalThis.pwned='img'"><script>globalThis.pwned='script'</script>`;
  const { experimentId, runId } = await page.evaluate(async (payload) => {
    const t = await (globalThis as unknown as { tabflowTest: TestHook }).tabflowTest.getTracking();
    const experimentId = await t.createExperiment(`exp ${payload}`);
    const run = await t.startRun({
      experimentId,
      runName: `run ${payload}`,
      tags: {
        evil: payload,
        'mlflow.note.content': `# Note\n\n${payload}\n\n[link](javascript:globalThis.pwned='link')`,
      },
    });
    await t.logParam(run.runId, 'p', payload);
    await t.logText(run.runId, `# Readme\n${payload}`, 'README.md');
    await t.logText(run.runId, `a,b\n"${payload.replace(/"/g, '""')}",1\n`, 'table.csv');
    await t.logText(
      run.runId,
      `<svg xmlns="http://www.w3.org/2000/svg" onload="globalThis.pwned='svg'"><script>globalThis.pwned='svg2'</script></svg>`,
      'pic.svg',
    );
    return { experimentId, runId: run.runId };
  }, payload);

  const noInjectedImg = () =>
    page.evaluate(
      () =>
        [...document.querySelectorAll('img')].filter((i) => i.getAttribute('onerror') !== null)
          .length,
    );

  await page.goto(`./?test#/experiments`);
  await expect(page.getByTestId('experiments-table')).toContainText(`exp ${payload}`);
  await page.goto(`./?test#/experiments/${experimentId}`);
  await expect(page.getByTestId('runs-table')).toContainText(`run ${payload}`);
  await page.goto(`./?test#/experiments/${experimentId}/runs/${runId}`);
  await expect(page.locator('main h1')).toHaveText(`run ${payload}`);
  await expect(page.getByTestId('markdown')).toContainText('Note');
  await expect(page.getByTestId('params-table')).toContainText(payload);
  await expect(page.getByTestId('tag-editor')).toContainText(payload);
  const href = await page.getByTestId('markdown').getByText('link').getAttribute('href');
  expect(href ?? '').not.toContain('javascript:');
  await page
    .getByTestId('markdown')
    .getByText('link')
    .click({ noWaitAfter: true })
    .catch(() => undefined);
  await page.getByRole('tab', { name: 'Artifacts' }).click();
  await expect(page.getByTestId('artifact-viewer')).toHaveAttribute('data-kind', 'markdown');
  await page.getByRole('button', { name: 'table.csv' }).click();
  await expect(page.getByTestId('artifact-viewer').locator('td').first()).toHaveText(payload);
  await page.getByRole('button', { name: 'pic.svg' }).click();
  await expect(page.getByTestId('artifact-viewer')).toHaveAttribute('data-kind', 'image');
  await page.goto(`./?test#/compare-runs?runs=${runId},${runId}`);
  await expect(page.getByTestId('compare-table')).toContainText(payload);
  await page.waitForTimeout(300);
  expect(await noInjectedImg()).toBe(0);
  expect(await page.evaluate(() => (globalThis as { pwned?: string }).pwned)).toBeUndefined();
});

test('a metric with 100k points charts without freezing the page', async ({ page }) => {
  await openWithHook(page);
  const { experimentId, runId } = await page.evaluate(async () => {
    const t = await (globalThis as unknown as { tabflowTest: TestHook }).tabflowTest.getTracking();
    const experimentId = await t.createExperiment('long-run');
    const run = await t.startRun({ experimentId, runName: 'long' });
    const points = [];
    for (let i = 0; i < 100_000; i++) {
      points.push({
        key: 'loss',
        value: 1 / (1 + i / 1000) + Math.sin(i / 50) * 0.01,
        step: i,
        timestamp: 1.7e12 + i * 100,
      });
    }
    await t.logMetrics(run.runId, points);
    return { experimentId, runId: run.runId };
  });
  await page.goto(`./?test#/experiments/${experimentId}/runs/${runId}`);
  await page.getByRole('tab', { name: /Metric charts/ }).click();
  // Long tasks on the main thread while the chart loads and draws.
  await page.evaluate(() => {
    (globalThis as { longest?: number }).longest = 0;
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        const g = globalThis as { longest?: number };
        g.longest = Math.max(g.longest ?? 0, e.duration);
      }
    }).observe({ type: 'longtask', buffered: false });
  });
  const chart = page.getByTestId('line-chart');
  await expect(chart).toHaveAttribute('data-points', '100000', { timeout: 60_000 });
  await expect(chart).toHaveAttribute('data-draw-ms', /\d/);
  const drawMs = Number(await chart.getAttribute('data-draw-ms'));
  const drawn = Number(await chart.getAttribute('data-drawn-points'));
  // Smoothing re-draws from the full series.
  await page.getByRole('slider', { name: /Smoothing/ }).fill('0.9');
  await expect(chart).toHaveAttribute('data-draw-ms', /\d/);
  const longest = await page.evaluate(() => (globalThis as { longest?: number }).longest ?? 0);
  console.log(
    `100k-point metric chart: drew ${drawn} display points in ${drawMs} ms; longest main-thread task ${Math.round(longest)} ms`,
  );
  expect(drawn).toBeLessThan(10_000);
  // "Without freezing": no single task blocks input for a second.
  expect(longest).toBeLessThan(1000);
});
