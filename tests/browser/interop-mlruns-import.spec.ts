// A tracking store written by real MLflow 3.x and by MLflow 2.x (scripts/interop/write_store.py
// under each venv), zipped and
// imported through the Import mlruns dialog: every experiment and run page shows what
// MlflowClient reports for the same store (dump_store.py): run names and counts, params, latest
// metric values, tags with and without the system ones, a full metric history through the
// chart's CSV download, and the signature of the registered model version (a logged model's in
// 3.x, the run's model folder in 2.x). Each version is skipped when its venv is missing (npm run
// test:interop creates them).
import { expect, test, type Page } from '@playwright/test';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { zipSync } from 'fflate';
import { parse as parseYaml } from 'yaml';
import { formatNumber } from '../../src/ui/components/tracking/format.ts';
import { openWithHook } from './support/tracking.ts';
import { removeTempDirs, tempDir } from '../interop/support/python.ts';

const venvPython = (dir: string): string =>
  resolve(dir, process.platform === 'win32' ? 'Scripts/python.exe' : 'bin/python');
const FLAVOURS = [
  {
    label: 'MLflow 3.x',
    venv: '.venv',
    python: process.env.TABFLOW_PY_MLFLOW3 || venvPython('.venv'),
  },
  {
    label: 'MLflow 2.x',
    venv: '.venv-mlflow2',
    python: process.env.TABFLOW_PY_MLFLOW2 || venvPython('.venv-mlflow2'),
  },
];
const scripts = resolve('scripts', 'interop');

interface DumpRun {
  run_id: string;
  experiment_id: string;
  run_name: string;
  lifecycle_stage: string;
  params: Record<string, string>;
  tags: Record<string, string>;
  metrics: Record<string, number | string>;
  metric_history: Record<
    string,
    Array<{ step: number; timestamp: number; value: number | string }>
  >;
}
interface Dump {
  experiments: Array<{ experiment_id: string; name: string; lifecycle_stage: string }>;
  runs: DumpRun[];
  registered_models: Array<{
    name: string;
    versions: Array<{ version: string; source: string; model_id: string | null }>;
  }>;
}

test.describe.configure({ timeout: 120_000 });

function py(python: string, args: string[], cwd: string): string {
  const r = spawnSync(python, args, {
    cwd,
    env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' },
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) throw new Error(`${args.join(' ')} exited with ${r.status}:\n${r.stderr}`);
  return r.stdout;
}

test.afterAll(() => removeTempDirs());

/** The store folder as a zip whose entries start with `mlruns/`. */
function zipStore(root: string): Uint8Array {
  const files: Record<string, Uint8Array> = {};
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else files[['mlruns', ...relative(root, p).split(sep)].join('/')] = readFileSync(p);
    }
  };
  walk(root);
  return zipSync(files);
}

/** The text of each body row of a table, cell by cell. */
function rows(page: Page, selector: string): Promise<string[][]> {
  return page
    .locator(`${selector} tbody tr`)
    .evaluateAll((trs) =>
      trs.map((tr) => Array.from(tr.querySelectorAll('td'), (td) => td.textContent?.trim() ?? '')),
    );
}

/** A dumped metric value (JSON spells NaN and infinities as strings) as a number. */
function num(v: number | string): number {
  if (typeof v === 'number') return v;
  return v === 'Infinity' ? Infinity : v === '-Infinity' ? -Infinity : NaN;
}

function csvNumber(s: string): number {
  return s === 'Infinity' ? Infinity : s === '-Infinity' ? -Infinity : Number(s);
}

interface ColSpecType {
  type: string;
  items?: ColSpecType;
}

/** How MLflow's own schema types print a column type: `string`, `Array(string)`. */
function mlflowTypeName(t: ColSpecType): string {
  return t.type === 'array' && t.items ? `Array(${mlflowTypeName(t.items)})` : t.type;
}

async function expandAll(page: Page): Promise<void> {
  const table = page.getByTestId('runs-table');
  for (let i = 0; i < 20; i++) {
    const expand = table.getByRole('button', { name: /^Expand \d+ child runs of / });
    if ((await expand.count()) === 0) return;
    await expand.first().click();
  }
}

