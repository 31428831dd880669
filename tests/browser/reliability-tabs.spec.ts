// Many tabs of one browser profile: concurrent writes to one run are all kept, a delete in one tab
// shows in the other within a second, and a schema upgrade in one tab makes the others step
// aside (and say so) instead of deadlocking.
import { expect, test, type Page } from '@playwright/test';
import { openWithHook, type TestHook } from './support/tracking.ts';
import type { ReliabilityHook } from '../../src/lib/services/reliability-hook.ts';

test.use({ serviceWorkers: 'block' });

const hook = (p: Page) =>
  p.waitForFunction(() => 'tabflowReliability' in globalThis && 'tabflowTest' in globalThis);

test('two tabs logging to the same run lose no write', async ({ page, context }) => {
  await openWithHook(page);
  const other = await context.newPage();
  await openWithHook(other);
  const runId = await page.evaluate(async () => {
    const t = await (globalThis as unknown as { tabflowTest: TestHook }).tabflowTest.getTracking();
    const exp = await t.createExperiment('shared-run');
    return (await t.startRun({ experimentId: exp, runName: 'both-tabs' })).runId;
  });
  const N = 150;
  const log = (p: Page, who: string) =>
    p.evaluate(
      async ({ runId, who, N }) => {
        const t = await (
          globalThis as unknown as { tabflowTest: TestHook }
        ).tabflowTest.getTracking();
        for (let i = 0; i < N; i++) {
          await t.logBatch(runId, {
            metrics: [{ key: `loss_${who}`, value: i / 10, step: i, timestamp: 1000 + i }],
            params: [{ key: `p_${who}_${i}`, value: String(i) }],
            tags: [{ key: `t_${who}`, value: String(i) }],
          });
        }
      },
      { runId, who, N },
    );
  await Promise.all([log(page, 'a'), log(other, 'b')]);
  const result = await other.evaluate(async (runId) => {
    const t = await (globalThis as unknown as { tabflowTest: TestHook }).tabflowTest.getTracking();
    const run = await t.getRun(runId);
    return {
      params: Object.keys(run.params).length,
      a: (await t.getMetricHistory(runId, 'loss_a')).map((m) => m.step),
      b: (await t.getMetricHistory(runId, 'loss_b')).map((m) => m.step),
      tagA: run.tags['t_a'],
      tagB: run.tags['t_b'],
    };
  }, runId);
  const steps = Array.from({ length: N }, (_, i) => i);
  expect(result.params).toBe(2 * N);
  expect(result.a).toEqual(steps);
  expect(result.b).toEqual(steps);
  expect(result.tagA).toBe(String(N - 1));
  expect(result.tagB).toBe(String(N - 1));
});

test('an experiment deleted in one tab shows as deleted in the other within a second', async ({
  page,
  context,
}) => {
  await openWithHook(page);
  const expId = await page.evaluate(async () => {
    const t = await (globalThis as unknown as { tabflowTest: TestHook }).tabflowTest.getTracking();
    const id = await t.createExperiment('doomed');
    await t.startRun({ experimentId: id, runName: 'r' });
    return id;
  });
  const list = await context.newPage();
  await openWithHook(list, '#/experiments');
  await expect(list.getByTestId('experiments-table')).toContainText('doomed');
  await page.goto(`./?test#/experiments/${expId}`);
  await expect(page.getByTestId('run-count')).toContainText('1 run');

  const deleter = await context.newPage();
  await openWithHook(deleter);
  await deleter.evaluate(async (id) => {
    const t = await (globalThis as unknown as { tabflowTest: TestHook }).tabflowTest.getTracking();
    await t.deleteExperiment(id);
  }, expId);
  const t0 = Date.now();
  await expect(page.getByText('This experiment is deleted')).toBeVisible({ timeout: 1000 });
  await expect(list.locator('main')).not.toContainText('doomed', { timeout: 1000 });
  test.info().annotations.push({ type: 'latency', description: `${Date.now() - t0} ms` });
});

test('a database upgrade in another tab asks this one to reload instead of deadlocking', async ({
  page,
  context,
}) => {
  await openWithHook(page);
  await hook(page);
  // This tab holds the database open (the experiments page read it).
  await page.evaluate(async () => {
    const t = await (globalThis as unknown as { tabflowTest: TestHook }).tabflowTest.getTracking();
    await t.createExperiment('before-upgrade');
  });
  const newer = await context.newPage();
  await openWithHook(newer);
  await hook(newer);
  const t0 = Date.now();
  const upgraded = await newer.evaluate(async () => {
    const h = (globalThis as unknown as { tabflowReliability: ReliabilityHook }).tabflowReliability;
    // The newer tab's own connection steps aside too, so its upgrade is not blocked by itself.
    return h.upgradeAsNewerBuild();
  });
  expect(Date.now() - t0).toBeLessThan(5000);
  const version = await page.evaluate(
    () =>
      (globalThis as unknown as { tabflowReliability: ReliabilityHook }).tabflowReliability
        .DB_VERSION,
  );
  expect(upgraded.version).toBe(version + 1);

  const banner = page.getByTestId('db-banner');
  await expect(banner).toHaveAttribute('data-state', 'upgrade');
  await expect(banner).toContainText('Tabflow was updated in another tab');
  // The data written before is still there for the newer version.
  const names = await newer.evaluate(async () => {
    const req = indexedDB.open('tabflow');
    const db = await new Promise<IDBDatabase>((ok, no) => {
      req.onsuccess = () => ok(req.result);
      req.onerror = () => no(req.error);
    });
    const all = await new Promise<{ name: string }[]>((ok) => {
      const r = db.transaction('experiments').objectStore('experiments').getAll();
      r.onsuccess = () => ok(r.result as { name: string }[]);
    });
    db.close();
    return all.map((e) => e.name);
  });
  expect(names).toContain('before-upgrade');

  // Reloading this (older) build finds the newer database and says what to do.
  await banner.getByRole('button', { name: 'Reload' }).click();
  await expect(page.getByTestId('db-banner')).toHaveAttribute('data-state', 'newer');
  await expect(page.getByTestId('db-banner')).toContainText('A newer version of Tabflow');
});
