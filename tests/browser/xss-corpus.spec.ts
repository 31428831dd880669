// Hostile text from files renders inert on every page. A corpus of XSS payloads (tests/fixtures/
// xss) goes in through the real import paths (an mlruns zip through the import dialog, a model zip
// through the registry import) into names, tags, descriptions, notes, params, signatures, MLmodel
// metadata and artifacts (SVG, HTML, Markdown, MLproject); then every page is opened and every run
// tab and artifact shown. A listener proves that nothing ran: no dialog, no global set, no request
// to the canary host; CSP violations (attempts the policy stopped) are recorded and reported.
import { expect, test, type Page } from '@playwright/test';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { strToU8, zipSync } from 'fflate';
import { dumpPyYaml } from '../../src/lib/mlflow/pyyaml.ts';
import { openWithHook, type TestHook } from './support/tracking.ts';
import type { RegistryClient } from '../../src/lib/services/registry.ts';

test.use({ serviceWorkers: 'block' });

const FIX = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'xss');
const PAYLOADS = (
  JSON.parse(readFileSync(join(FIX, 'payloads.json'), 'utf8')) as { payloads: string[] }
).payloads;
const file = (name: string) => new Uint8Array(readFileSync(join(FIX, name)));
const P = (i: number) => PAYLOADS[i % PAYLOADS.length]!;
const yamlStr = (s: string) => JSON.stringify(s); // a JSON string is a YAML double-quoted scalar

const EXP = '512345678901234567';
const RUNS = ['b1b2c3d4e5f60718293a4b5c6d7e8f90', 'c1b2c3d4e5f60718293a4b5c6d7e8f90'];

