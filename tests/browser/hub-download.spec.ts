// Downloading a model from the Hugging Face Hub in the built app, against a local stand-in for
// the Hub on another port (cross-origin, so it sends CORS and Cross-Origin-Resource-Policy for
// the isolated page): progress, completion and registration, pause and resume across a reload,
// cancel, and the quota refusal with its numbers.
import { expect, test, type Page } from '@playwright/test';
import { ensureTinyPhi3 } from '../helpers/tiny-phi3.ts';
import {
  folderAsRepoFiles,
  repoOf,
  startHubServer,
  type HubServer,
} from '../helpers/hub-server.ts';
import { seriousA11yViolations } from './support/axe.ts';

test.use({ serviceWorkers: 'block' });

const GENAI_FOLDER = 'cpu_and_mobile/cpu-int4-rtn-block-32-acc-level-4';
let server: HubServer;
let webRepo: ReturnType<typeof repoOf>;

test.beforeAll(async () => {
  const tiny = await ensureTinyPhi3();
  webRepo = repoOf(folderAsRepoFiles(tiny.web), 'web');
  server = await startHubServer({
    'tiny/phi3-web': webRepo,
    'tiny/phi3-onnx': repoOf(folderAsRepoFiles(tiny.genai, `${GENAI_FOLDER}/`), 'genai'),
  });
});

test.afterAll(async () => {
  await server?.close();
});

/** Opens the Models page and fills the download form for a model of the local Hub. */
async function fillForm(
  page: Page,
  opts: { repoId: string; subfolder?: string; name: string; weights?: string },
) {
  await page.goto('./?test#/models');
  await expect(page.locator('main')).toHaveAttribute('data-page', 'models');
  const hub = page.getByRole('region', { name: 'Download from the Hugging Face Hub' });
  await hub.getByText('Hub address').click();
  await hub.getByLabel('Hub URL').fill(server.url);
  await hub.getByLabel('Hub URL').dispatchEvent('change');
  await hub.getByRole('textbox', { name: 'Model id' }).fill(opts.repoId);
  await hub.getByRole('textbox', { name: 'Folder in the repository' }).fill(opts.subfolder ?? '');
  if (opts.weights) await hub.getByLabel('Weights').selectOption(opts.weights);
  await hub.getByRole('textbox', { name: 'Registered model name' }).fill(opts.name);
  return hub;
}

/** Versions stored in the app's IndexedDB, read in the page. */
async function storedVersions(page: Page) {
  return page.evaluate(
    () =>
      new Promise<{ name: string; version: number; servable: { layout: string } | null }[]>(
        (resolve, reject) => {
          const req = indexedDB.open('tabflow');
          req.onerror = () => reject(req.error);
          req.onsuccess = () => {
            const db = req.result;
            const all = db.transaction('modelVersions').objectStore('modelVersions').getAll();
            all.onsuccess = () => {
              resolve(all.result);
              db.close();
            };
            all.onerror = () => reject(all.error);
          };
        },
      ),
  );
}

async function countIn(page: Page, store: string): Promise<number> {
  return page.evaluate(
    (name) =>
      new Promise<number>((resolve, reject) => {
        const req = indexedDB.open('tabflow');
        req.onerror = () => reject(req.error);
        req.onsuccess = () => {
          const db = req.result;
          const c = db.transaction(name).objectStore(name).count();
          c.onsuccess = () => {
            resolve(c.result);
            db.close();
          };
          c.onerror = () => reject(c.error);
        };
      }),
    store,
  );
}

test('a web-layout model downloads with progress and appears in the registry', async ({ page }) => {
  server.requests.length = 0;
  server.options = { throttle: { bytes: 64 * 1024, delayMs: 15 } };
  const hub = await fillForm(page, { repoId: 'tiny/phi3-web', name: 'phi3-hub', weights: 'q4' });
  await hub.getByRole('button', { name: 'Download' }).click();

  await expect(hub.getByTestId('hub-plan')).toContainText(/\d+ files, 10\.\d+ MB in total/);
  const row = hub.getByTestId('hub-download');
  await expect(row).toContainText('Downloading');
  await expect(row.getByTestId('hub-progress-text')).toContainText(
    /[\d.]+ MB of 10\.\d+ MB · [\d.]+ [KM]B\/s/,
  );
  const bar = row.getByRole('progressbar', { name: 'Download of phi3-hub' });
  await expect
    .poll(async () => Number(await bar.getAttribute('value')), { timeout: 30_000 })
    .toBeGreaterThan(1_000_000);
  expect(await seriousA11yViolations(page)).toEqual([]);

  await expect(hub.getByTestId('hub-done')).toContainText('registered phi3-hub version 1', {
    timeout: 60_000,
  });
  await expect(hub.getByTestId('hub-downloads')).toHaveCount(0);
  // The Models page lists it, and the store holds a version the Playground can serve.
  await expect(page.getByRole('link', { name: 'phi3-hub', exact: true }).first()).toBeVisible();
  const versions = await storedVersions(page);
  expect(versions).toEqual([
    expect.objectContaining({
      name: 'phi3-hub',
      version: 1,
      servable: expect.objectContaining({ kind: 'chat', layout: 'web', root: 'model/' }),
    }),
  ]);
  // The browser fetched from the local Hub at the pinned commit, and only the q4 weights.
  const resolved = server.requests.filter((r) => r.path.includes('/resolve/'));
  expect(resolved.every((r) => r.path.includes(`/resolve/${webRepo.sha}/`))).toBe(true);
  expect(resolved.some((r) => r.path.endsWith('onnx/model_q4.onnx_data'))).toBe(true);
  expect(resolved.some((r) => r.path.includes('q4f16'))).toBe(false);

  await hub.getByRole('link', { name: 'phi3-hub version 1' }).click();
  await expect(page.locator('main')).toHaveAttribute('data-page', 'model-version');
  await expect(page.getByTestId('model-files')).toContainText('model/onnx/model_q4.onnx_data');
});

