// Sync from the browser to a real `mlflow server` on 127.0.0.1 (MLflow 3.x from the interop venv,
// sqlite backend, artifact proxy, CORS allowing the app's origin): a server saved in Settings, a
// run's "Push to…" pushes it, Python's MlflowClient reads it back, pushing again adds nothing, and
// a server-side refusal shows MLflow's error code and message. The same server behind a small
// bearer-token proxy (tests/interop/support/auth-proxy.ts): saved without the token, Test, Push
// and Browse show the 401's UNAUTHENTICATED code and message; saved with it, push and pull work,
// and the token is in no request URL, page URL, backup, mlruns export or mlflow.db export.
// Skipped when the venv is missing (npm run test:interop creates it).
import { expect, test, type Page } from '@playwright/test';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { unzipSync } from 'fflate';
import { PREVIEW_PORT } from '../../playwright.config.ts';
import { seriousA11yViolations } from './support/axe.ts';
import { createExperiment, logRuns, openWithHook, type TestHook } from './support/tracking.ts';
import { startMlflowServer, type MlflowServer } from '../interop/support/mlflow-server.ts';
import {
  UNAUTHENTICATED_MESSAGE,
  startAuthProxy,
  type AuthProxy,
} from '../interop/support/auth-proxy.ts';
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

