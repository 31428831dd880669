import type { Page } from '@playwright/test';

/** The test hook the app exposes on pages opened with `?test` (src/lib/services/app.ts). */
export interface TestHook {
  getTracking(): Promise<import('../../../src/lib/services/tracking.ts').TrackingClient>;
}

/** Opens the app with the test hook enabled at `hash` (e.g. '#/experiments'). */
export async function openWithHook(page: Page, hash = '#/experiments'): Promise<void> {
  await page.goto(`./?test${hash}`);
  await page.waitForFunction(() => 'tabflowTest' in globalThis);
}

export interface SeedRun {
  name: string;
  params?: Record<string, string>;
  /** metric key -> values at steps 0, 1, 2... */
  metrics?: Record<string, number[]>;
  tags?: Record<string, string>;
  /** index into the same list of the parent run */
  parent?: number;
}

/**
 * Logs runs through the app's own tracking client inside the page (what a user's code would do),
 * and returns their ids in order.
 */
export async function logRuns(
  page: Page,
  experimentId: string,
  runs: SeedRun[],
): Promise<string[]> {
  return page.evaluate(
    async ({ experimentId, runs }) => {
      const hook = (globalThis as unknown as { tabflowTest: TestHook }).tabflowTest;
      const t = await hook.getTracking();
      const ids: string[] = [];
      let clock = Date.now() - runs.length * 60_000;
      for (const r of runs) {
        const parentRunId = r.parent !== undefined ? ids[r.parent] : undefined;
        const info = await t.startRun({
          experimentId,
          runName: r.name,
          startTime: (clock += 60_000),
          ...(parentRunId ? { parentRunId } : {}),
          ...(r.tags ? { tags: r.tags } : {}),
        });
        if (r.params) await t.logParams(info.runId, r.params);
        const points = Object.entries(r.metrics ?? {}).flatMap(([key, values]) =>
          values.map((value, step) => ({ key, value, step, timestamp: clock + step * 1000 })),
        );
        if (points.length) await t.logMetrics(info.runId, points);
        await t.endRun(info.runId, 'FINISHED', clock + 30_000);
        ids.push(info.runId);
      }
      return ids;
    },
    { experimentId, runs },
  );
}

export async function createExperiment(page: Page, name: string): Promise<string> {
  return page.evaluate(async (name) => {
    const hook = (globalThis as unknown as { tabflowTest: TestHook }).tabflowTest;
    return (await hook.getTracking()).createExperiment(name);
  }, name);
}
