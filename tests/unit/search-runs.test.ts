import 'fake-indexeddb/auto';
import { beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/lib/store/db.ts';
import { TrackingClient } from '../../src/lib/services/tracking.ts';
import { SearchSyntaxError } from '../../src/lib/mlflow/search/index.ts';
import type { Run } from '../../src/lib/mlflow/entities.ts';

let c: TrackingClient;
let exp: string;
let other: string;
const runIds: string[] = [];

// 60 runs: acc = i/60, lr alternates, every 10th run is deleted, start times 1000 + i.
beforeAll(async () => {
  c = new TrackingClient(await openDatabase({ name: 'search-runs' }));
  exp = await c.createExperiment('search');
  other = await c.createExperiment('other');
  for (let i = 0; i < 60; i++) {
    const r = await c.startRun({
      experimentId: exp,
      runName: `run-${String(i).padStart(2, '0')}`,
      startTime: 1000 + i,
    });
    runIds.push(r.runId);
    await c.logBatch(r.runId, {
      metrics: [
        { key: 'acc', value: i / 60, step: 0, timestamp: 1 },
        { key: 'acc', value: i / 59, step: 1, timestamp: 2 },
        ...(i % 7 === 0 ? [] : [{ key: 'loss', value: 1 - i / 60, step: 0, timestamp: 1 }]),
        { key: 'tie', value: i % 11 === 0 ? Number.NaN : i % 3, step: 0, timestamp: 1 },
      ],
      params: [
        { key: 'lr', value: i % 2 === 0 ? '0.01' : '0.1' },
        { key: 'model', value: i % 3 === 0 ? 'rf' : 'gbm' },
      ],
      tags: [{ key: 'group', value: `g${i % 4}` }],
    });
    if (i % 10 === 5) await c.deleteRun(r.runId);
  }
  const o = await c.startRun({ experimentId: other, startTime: 5000 });
  await c.logMetric(o.runId, 'acc', 0.99);
  await c.logParam(o.runId, 'lr', '0.01');
});

const names = (runs: Run[]) => runs.map((r) => r.info.runName);

describe('searchRuns', () => {
  it('lists active runs newest first by default, with every page reachable', async () => {
    const first = await c.searchRuns({ experimentIds: [exp], maxResults: 20 });
    expect(first.runs).toHaveLength(20);
    expect(first.runs[0]!.info.runName).toBe('run-59');
    expect(first.nextPageToken).not.toBeNull();
    const seen = [...names(first.runs)];
    let token = first.nextPageToken;
    while (token) {
      const page = await c.searchRuns({ experimentIds: [exp], maxResults: 20, pageToken: token });
      seen.push(...names(page.runs));
      token = page.nextPageToken;
    }
    const expected = Array.from({ length: 60 }, (_, i) => 59 - i)
      .filter((i) => i % 10 !== 5)
      .map((i) => `run-${String(i).padStart(2, '0')}`);
    expect(seen).toEqual(expected);
  });

  it('filters on latest metric values through the index', async () => {
    const res = await c.searchRuns({ experimentIds: [exp], filter: 'metrics.acc > 0.9' });
    // latest acc = i/59 (step 1): i >= 54 -> 54..59 minus deleted 55
    expect(names(res.runs).sort()).toEqual(['run-54', 'run-56', 'run-57', 'run-58', 'run-59']);
  });

  it("combines metrics.acc > 0.9 and params.lr = '0.01'", async () => {
    const res = await c.searchRuns({
      experimentIds: [exp],
      filter: "metrics.acc > 0.9 and params.lr = '0.01'",
    });
    expect(names(res.runs)).toEqual(['run-58', 'run-56', 'run-54']);
  });

  it('evaluates comparisons no index answers (LIKE, !=, attributes)', async () => {
    const like = await c.searchRuns({
      experimentIds: [exp],
      filter: "params.model LIKE 'r%' AND tags.group != 'g0'",
    });
    const expected = Array.from({ length: 60 }, (_, i) => 59 - i)
      .filter((i) => i % 3 === 0 && i % 4 !== 0 && i % 10 !== 5)
      .map((i) => `run-${String(i).padStart(2, '0')}`);
    expect(names(like.runs)).toEqual(expected);
    const attr = await c.searchRuns({
      experimentIds: [exp],
      filter: "attributes.run_name = 'run-07' AND attributes.status = 'RUNNING'",
    });
    expect(names(attr.runs)).toEqual(['run-07']);
    const ids = await c.searchRuns({
      experimentIds: [exp],
      filter: `attributes.run_id IN ('${runIds[3]}', '${runIds[4]}')`,
    });
    expect(names(ids.runs)).toEqual(['run-04', 'run-03']);
  });

  it('orders by a metric with missing values last, in pages', async () => {
    const res = await c.searchRuns({
      experimentIds: [exp],
      orderBy: ['metrics.loss ASC'],
      maxResults: 54,
    });
    const losses = res.runs.map((r) => r.metrics['loss']?.value);
    const present = losses.filter((v) => v !== undefined) as number[];
    expect(present).toEqual([...present].sort((a, b) => a - b));
    expect(losses.slice(present.length).every((v) => v === undefined)).toBe(true);
    expect(res.nextPageToken).toBeNull();
    const desc = await c.searchRuns({
      experimentIds: [exp],
      orderBy: ['params.model DESC', 'metrics.acc DESC'],
      maxResults: 3,
    });
    expect(names(desc.runs)).toEqual(['run-57', 'run-54', 'run-51']);
  });

  it.each([
    [[] as string[]],
    [['metrics.tie DESC']],
    [['metrics.tie ASC']],
    [['metrics.loss ASC']],
    [['metrics.missing DESC']],
    [['attributes.start_time ASC']],
    [['attributes.start_time DESC']],
  ])('pages from an index in the same order as a full evaluation: %j', async (orderBy) => {
    for (const runViewType of ['ACTIVE_ONLY', 'ALL', 'DELETED_ONLY'] as const) {
      const full = await c.searchRuns({
        experimentIds: [exp],
        orderBy,
        runViewType,
        filter: 'attributes.start_time >= 0',
      });
      const paged: string[] = [];
      let token: string | null = null;
      do {
        const page = await c.searchRuns({
          experimentIds: [exp],
          orderBy,
          runViewType,
          maxResults: 7,
          pageToken: token,
        });
        paged.push(...page.runs.map((r) => r.info.runId));
        token = page.nextPageToken;
      } while (token);
      expect(paged).toEqual(full.runs.map((r) => r.info.runId));
    }
  });

  it('answers every metric comparison from the index exactly as evaluating each run would', async () => {
    const all = (await c.searchRuns({ experimentIds: [exp], maxResults: 1000, runViewType: 'ALL' }))
      .runs;
    for (const op of ['=', '!=', '<', '<=', '>', '>='] as const) {
      for (const v of [-1, 0, 0.5, 1, 2, 3]) {
        const res = await c.searchRuns({
          experimentIds: [exp],
          filter: `metrics.tie ${op} ${v}`,
          runViewType: 'ALL',
          maxResults: 1000,
        });
        const expected = all.filter((r) => {
          const x = r.metrics['tie']?.value;
          if (x === undefined) return false;
          return op === '='
            ? x === v
            : op === '!='
              ? x !== v
              : op === '<'
                ? x < v
                : op === '<='
                  ? x <= v
                  : op === '>'
                    ? x > v
                    : x >= v;
        });
        expect(res.runs.map((r) => r.info.runId).sort(), `tie ${op} ${v}`).toEqual(
          expected.map((r) => r.info.runId).sort(),
        );
      }
    }
  });

  it('moves a run in the metric index when its latest value changes', async () => {
    const [a, b] = [runIds[1]!, runIds[2]!];
    await c.logMetric(a, 'mv', 1, { step: 0, timestamp: 1 });
    await c.logMetric(b, 'mv', 2, { step: 0, timestamp: 1 });
    await c.logMetric(a, 'mv', 7, { step: 9, timestamp: 9 });
    await c.logMetric(a, 'mv', 6, { step: 8, timestamp: 9 }); // an older step: not the latest
    const big = await c.searchRuns({ experimentIds: [exp], filter: 'metrics.mv >= 5' });
    expect(big.runs.map((r) => [r.info.runId, r.metrics['mv']?.value])).toEqual([[a, 7]]);
    expect((await c.searchRuns({ experimentIds: [exp], filter: 'metrics.mv = 1' })).runs).toEqual(
      [],
    );
    const order = await c.searchRuns({
      experimentIds: [exp],
      orderBy: ['metrics.mv DESC'],
      maxResults: 2,
    });
    expect(order.runs.map((r) => r.info.runId)).toEqual([a, b]);
  });

  it('honours run view types', async () => {
    const deleted = await c.searchRuns({ experimentIds: [exp], runViewType: 'DELETED_ONLY' });
    expect(names(deleted.runs)).toEqual([
      'run-55',
      'run-45',
      'run-35',
      'run-25',
      'run-15',
      'run-05',
    ]);
    const all = await c.searchRuns({ experimentIds: [exp], runViewType: 'ALL', maxResults: 1000 });
    expect(all.runs).toHaveLength(60);
    const allFiltered = await c.searchRuns({
      experimentIds: [exp],
      runViewType: 'ALL',
      filter: "params.lr = '0.1'",
    });
    expect(allFiltered.runs).toHaveLength(30);
  });

  it('searches several experiments at once', async () => {
    const res = await c.searchRuns({ experimentIds: [exp, other], filter: 'metrics.acc > 0.95' });
    expect(res.runs.map((r) => r.info.experimentId)).toEqual([other, exp, exp, exp]);
  });

  it('returns no runs for a filter no run satisfies', async () => {
    expect(
      (await c.searchRuns({ experimentIds: [exp], filter: "params.lr = '0.5'" })).runs,
    ).toEqual([]);
  });

  it('rejects malformed filters, page tokens and max_results', async () => {
    await expect(
      c.searchRuns({ experimentIds: [exp], filter: 'metrics.acc >> 1' }),
    ).rejects.toBeInstanceOf(SearchSyntaxError);
    await expect(c.searchRuns({ experimentIds: [exp], pageToken: '!!!' })).rejects.toThrow(
      /Invalid page token/,
    );
    await expect(c.searchRuns({ experimentIds: [exp], maxResults: 50_001 })).rejects.toThrow(
      /max_results/,
    );
  });
});
