// Prompt-evaluation projects in the Playground, on the tiny Phi-3 chat model (web layout) on
// WASM: a project over a 20-row dataset is created in the UI, run twice with different
// parameters (one run per execution, a table artifact and metrics), cancelled and resumed,
// compared side by side, and exported/imported as a zip.
import { expect, test, type Page } from '@playwright/test';
import { unzipSync } from 'fflate';
import { readFileSync } from 'node:fs';
import { buildChatModelZip } from './support/model-zips.ts';
import { registerZip } from './support/playground.ts';
import { seriousA11yViolations } from './support/axe.ts';

test.use({ serviceWorkers: 'block' });
test.setTimeout(300_000);

const CAPITALS = [
  ['France', 'Paris'],
  ['Italy', 'Rome'],
  ['Spain', 'Madrid'],
  ['Germany', 'Berlin'],
  ['Portugal', 'Lisbon'],
  ['Austria', 'Vienna'],
  ['Poland', 'Warsaw'],
  ['Greece', 'Athens'],
  ['Norway', 'Oslo'],
  ['Sweden', 'Stockholm'],
  ['Finland', 'Helsinki'],
  ['Denmark', 'Copenhagen'],
  ['Ireland', 'Dublin'],
  ['Belgium', 'Brussels'],
  ['Hungary', 'Budapest'],
  ['Czechia', 'Prague'],
  ['Romania', 'Bucharest'],
  ['Bulgaria', 'Sofia'],
  ['Croatia', 'Zagreb'],
  ['Estonia', 'Tallinn'],
];
const DATASET = CAPITALS.map(([c, a]) =>
  JSON.stringify({ prompt: `What is the capital of ${c}?`, expected: a }),
).join('\n');

async function evaluate(page: Page, params: Record<string, string>) {
  for (const [k, v] of Object.entries(params)) await page.getByTestId(`eval-param-${k}`).fill(v);
  const before = await page.getByTestId('eval-run-row').count();
  await page.getByTestId('eval-run').click();
  await expect(page.getByTestId('eval-progress')).toHaveText('20 / 20 rows', { timeout: 120_000 });
  await expect(page.getByTestId('eval-run-row')).toHaveCount(before + 1);
  await expect(page.getByTestId('eval-run-row').first()).toContainText('FINISHED');
}