for (const { label, venv, python } of FLAVOURS) {
  test.describe(label, () => {
    const available = existsSync(python);
    let store = '';
    let dump: Dump;

    test.beforeAll(() => {
      test.skip(!available, `no ${venv} venv: run npm run test:interop once to create it`);
      test.setTimeout(120_000);
      const dir = tempDir(`browser-mlruns-${venv.replace(/\W/g, '')}`);
      store = join(dir, 'mlruns');
      const uri = `file://${store}`;
      py(python, [join(scripts, 'write_store.py'), uri, join(dir, 'artifacts')], dir);
      const out = py(python, [join(scripts, 'dump_store.py'), 'dump', uri], dir);
      dump = JSON.parse(out.slice(out.search(/^\{/m))) as Dump;
    });

    test(`a store written by ${label} shows the same runs, params, metrics, tags and signature`, async ({
      page,
    }) => {
      await page.setViewportSize({ width: 1280, height: 900 });
      await openWithHook(page);
      await page.getByRole('button', { name: 'Import mlruns' }).first().click();
      await expect(page.getByRole('dialog', { name: 'Import an mlruns store' })).toBeVisible();
      await page.getByTestId('mlruns-zip-input').setInputFiles({
        name: 'mlruns.zip',
        mimeType: 'application/zip',
        buffer: Buffer.from(zipStore(store)),
      });
      await expect(page.getByTestId('import-result')).toContainText('Imported', {
        timeout: 30_000,
      });
      await page.getByRole('dialog').getByRole('button', { name: 'Done' }).click();

      const experiments = dump.experiments.filter((e) => e.lifecycle_stage === 'active');
      for (const exp of experiments) {
        await expect(page.getByTestId('experiments-table')).toContainText(exp.name);
      }
      for (const exp of experiments) {
        const runs = dump.runs.filter((r) => r.experiment_id === exp.experiment_id);
        const active = runs.filter((r) => r.lifecycle_stage === 'active');
        const deleted = runs.filter((r) => r.lifecycle_stage === 'deleted');
        await page.goto(`./?test#/experiments/${exp.experiment_id}`);
        await expect(page.getByTestId('run-count')).toContainText(
          `${active.length} run${active.length === 1 ? '' : 's'}`,
        );
        if (active.length > 0) {
          await expandAll(page);
          const names = await page
            .getByTestId('runs-table')
            .getByRole('link')
            .evaluateAll((as) => as.map((a) => a.textContent?.trim() ?? ''));
          for (const r of active)
            expect(names, `${exp.name} lists ${r.run_name}`).toContain(r.run_name);
          for (const r of deleted) expect(names).not.toContain(r.run_name);
        }
        if (deleted.length > 0) {
          await page.getByLabel('Which runs').selectOption('DELETED_ONLY');
          await expect(page.getByTestId('run-count')).toContainText(
            `${deleted.length} run${deleted.length === 1 ? '' : 's'}`,
          );
          for (const r of deleted)
            await expect(page.getByTestId('runs-table')).toContainText(r.run_name);
          await page.getByLabel('Which runs').selectOption('ACTIVE_ONLY');
        }

        for (const run of runs) {
          await page.goto(`./?test#/experiments/${exp.experiment_id}/runs/${run.run_id}`);
          await expect(page.getByRole('heading', { level: 1 })).toContainText(run.run_name);

          const params = Object.entries(run.params).sort(([a], [b]) => a.localeCompare(b));
          if (params.length === 0) await expect(page.getByText('No parameters.')).toBeVisible();
          else {
            const shown = await rows(page, '[data-testid="params-table"]');
            expect(
              shown.sort(([a], [b]) => a!.localeCompare(b!)),
              `${run.run_name} params`,
            ).toEqual(params);
          }

          const metrics = Object.entries(run.metrics).map(([k, v]) => [k, formatNumber(num(v))]);
          metrics.sort(([a], [b]) => a!.localeCompare(b!));
          if (metrics.length === 0) await expect(page.getByText('No metrics.')).toBeVisible();
          else {
            const shown = (await rows(page, '[data-testid="metrics-table"]')).map((r) =>
              r.slice(0, 2),
            );
            expect(
              shown.sort(([a], [b]) => a!.localeCompare(b!)),
              `${run.run_name} metrics`,
            ).toEqual(metrics);
          }

          const tagTable = '[data-testid="tag-editor"]';
          const byKey = (a: string[], b: string[]): number => a[0]!.localeCompare(b[0]!);
          const all = Object.entries(run.tags).sort(byKey);
          const user = all.filter(([k]) => !k.startsWith('mlflow.'));
          if (user.length > 0) {
            const shown = (await rows(page, tagTable)).map((r) => r.slice(0, 2)).sort(byKey);
            expect(shown, `${run.run_name} tags`).toEqual(user);
          }
          if (all.length > user.length) {
            await page.getByTestId('tag-editor').getByRole('checkbox').check();
            const shown = (await rows(page, tagTable)).map((r) => r.slice(0, 2)).sort(byKey);
            expect(shown, `${run.run_name} tags with system tags`).toEqual(all);
          }
        }
      }

      // Full histories through the chart's CSV download, for runs whose loss has several points
      // (the parent logs step 2 twice).
      const withHistory = dump.runs.filter((r) => (r.metric_history['loss']?.length ?? 0) > 1);
      expect(withHistory.length).toBeGreaterThan(0);
      for (const run of withHistory) {
        await page.goto(`./?test#/experiments/${run.experiment_id}/runs/${run.run_id}`);
        await page.getByRole('tab', { name: /^Metric charts/ }).click();
        const download = page.waitForEvent('download');
        await page.getByRole('button', { name: 'Download loss as CSV' }).click();
        const csv = readFileSync((await (await download).path())!, 'utf8');
        const points = csv
          .trim()
          .split(/\r\n/)
          .slice(1)
          .map((line) => line.split(','))
          .map((c) => [Number(c[c.length - 2]), csvNumber(c[c.length - 1]!)] as [number, number]);
        const order = (a: [number, number], b: [number, number]): number =>
          a[0] - b[0] || a[1] - b[1];
        const expected = run.metric_history['loss']!.map(
          (p) => [p.step, num(p.value)] as [number, number],
        );
        expect(points.sort(order), `${run.run_name} loss history`).toEqual(expected.sort(order));
      }

      // The registered model version shows its MLmodel's signature: 3.x registers the logged model
      // (models/<model id>/artifacts), 2.x the model folder among the run's artifacts (runs:/<id>/path).
      const model = dump.registered_models.find((m) => m.versions.length > 0);
      expect(model, 'the store has a registered model with versions').toBeDefined();
      const version = model!.versions.find((v) => v.model_id) ?? model!.versions[0]!;
      const exp = dump.runs.find((r) => r.run_name === 'parent')!.experiment_id;
      // 2.x stores a version's source as the model folder's file: URI (or runs:/<id>/<path>).
      const fromRun = /^runs:\/([^/]+)\/(.+)$/.exec(version.source);
      const mlmodelPath = version.model_id
        ? join(store, exp, 'models', version.model_id, 'artifacts', 'MLmodel')
        : fromRun
          ? join(store, exp, fromRun[1]!, 'artifacts', ...fromRun[2]!.split('/'), 'MLmodel')
          : join(fileURLToPath(version.source), 'MLmodel');
      const mlmodel = parseYaml(readFileSync(mlmodelPath, 'utf8')) as {
        signature: { inputs: string; outputs: string };
      };
      await page.goto(`./?test#/models/${model!.name}/versions/${version.version}`);
      for (const side of ['inputs', 'outputs'] as const) {
        const specs = JSON.parse(mlmodel.signature[side]) as Array<
          ColSpecType & { name?: string; required?: boolean }
        >;
        const table = `[data-testid="signature-${side}"]`;
        await expect(page.locator(table)).toBeVisible();
        const shown = await rows(page, table);
        expect(
          shown.map((r) => [r[0], r[1], r[r.length - 1]]),
          `signature ${side}`,
        ).toEqual(
          specs.map((s) => [
            s.name ?? '(unnamed)',
            mlflowTypeName(s),
            s.required === false ? 'optional' : 'required',
          ]),
        );
      }
    });
  });
}