function runMeta(runId: string, name: string, start: number): string {
  return [
    `artifact_uri: file:///home/u/mlruns/${EXP}/${runId}/artifacts`,
    'deleted_time: null',
    `end_time: ${start + 5000}`,
    "entry_point_name: ''",
    `experiment_id: '${EXP}'`,
    'lifecycle_stage: active',
    `run_id: ${runId}`,
    `run_name: ${yamlStr(name)}`,
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

function hostileMlruns(): Uint8Array {
  const t0 = 1721450907221;
  const files: Record<string, Uint8Array> = {
    [`mlruns/${EXP}/meta.yaml`]: strToU8(
      `artifact_location: file:///home/u/mlruns/${EXP}\ncreation_time: ${t0}\nexperiment_id: '${EXP}'\nlast_update_time: ${t0}\nlifecycle_stage: active\nname: ${yamlStr(`xss ${P(1)}`)}\n`,
    ),
    [`mlruns/${EXP}/tags/mlflow.note.content`]: strToU8(PAYLOADS.join('\n\n')),
    [`mlruns/${EXP}/tags/team`]: strToU8(P(0)),
  };
  RUNS.forEach((runId, r) => {
    const base = `mlruns/${EXP}/${runId}`;
    const name = `run${r} ${P(r + 2)}`;
    files[`${base}/meta.yaml`] = strToU8(runMeta(runId, name, t0 + r * 1000));
    files[`${base}/tags/mlflow.runName`] = strToU8(name);
    files[`${base}/tags/mlflow.note.content`] = strToU8(PAYLOADS.join('\n\n'));
    PAYLOADS.forEach((p, i) => {
      files[`${base}/params/p${i}`] = strToU8(p);
      files[`${base}/tags/t${i}`] = strToU8(p);
    });
    files[`${base}/metrics/loss`] = strToU8(`${t0} 0.5 0\n${t0 + 1} 0.25 1\n`);
    files[`${base}/artifacts/evil.svg`] = file('evil.svg');
    files[`${base}/artifacts/evil.html`] = file('evil.html');
    files[`${base}/artifacts/evil.md`] = file('evil.md');
    files[`${base}/artifacts/MLproject`] = file('MLproject');
    files[`${base}/artifacts/evil.json`] = strToU8(JSON.stringify({ html: P(1), list: PAYLOADS }));
    files[`${base}/artifacts/evil.csv`] = strToU8(`a,b\n"${P(1).replace(/"/g, '""')}",2\n`);
  });
  return zipSync(files);
}

function hostileModel(): number[] {
  const sig = JSON.stringify([
    { type: 'string', name: P(1), required: true },
    { type: 'string', name: 'prompt', required: true },
  ]);
  const mlmodel = dumpPyYaml(
    {
      flavors: {
        python_function: {
          loader_module: P(0),
          python_version: '3.11.9',
          env: { conda: 'conda.yaml' },
        },
      },
      metadata: { task: P(4), note: P(9) },
      signature: {
        inputs: sig,
        outputs: JSON.stringify([{ type: 'string', name: P(5) }]),
        params: null,
      },
      run_id: RUNS[0],
      artifact_path: 'model',
    },
    { sortKeys: true },
  );
  return Array.from(
    zipSync({
      MLmodel: strToU8(mlmodel),
      'conda.yaml': strToU8(`name: ${yamlStr(P(2))}\n`),
      'README.md': file('evil.md'),
      'evil.svg': file('evil.svg'),
      MLproject: file('MLproject'),
    }),
  );
}

interface Watch {
  dialogs: string[];
  /** Requests to the canary host that went to the network. */
  canary: string[];
  /** Requests to the canary host that the CSP stopped before they left the page. */
  blockedByCsp: string[];
}

function watch(page: Page): Watch {
  const w: Watch = { dialogs: [], canary: [], blockedByCsp: [] };
  page.on('dialog', (d) => {
    w.dialogs.push(d.message());
    void d.dismiss();
  });
  // Chromium reports a request even when the CSP blocks it; it then fails with
  // ERR_BLOCKED_BY_CSP. Anything else (finished, refused connection) reached the network.
  page.on('requestfinished', (r) => {
    if (r.url().startsWith('http://127.0.0.1:9/')) w.canary.push(r.url());
  });
  page.on('requestfailed', (r) => {
    if (!r.url().startsWith('http://127.0.0.1:9/')) return;
    if (/BLOCKED_BY_CSP|^csp$/i.test(r.failure()?.errorText ?? '')) w.blockedByCsp.push(r.url());
    else w.canary.push(`${r.url()} (${r.failure()?.errorText})`);
  });
  return w;
}

async function initListeners(page: Page): Promise<void> {
  await page.addInitScript(() => {
    const w = window as unknown as { __csp: string[] };
    w.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) =>
      w.__csp.push(
        `${e.effectiveDirective} ${e.blockedURI}${e.sample ? ` "${e.sample}"` : ''} (${e.sourceFile.split('/').pop()}:${e.lineNumber})`,
      ),
    );
  });
}

async function assertNothingRan(page: Page, w: Watch, where: string): Promise<string[]> {
  const state = await page.evaluate(() => ({
    pwned: (window as unknown as { __pwned?: unknown }).__pwned,
    csp: (window as unknown as { __csp?: string[] }).__csp ?? [],
  }));
  expect(state.pwned, `${where}: a payload ran`).toBeUndefined();
  expect(w.dialogs, `${where}: a dialog opened`).toEqual([]);
  expect(w.canary, `${where}: the canary host was requested`).toEqual([]);
  return state.csp;
}