test('evaluation project: 20 rows, runs with a table artifact and metrics, cancel/resume, compare, zip', async ({
  page,
}) => {
  const zip = await buildChatModelZip();
  await page.goto('./?test#/playground');
  await registerZip(page, zip.path, 'phi3-chat');
  await page.getByTestId('backend-select').selectOption('wasm');
  await page.getByTestId('load-model').click();
  await expect(page.getByTestId('backend-label')).toContainText('WASM', { timeout: 60_000 });

  await page.getByTestId('tab-eval').click();
  await page.getByRole('button', { name: 'New project' }).click();
  await page.getByTestId('project-name').fill('Capitals');
  await page.getByTestId('project-dataset').fill(DATASET);
  await page.getByTestId('project-create').click();
  await expect(page.getByTestId('project-select')).toHaveValue(/.+/);
  await expect(page.getByText('20 rows · as mlflow run would run it')).toBeVisible();

  await evaluate(page, { max_tokens: '4', temperature: '0' });
  await evaluate(page, {
    max_tokens: '6',
    temperature: '0.7',
    system_prompt: 'Answer with one word.',
  });

  // The first run, as stored: params, table artifact (MLflow's log_table JSON), metrics.
  const stored = await page.evaluate(async () => {
    const t = await (
      window as unknown as { tabflowTest: { getTracking(): Promise<any> } }
    ).tabflowTest.getTracking();
    const exp = await t.getExperimentByName('Capitals');
    const { runs } = await t.searchRuns({
      experimentIds: [exp.experimentId],
      orderBy: ['attributes.start_time ASC'],
    });
    const r = runs[0];
    return {
      count: runs.length,
      params: r.params,
      tags: r.tags,
      metrics: Object.fromEntries(
        Object.entries(r.metrics).map(([k, m]) => [k, (m as { value: number }).value]),
      ),
      table: JSON.parse(await t.readArtifactText(r.info.runId, 'eval_results_table.json')),
      inputs: r.inputs,
    };
  });
  expect(stored.count).toBe(2);
  expect(stored.params).toMatchObject({
    model_name: 'phi3-chat',
    model_version: '1',
    backend: 'wasm',
    entry_point: 'main',
    max_tokens: '4',
    temperature: '0',
    dataset: 'data.jsonl',
    rows: '20',
  });
  expect(stored.tags['mlflow.source.type']).toBe('PROJECT');
  expect(stored.tags['mlflow.project.entryPoint']).toBe('main');
  expect(JSON.parse(stored.tags['mlflow.loggedArtifacts'])).toEqual([
    { path: 'eval_results_table.json', type: 'table' },
  ]);
  expect(stored.table.columns).toEqual([
    'row',
    'prompt',
    'expected',
    'output',
    'exact_match',
    'contains_expected',
    'latency_ms',
    'ttft_ms',
    'tokens_per_second',
    'prompt_tokens',
    'completion_tokens',
    'finish_reason',
  ]);
  expect(stored.table.data).toHaveLength(20);
  expect(stored.table.data[0].slice(0, 3)).toEqual([0, 'What is the capital of France?', 'Paris']);
  expect(stored.table.data.every((r: unknown[]) => r[10] === 4)).toBe(true);
  expect(stored.metrics.rows_evaluated).toBe(20);
  for (const k of [
    'mean_latency_ms',
    'mean_tokens_per_second',
    'exact_match_rate',
    'contains_expected_rate',
  ])
    expect(typeof stored.metrics[k]).toBe('number');
  expect(stored.metrics.mean_latency_ms).toBeGreaterThan(0);
  expect(stored.inputs[0].dataset.name).toBe('data.jsonl');

  // Compare the two runs side by side.
  const rows = page.getByTestId('eval-run-row');
  await rows.nth(0).getByRole('checkbox').check();
  await rows.nth(1).getByRole('checkbox').check();
  await page.getByTestId('eval-compare-button').click();
  const compare = page.getByTestId('eval-compare');
  await expect(compare.getByTestId('compare-row')).toHaveCount(20);
  await expect(compare).toContainText('What is the capital of Estonia?');
  await expect(compare).toContainText('Answer with one word.');
  await page.setViewportSize({ width: 1440, height: 1100 });
  await compare.scrollIntoViewIfNeeded();
  await page.screenshot({ path: 'test-results/playground-eval-compare.png' });
  if (process.env.UPDATE_SCREENSHOTS)
    await page.screenshot({ path: 'docs/screenshots/playground-eval-compare.png' });

  expect(await seriousA11yViolations(page)).toEqual([]);

  // Cancel a long evaluation part-way, then resume it to the end in the same run.
  await page.getByTestId('eval-param-max_tokens').fill('20');
  await page.getByTestId('eval-run').click();
  await expect(page.getByTestId('eval-progress')).toHaveText(/^[2-9] \/ 20 rows$/, {
    timeout: 60_000,
  });
  await page.getByTestId('eval-cancel').click();
  await expect(page.getByTestId('eval-run')).toBeVisible();
  await expect(rows).toHaveCount(3);
  await expect(rows.first()).toContainText('KILLED');
  await rows.first().getByRole('button', { name: 'Resume' }).click();
  await expect(page.getByTestId('eval-progress')).toHaveText('20 / 20 rows', { timeout: 120_000 });
  await expect(rows).toHaveCount(3);
  await expect(rows.first()).toContainText('FINISHED');

  // Export as a zip and import it back as a second project.
  const download = page.waitForEvent('download');
  await page.getByTestId('project-export').click();
  const file = await (await download).path();
  const entries = unzipSync(new Uint8Array(readFileSync(file)));
  expect(Object.keys(entries).sort()).toEqual([
    'Capitals/MLproject',
    'Capitals/data.jsonl',
    'Capitals/evaluate.py',
    'Capitals/python_env.yaml',
  ]);
  expect(new TextDecoder().decode(entries['Capitals/MLproject'])).toContain(
    'entry_points:\n  main:\n    parameters:\n      dataset:\n        type: path\n        default: data.jsonl',
  );
  await page.getByTestId('project-import').setInputFiles(file);
  await expect(page.getByTestId('project-select').locator('option')).toHaveCount(2);
});