/** MlflowClient's view of a pushed run; `auth` reads through a proxy with MLflow's env token. */
function readRemoteRun(
  localRunId: string,
  auth?: { url: string; token: string },
): Promise<RemoteRun> {
  const env: NodeJS.ProcessEnv = { ...process.env, PYTHONDONTWRITEBYTECODE: '1' };
  if (auth) env.MLFLOW_TRACKING_TOKEN = auth.token;
  return new Promise((ok, fail) => {
    const child = spawn(
      python,
      [join('scripts', 'interop', 'read_remote_run.py'), auth?.url ?? server!.url, localRunId],
      { env, stdio: ['ignore', 'pipe', 'pipe'] },
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

// ---------------------------------------------------------------- a server that requires a token

const TOKEN = `tabflow-test-token-${randomUUID()}`;
let proxy: AuthProxy | undefined;

async function addServer(page: Page, name: string, token?: string): Promise<void> {
  const section = page.locator('section[aria-labelledby="remote-servers"]');
  await section.getByRole('textbox', { name: 'Server URL' }).fill(proxy!.url);
  await section.getByLabel('Name', { exact: true }).fill(name);
  if (token) await section.getByRole('textbox', { name: 'Token', exact: true }).fill(token);
  await section.getByRole('button', { name: 'Add server' }).click();
  await expect(section.getByRole('listitem').filter({ hasText: name })).toBeVisible();
  // The form does not keep the token once saved.
  await expect(section.getByRole('textbox', { name: 'Token', exact: true })).toHaveValue('');
}

function serverItem(page: Page, name: string) {
  return page
    .locator('section[aria-labelledby="remote-servers"]')
    .getByRole('listitem')
    .filter({ hasText: name });
}

/** Every entry of a zip, inflated, as text (binary bytes as latin1) for a substring search. */
function zipTexts(bytes: Uint8Array): Map<string, string> {
  const out = new Map<string, string>();
  for (const [path, data] of Object.entries(unzipSync(bytes))) {
    out.set(path, Buffer.from(data).toString('latin1'));
  }
  return out;
}

async function downloadOf(page: Page, click: () => Promise<void>): Promise<Uint8Array> {
  const download = page.waitForEvent('download');
  await click();
  return new Uint8Array(readFileSync((await (await download).path())!));
}

test.describe('behind a bearer-token proxy', () => {
  test.beforeAll(async () => {
    test.skip(!available, 'no MLflow venv (.venv): run npm run test:interop once to create it');
    proxy = await startAuthProxy({
      upstream: server!.url,
      token: TOKEN,
      allowedOrigins: [appOrigin],
    });
  });
  test.afterAll(async () => proxy?.stop());

  test('401 UNAUTHENTICATED shown without the token, push and pull with it, the token in no export, backup or URL', async ({
    page,
    browser,
  }) => {
    test.skip(!available, 'no MLflow venv');
    const pageUrls: string[] = [];
    page.on('framenavigated', (f) => pageUrls.push(f.url()));

    await openWithHook(page, '#/settings');
    await addServer(page, 'gate without token');
    await addServer(page, 'gate with token', TOKEN);
    await expect(serverItem(page, 'gate with token')).toContainText('(token saved)');
    await expect(serverItem(page, 'gate without token')).not.toContainText('(token saved)');

    await serverItem(page, 'gate without token').getByRole('button', { name: 'Test' }).click();
    await expect(serverItem(page, 'gate without token').getByRole('status')).toHaveText(
      `UNAUTHENTICATED: ${UNAUTHENTICATED_MESSAGE}`,
    );
    await serverItem(page, 'gate with token').getByRole('button', { name: 'Test' }).click();
    await expect(serverItem(page, 'gate with token').getByRole('status')).toContainText(
      'Connected',
    );

    const experimentId = await createExperiment(page, 'behind-auth');
    const [runId] = await logRuns(page, experimentId, [
      {
        name: 'authed-run',
        params: { lr: '0.1' },
        metrics: { loss: [1, 0.5, 0.25] },
        tags: { team: 'web' },
      },
    ]);
    await page.evaluate(async (runId) => {
      const hook = (globalThis as unknown as { tabflowTest: TestHook }).tabflowTest;
      await (await hook.getTracking()).logText(runId, 'behind a proxy\n', 'notes/auth.txt');
    }, runId!);

    // Without the token: MLflow's error code and the proxy's message, and nothing is created.
    await openWithHook(page, `#/experiments/${experimentId}/runs/${runId}`);
    await page.getByRole('button', { name: 'Push to…' }).click();
    const panel = page.getByRole('group', { name: 'Push to a remote MLflow server' });
    await panel.getByLabel('Server').selectOption({ label: `gate without token — ${proxy!.url}` });
    const sentBefore = proxy!.requests.length;
    await panel.getByRole('button', { name: 'Push', exact: true }).click();
    await expect(panel.getByTestId('push-error')).toHaveText(
      `UNAUTHENTICATED: ${UNAUTHENTICATED_MESSAGE}`,
    );
    // The proxy let nothing of that push through to the server.
    expect(proxy!.requests.slice(sentBefore).filter((r) => r.authorized)).toEqual([]);
    expect(proxy!.requests.slice(sentBefore).some((r) => !r.preflight)).toBe(true);
    // With the token: pushed, and MlflowClient (with the token) reads it back.
    await panel.getByLabel('Server').selectOption({ label: `gate with token — ${proxy!.url}` });
    await panel.getByRole('button', { name: 'Push', exact: true }).click();
    await expect(panel.getByTestId('push-result')).toContainText('Pushed: run', {
      timeout: 60_000,
    });
    const remote = await readRemoteRun(runId!, { url: proxy!.url, token: TOKEN });
    expect(remote.count).toBe(1);
    expect(remote.run).toMatchObject({
      run_name: 'authed-run',
      params: { lr: '0.1' },
      artifacts: { 'notes/auth.txt': 15 },
    });
    expect(remote.run!.metric_history.loss!.map(([step, , value]) => [step, value])).toEqual([
      [0, 1],
      [1, 0.5],
      [2, 0.25],
    ]);
    for (const [k, v] of Object.entries(remote.run!.tags)) {
      expect(`${k}=${v}`, 'remote tags').not.toContain(TOKEN);
    }

    // Pull into a fresh profile: Browse without the token shows the 401, with it lists and pulls.
    const fresh = await browser.newContext();
    const other = await fresh.newPage();
    const otherUrls: string[] = [];
    other.on('framenavigated', (f) => otherUrls.push(f.url()));
    await openWithHook(other, '#/settings');
    await addServer(other, 'gate without token');
    await serverItem(other, 'gate without token').getByRole('button', { name: 'Browse' }).click();
    await expect(serverItem(other, 'gate without token').getByRole('alert')).toContainText(
      `UNAUTHENTICATED: ${UNAUTHENTICATED_MESSAGE}`,
    );
    await serverItem(other, 'gate without token').getByRole('button', { name: 'Browse' }).click();
    await addServer(other, 'gate with token', TOKEN);
    await serverItem(other, 'gate with token').getByRole('button', { name: 'Browse' }).click();
    const lists = other.getByRole('region', { name: /^Contents of / });
    await lists.getByRole('button', { name: 'behind-auth' }).click();
    await lists.getByRole('button', { name: 'Pull run authed-run' }).click();
    await expect(lists.getByText(/^Pulled \(3 metric points, 1 files?\)\.$/)).toBeVisible({
      timeout: 60_000,
    });
    const pulled = await other.evaluate(async () => {
      const t = await (
        globalThis as unknown as { tabflowTest: TestHook }
      ).tabflowTest.getTracking();
      const exp = await t.getExperimentByName('behind-auth');
      const { runs } = await t.searchRuns({ experimentIds: [exp!.experimentId] });
      return {
        names: runs.map((r) => r.info.runName),
        text: await t.readArtifactText(runs[0]!.info.runId, 'notes/auth.txt'),
      };
    });
    expect(pulled).toEqual({ names: ['authed-run'], text: 'behind a proxy\n' });
    await fresh.close();

    // The token is kept in this browser (localStorage) and nowhere else.
    const stored = await page.evaluate(() => localStorage.getItem('tabflow.remoteServers') ?? '');
    expect(stored, 'saved locally (the check below is not vacuous)').toContain(TOKEN);
    for (const r of proxy!.requests) expect(r.url, 'request URL').not.toContain(TOKEN);
    expect(proxy!.requests.some((r) => r.authorized)).toBe(true);
    expect(proxy!.requests.some((r) => !r.authorized && !r.preflight)).toBe(true);
    for (const u of [...pageUrls, ...otherUrls, page.url()]) {
      expect(u, 'page URL').not.toContain(TOKEN);
    }

    await openWithHook(page, '#/settings');
    const data = page.getByTestId('storage-manager');
    const backup = await downloadOf(page, () =>
      data.getByRole('button', { name: 'Export everything' }).click(),
    );
    await openWithHook(page, '#/settings');
    const mlflowDb = await downloadOf(page, () =>
      page.getByRole('button', { name: 'Export as mlflow.db (zip)' }).click(),
    );
    await openWithHook(page, '#/experiments');
    const mlruns = await downloadOf(page, () =>
      page.getByRole('button', { name: 'Export all with registry' }).click(),
    );
    for (const [what, zip] of [
      ['backup', backup],
      ['mlflow.db export', mlflowDb],
      ['mlruns export', mlruns],
    ] as const) {
      const entries = zipTexts(zip);
      expect(entries.size, `${what} has entries`).toBeGreaterThan(0);
      // The push is recorded on the local run (remote id tags): the export carries sync state.
      expect(
        [...entries.values()].some((t) => t.includes('authed-run')),
        `${what} holds the pushed run`,
      ).toBe(true);
      for (const [path, text] of entries) expect(text, `${what}: ${path}`).not.toContain(TOKEN);
      expect(Buffer.from(zip).toString('latin1')).not.toContain(TOKEN);
    }
  });
});
