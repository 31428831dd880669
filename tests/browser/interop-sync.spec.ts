// Sync from the browser to a real `mlflow server` on 127.0.0.1 (MLflow 3.x from the interop venv,
// sqlite backend, artifact proxy, CORS allowing the app's origin): a server saved in Settings, a
// run's "Push to…" pushes it, Python's MlflowClient reads it back, pushing again adds nothing, and
// a server-side refusal shows MLflow's error code and message. Skipped when the venv is missing
// (npm run test:interop creates it).
import { expect, test } from '@playwright/test';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PREVIEW_PORT } from '../../playwright.config.ts';
import { seriousA11yViolations } from './support/axe.ts';
import { createExperiment, logRuns, openWithHook, type TestHook } from './support/tracking.ts';
import { startMlflowServer, type MlflowServer } from '../interop/support/mlflow-server.ts';
import { removeTempDirs, tempDir } from '../interop/support/python.ts';

const python =
  process.env.TABFLOW_PY_MLFLOW3 ||
  resolve(process.platform === 'win32' ? '.venv/Scripts/python.exe' : '.venv/bin/python');
const available = existsSync(python);
const appOrigin = `http://127.0.0.1:${PREVIEW_PORT}`;

let server: MlflowServer | undefined;

test.describe.configure({ timeout: 300_000 });

test.beforeAll(async () => {
  test.skip(!available, 'no MLflow venv (.venv): run npm run test:interop once to create it');
  test.setTimeout(240_000);
  const dir = tempDir('browser-sync');
  server = await startMlflowServer({
    python,
    backendStoreUri: `sqlite:///${join(dir, 'mlflow.db')}`,
    artifactsDestination: join(dir, 'mlartifacts'),
    corsAllowedOrigins: [appOrigin],
  });
});

test.afterAll(async () => {
  await server?.stop();
  removeTempDirs();
});

interface RemoteRun {
  count: number;
  run: {
    run_id: string;
    run_name: string;
    status: string;
    params: Record<string, string>;
    tags: Record<string, string>;
    metric_history: Record<string, Array<[number, number, number]>>;
    artifacts: Record<string, number>;
  } | null;
}