test('the XSS corpus renders inert on every page', async ({ page }) => {
  test.setTimeout(240_000);
  await initListeners(page);
  const w = watch(page);
  const violations = new Set<string>();
  const check = async (where: string) => {
    for (const v of await assertNothingRan(page, w, where)) violations.add(`${where}: ${v}`);
  };

  await openWithHook(page);
  // Tracking data through the import dialog.
  await page.getByRole('button', { name: 'Import mlruns' }).first().click();
  await page.getByTestId('mlruns-zip-input').setInputFiles({
    name: 'hostile.zip',
    mimeType: 'application/zip',
    buffer: Buffer.from(hostileMlruns()),
  });
  await expect(page.getByTestId('import-result')).toContainText('Imported 1 experiment, 2 runs');
  await page.getByRole('dialog').getByRole('button', { name: 'Done' }).click();
  await check('import');

  // A model through the registry import, with hostile description and tags.
  await page.evaluate(
    async ({ zip, payloads }) => {
      const h = (
        globalThis as unknown as { tabflowTest: { getRegistry(): Promise<RegistryClient> } }
      ).tabflowTest;
      const reg = await h.getRegistry();
      await reg.importModelZip(new File([new Uint8Array(zip)], 'hostile-model.zip'), {
        name: 'hostile-model',
      });
      await reg.updateRegisteredModel('hostile-model', payloads.join('\n\n'));
      await reg.updateModelVersion('hostile-model', 1, payloads.join('\n\n'));
      for (let i = 0; i < 6; i++) {
        await reg.setRegisteredModelTag('hostile-model', `t${i}`, payloads[i]!);
        await reg.setModelVersionTag('hostile-model', 1, `t${i}`, payloads[i]!);
      }
      await reg.setRegisteredModelAlias('hostile-model', 'champion', 1);
    },
    { zip: hostileModel(), payloads: PAYLOADS },
  );

  // Every page.
  await page.goto('./?test#/experiments');
  await expect(page.getByTestId('experiments-table')).toContainText(
    'xss <img src=x onerror="window.__pwned=\'img\'">',
  );
  await check('experiments');

  await page.goto(`./?test#/experiments/${EXP}`);
  await expect(page.getByTestId('run-count')).toContainText('2 runs');
  await expect(page.getByTestId('runs-table')).toContainText(
    '<svg onload="window.__pwned=\'svg\'">',
  );
  await check('experiment');

  for (const runId of RUNS) {
    await page.goto(`./?test#/experiments/${EXP}/runs/${runId}`);
    await expect(page.locator('main')).toContainText('run');
    const tabs = page.getByRole('tab');
    for (let i = 0; i < (await tabs.count()); i++) {
      await tabs.nth(i).click();
      await page.waitForTimeout(150);
      await check(`run ${runId} tab ${i}`);
    }
    await page.getByRole('tab', { name: 'Artifacts' }).click();
    for (const name of ['evil.svg', 'evil.html', 'evil.md', 'MLproject', 'evil.json', 'evil.csv']) {
      await page.getByRole('button', { name, exact: true }).first().click();
      await expect(page.getByTestId('artifact-viewer')).toBeVisible();
      await page.waitForTimeout(300);
      await check(`artifact ${name}`);
    }
    // The HTML artifact is shown as text, not as a page.
  }

  await page.goto(`./?test#/compare-runs?runs=${RUNS.join(',')}`);
  await expect(page.locator('main')).toContainText('run0');
  await page.waitForTimeout(300);
  await check('compare');

  await page.goto('./?test#/models');
  await expect(page.locator('main')).toContainText('hostile-model');
  await check('models');
  await page.goto('./?test#/models/hostile-model');
  await expect(page.locator('main')).toContainText("<script>window.__pwned='script'</script>");
  await check('model');
  await page.goto('./?test#/models/hostile-model/versions/1');
  await expect(page.locator('main')).toContainText('<iframe');
  const vtabs = page.getByRole('tab');
  for (let i = 0; i < (await vtabs.count()); i++) {
    await vtabs.nth(i).click();
    await page.waitForTimeout(150);
    await check(`model version tab ${i}`);
  }
  await page.goto('./?test#/playground');
  await page.waitForTimeout(500);
  await check('playground');
  await page.goto('./?test#/settings');
  await expect(page.getByTestId('usage-models')).toContainText('hostile-model');
  await check('settings');

  test.info().annotations.push({
    type: 'blocked-by-csp',
    description: [...new Set(w.blockedByCsp)].join(' ') || 'none',
  });
  console.log(
    `Canary requests stopped by the CSP: ${[...new Set(w.blockedByCsp)].join(' ') || 'none'}`,
  );
  test.info().annotations.push({
    type: 'csp-violations',
    description: violations.size ? [...violations].join(' | ') : 'none',
  });
  console.log(`CSP violations recorded: ${violations.size ? [...violations].join('\n') : 'none'}`);
});