test('a paused download resumes after the tab is reloaded, and cancel removes what was stored', async ({
  page,
}) => {
  server.requests.length = 0;
  server.options = { throttle: { bytes: 64 * 1024, delayMs: 40 } };
  const hub = await fillForm(page, {
    repoId: 'tiny/phi3-onnx',
    subfolder: GENAI_FOLDER,
    name: 'phi3-genai-hub',
  });
  await hub.getByRole('button', { name: 'Download' }).click();
  const row = hub.getByTestId('hub-download');
  const bar = row.getByRole('progressbar');
  // Past the first 1 MB the chunks are 64 MiB, so only whole files are safely stored: wait until
  // the tokenizer (0.9 MB) is in, then pause.
  await expect
    .poll(async () => Number(await bar.getAttribute('value')), { timeout: 30_000 })
    .toBeGreaterThan(1_200_000);
  await row.getByRole('button', { name: 'Pause' }).click();
  await expect(row).toContainText('Paused');

  // "Closed tab": a fresh page load finds the unfinished download and offers to resume it.
  await page.reload();
  await expect(page.locator('main')).toHaveAttribute('data-page', 'models');
  const again = page.getByRole('region', { name: 'Download from the Hugging Face Hub' });
  const kept = again.getByTestId('hub-download');
  await expect(kept).toContainText('phi3-genai-hub');
  await expect(kept).toContainText('Paused');
  await expect(kept.getByTestId('hub-progress-text')).toContainText(/stored/);
  server.requests.length = 0;
  server.options = {};
  await kept.getByRole('button', { name: 'Resume' }).click();
  await expect(again.getByTestId('hub-done')).toContainText('registered phi3-genai-hub version 1', {
    timeout: 60_000,
  });
  // Files stored before the pause were not fetched again.
  const fetched = server.requests.filter((r) => r.path.includes('/resolve/')).map((r) => r.path);
  expect(fetched.some((p) => p.endsWith('/genai_config.json'))).toBe(false);
  expect(fetched.some((p) => p.endsWith('.onnx.data'))).toBe(true);
  expect(
    (await storedVersions(page)).find((v) => v.name === 'phi3-genai-hub')?.servable,
  ).toMatchObject({ layout: 'genai' });

  // Cancel: a second download, cancelled while it runs, leaves nothing behind.
  const chunksBefore = await countIn(page, 'blobChunks');
  server.options = { throttle: { bytes: 64 * 1024, delayMs: 40 } };
  // The Hub address chosen before the reload was kept; the form itself starts afresh.
  await expect(again.getByLabel('Hub URL')).toHaveValue(server.url);
  await again.getByRole('textbox', { name: 'Model id' }).fill('tiny/phi3-onnx');
  await again.getByRole('textbox', { name: 'Folder in the repository' }).fill(GENAI_FOLDER);
  await again.getByRole('textbox', { name: 'Registered model name' }).fill('to-cancel');
  await again.getByRole('button', { name: 'Download' }).click();
  const running = again.getByTestId('hub-download');
  await expect(running).toContainText('Downloading');
  await running.getByRole('button', { name: 'Cancel' }).click();
  await expect(again.getByTestId('hub-downloads')).toHaveCount(0);
  await expect.poll(() => countIn(page, 'downloads')).toBe(0);
  await expect.poll(() => countIn(page, 'blobChunks')).toBe(chunksBefore);
  expect((await storedVersions(page)).some((v) => v.name === 'to-cancel')).toBe(false);
});

test('a too-small storage quota is refused before downloading, with the size needed', async ({
  page,
}) => {
  await page.addInitScript(() => {
    Object.defineProperty(navigator.storage, 'estimate', {
      value: async () => ({ quota: 6_000_000, usage: 1_000_000 }),
    });
  });
  server.requests.length = 0;
  server.options = {};
  const hub = await fillForm(page, { repoId: 'tiny/phi3-web', name: 'too-big', weights: 'q4' });
  await hub.getByRole('button', { name: 'Download' }).click();
  const alert = hub.getByRole('alert');
  await expect(alert).toContainText('Not enough storage for tiny/phi3-web: it needs 10.');
  await expect(alert).toContainText('Needed: 10.');
  await expect(alert).toContainText('Available: 5.00 MB');
  expect(server.requests.some((r) => r.path.includes('/resolve/'))).toBe(false);
  await expect(hub.getByTestId('hub-downloads')).toHaveCount(0);
});