function readRemoteRun(localRunId: string): Promise<RemoteRun> {
  return new Promise((ok, fail) => {
    const child = spawn(
      python,
      [join('scripts', 'interop', 'read_remote_run.py'), server!.url, localRunId],
      { env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.on('close', (code) =>
      code === 0 ? ok(JSON.parse(out.slice(out.indexOf('{'))) as RemoteRun) : fail(new Error(err)),
    );
  });
}

async function rest(path: string, body: unknown): Promise<unknown> {
  const r = await fetch(`${server!.url}/api/2.0/mlflow/${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  return r.json();
}

test('a saved server, Push to… from a run, MlflowClient reads it, a second push adds nothing, a server error shows its code', async ({
  page,
}) => {
  test.skip(!available, 'no MLflow venv');
  await openWithHook(page, '#/settings');
  const section = page
    .getByRole('region', { name: 'Remote MLflow servers' })
    .or(page.locator('section[aria-labelledby="remote-servers"]'));
  await section.getByRole('textbox', { name: 'Server URL' }).fill(server!.url);
  await section.getByLabel('Name').fill('local mlflow');
  await section.getByRole('button', { name: 'Add server' }).click();
  await expect(section.getByText(server!.url)).toBeVisible();
  await section.getByRole('button', { name: 'Test' }).click();
  await expect(section.getByRole('status')).toContainText('Connected');
  expect(await seriousA11yViolations(page), 'settings with a remote server').toEqual([]);

  const experimentId = await createExperiment(page, 'pushed-from-browser');
  const [runId] = await logRuns(page, experimentId, [
    {
      name: 'browser-run',
      params: { lr: '0.1', optimizer: 'adam' },
      metrics: { loss: [1, 0.5, 0.25, 0.125] },
      tags: { team: 'web' },
    },
  ]);
  await page.evaluate(async (runId) => {
    const hook = (globalThis as unknown as { tabflowTest: TestHook }).tabflowTest;
    await (await hook.getTracking()).logText(runId, 'made in the browser\n', 'notes/hello.txt');
  }, runId!);

  await openWithHook(page, `#/experiments/${experimentId}/runs/${runId}`);
  await page.getByRole('button', { name: 'Push to…' }).click();
  const panel = page.getByRole('group', { name: 'Push to a remote MLflow server' });
  await panel.getByRole('button', { name: 'Push', exact: true }).click();
  await expect(panel.getByTestId('push-result')).toContainText('Pushed: run', { timeout: 60_000 });

  const remote = await readRemoteRun(runId!);
  expect(remote.count).toBe(1);
  expect(remote.run).toMatchObject({
    run_name: 'browser-run',
    status: 'FINISHED',
    params: { lr: '0.1', optimizer: 'adam' },
    artifacts: { 'notes/hello.txt': 20 },
  });
  expect(remote.run!.tags.team).toBe('web');
  expect(remote.run!.metric_history.loss!.map(([step, , value]) => [step, value])).toEqual([
    [0, 1],
    [1, 0.5],
    [2, 0.25],
    [3, 0.125],
  ]);

  // Pushing again finds the same remote run and sends nothing.
  await panel.getByRole('button', { name: 'Push', exact: true }).click();
  await expect(panel.getByTestId('push-result')).toContainText(
    `Up to date: run ${remote.run!.run_id}`,
  );
  const search = (await rest('runs/search', {
    experiment_ids: [
      (
        (await rest('experiments/search', { max_results: 100 })) as {
          experiments: Array<{ experiment_id: string; name: string }>;
        }
      ).experiments.find((e) => e.name === 'pushed-from-browser')!.experiment_id,
    ],
  })) as { runs?: unknown[] };
  expect(search.runs).toHaveLength(1);

  // The server already holds another value for a param the app now logs: MLflow refuses the
  // change, and the page shows its error code and message.
  await rest('runs/log-parameter', { run_id: remote.run!.run_id, key: 'batch', value: '64' });
  await page.evaluate(async (runId) => {
    const hook = (globalThis as unknown as { tabflowTest: TestHook }).tabflowTest;
    const t = await hook.getTracking();
    await t.logParam(runId, 'batch', '32');
  }, runId!);
  await panel.getByRole('button', { name: 'Push', exact: true }).click();
  const error = panel.getByTestId('push-error');
  await expect(error).toContainText('INVALID_PARAMETER_VALUE: ');
  await expect(error).toContainText("'batch'");
});

test('a model version pushed from its page, then pulled with the run into a fresh profile from the server lists', async ({
  page,
  browser,
}) => {
  test.skip(!available, 'no MLflow venv');
  await openWithHook(page, '#/settings');
  await page.getByRole('textbox', { name: 'Server URL' }).fill(server!.url);
  await page.getByRole('button', { name: 'Add server' }).click();
  const experimentId = await createExperiment(page, 'models-from-browser');
  const [runId] = await logRuns(page, experimentId, [
    { name: 'trainer', params: { epochs: '3' }, metrics: { acc: [0.5, 0.75] } },
  ]);
  await page.evaluate(async (runId) => {
    const hook = (
      globalThis as unknown as {
        tabflowTest: TestHook & {
          getRegistry(): Promise<import('../../src/lib/services/registry.ts').RegistryClient>;
        };
      }
    ).tabflowTest;
    const t = await hook.getTracking();
    await t.logText(
      runId,
      'flavors:\n  python_function:\n    loader_module: mlflow.pyfunc.model\n',
      'model/MLmodel',
    );
    await t.logText(runId, 'weights', 'model/python_model.pkl');
    const reg = await hook.getRegistry();
    await reg.registerModelFromRun('browser-model', runId, 'model');
    await reg.setRegisteredModelAlias('browser-model', 'champion', 1);
  }, runId!);

  await openWithHook(page, '#/models/browser-model/versions/1');
  await page.getByRole('button', { name: 'Push to…' }).click();
  const panel = page.getByRole('group', { name: 'Push to a remote MLflow server' });
  await panel.getByRole('button', { name: 'Push', exact: true }).click();
  await expect(panel.getByTestId('push-result')).toContainText('Pushed: browser-model version 1', {
    timeout: 60_000,
  });

  // A fresh profile browses the server and pulls the run and the version.
  const fresh = await browser.newContext();
  const other = await fresh.newPage();
  await openWithHook(other, '#/settings');
  await other.getByRole('textbox', { name: 'Server URL' }).fill(server!.url);
  await other.getByRole('button', { name: 'Add server' }).click();
  await other.getByRole('button', { name: 'Browse' }).click();
  const lists = other.getByRole('region', { name: /^Contents of / });
  await lists.getByRole('button', { name: 'models-from-browser' }).click();
  await lists.getByRole('button', { name: 'Pull run trainer' }).click();
  await expect(lists.getByText('Pulled (2 metric points, 2 files).')).toBeVisible();
  await lists.getByRole('button', { name: 'browser-model' }).click();
  await lists.getByRole('button', { name: 'Pull browser-model version 1' }).click();
  await expect(lists.getByText('Pulled as version 1.')).toBeVisible();
  const pulled = await other.evaluate(async () => {
    const hook = (
      globalThis as unknown as {
        tabflowTest: {
          getRegistry(): Promise<import('../../src/lib/services/registry.ts').RegistryClient>;
        };
      }
    ).tabflowTest;
    const v = await (await hook.getRegistry()).getModelVersion('browser-model', 1);
    return { aliases: v.aliases };
  });
  expect(pulled.aliases).toEqual(['champion']);
  await openWithHook(other, `#/experiments`);
  await expect(other.getByText('models-from-browser')).toBeVisible();
  await fresh.close();
});
