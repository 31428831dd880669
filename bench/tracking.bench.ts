// Tracking store benchmarks (Node + fake-indexeddb: a first figure; Chromium's IndexedDB is faster
// and shaped differently). Prints ratios against baselines measured in the same run:
// 1. metric logging: log-batch calls (1000 points each) vs the floor, the same points written as one
//    array in one transaction;
// 2. a 10k-run experiment (20 params, 10 metrics each): first page, sort by a metric, and
//    `metrics.acc > 0.9 and params.lr = '0.01'`, vs reading every run and evaluating in JS.
// Sizes: BENCH_POINTS (default 100000), BENCH_RUNS (default 10000).
import 'fake-indexeddb/auto';
import { openDatabase } from '../src/lib/store/db.ts';
import { TrackingClient } from '../src/lib/services/tracking.ts';
import * as repo from '../src/lib/store/tracking.ts';
import {
  matchesFilter,
  parseFilter,
  parseOrderBy,
  runComparator,
} from '../src/lib/mlflow/search/index.ts';
import type { Metric } from '../src/lib/mlflow/entities.ts';

const POINTS = Number(process.env['BENCH_POINTS'] ?? 100_000);
const RUNS = Number(process.env['BENCH_RUNS'] ?? 10_000);

async function time<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = performance.now();
  const value = await fn();
  return { ms: performance.now() - t0, value };
}

async function median(fn: () => Promise<unknown>, n = 3): Promise<number> {
  const xs: number[] = [];
  for (let i = 0; i < n; i++) xs.push((await time(fn)).ms);
  xs.sort((a, b) => a - b);
  return xs[Math.floor(n / 2)]!;
}

const fmt = (ms: number) => `${ms.toFixed(1)} ms`;
const rate = (n: number, ms: number) =>
  `${Math.round((n / ms) * 1000).toLocaleString('en-US')} points/s`;

async function logging(): Promise<void> {
  const points: Metric[] = Array.from({ length: POINTS }, (_, i) => ({
    key: `m${i % 10}`,
    value: Math.sin(i),
    step: Math.floor(i / 10),
    timestamp: 1_700_000_000_000 + i,
  }));

  const db1 = await openDatabase({ name: 'bench-floor' });
  const c1 = new TrackingClient(db1);
  const r1 = await c1.startRun({ experimentId: await c1.createExperiment('floor') });
  const floor = await time(async () => {
    const tx = db1.transaction('metricHistory', 'readwrite');
    const store = tx.objectStore('metricHistory');
    for (const p of points) void store.add({ runId: r1.runId, ...p });
    await tx.done;
  });

  const db2 = await openDatabase({ name: 'bench-batched' });
  const c2 = new TrackingClient(db2);
  const r2 = await c2.startRun({ experimentId: await c2.createExperiment('batched') });
  const batched = await time(async () => {
    for (let i = 0; i < points.length; i += 1000) {
      await c2.logBatch(r2.runId, { metrics: points.slice(i, i + 1000) });
    }
  });
  console.log(`metric logging, ${POINTS.toLocaleString('en-US')} points`);
  console.log(`  floor (one array, one transaction):  ${fmt(floor.ms)}  ${rate(POINTS, floor.ms)}`);
  console.log(
    `  logBatch x ${Math.ceil(POINTS / 1000)} (1000 points each): ${fmt(batched.ms)}  ${rate(POINTS, batched.ms)}`,
  );
  console.log(`  batched / floor time: ${(batched.ms / floor.ms).toFixed(2)}x`);
  const hist = await time(() => c2.getMetricHistory(r2.runId, 'm0'));
  console.log(`  read one metric's history (${hist.value.length} points): ${fmt(hist.ms)}`);
}

async function bigExperiment(): Promise<void> {
  const db = await openDatabase({ name: 'bench-10k' });
  const c = new TrackingClient(db);
  const exp = await c.createExperiment('10k runs');
  const expRec = await c.getExperiment(exp);
  let seed = 42;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const gen = await time(async () => {
    const runs: repo.RunRecord[] = [];
    for (let i = 0; i < RUNS; i++) {
      const runId = i.toString(16).padStart(32, '0');
      const rec = repo.newRunRecord(
        {
          runId,
          experimentId: exp,
          runName: `run-${i}`,
          userId: 'bench',
          status: 'FINISHED',
          startTime: 1_700_000_000_000 + i * 1000,
          endTime: 1_700_000_000_000 + i * 1000 + 500,
          artifactUri: `${expRec.artifactLocation}/${runId}/artifacts`,
          lifecycleStage: 'active',
        },
        { 'mlflow.runName': `run-${i}` },
      );
      for (let p = 0; p < 20; p++)
        rec.params[p === 0 ? 'lr' : `p${p}`] =
          p === 0 ? ['0.1', '0.01', '0.001'][i % 3]! : String(Math.floor(rnd() * 100));
      const names = ['acc', 'loss', 'f1', 'precision', 'recall', 'auc', 'm6', 'm7', 'm8', 'm9'];
      for (const k of names) rec.metrics[k] = { key: k, value: rnd(), step: 10, timestamp: 1 };
      runs.push(rec);
    }
    await repo.writeImport(db, {
      experiments: [],
      runs,
      history: [],
      artifacts: [],
      files: [],
      replaceExperimentIds: [],
    });
  });
  console.log(
    `\n${RUNS.toLocaleString('en-US')}-run experiment, 20 params and 10 metrics per run (generated in ${fmt(gen.ms)})`,
  );

  const filterText = "metrics.acc > 0.9 and params.lr = '0.01'";
  const filter = parseFilter(filterText);
  const byAcc = [parseOrderBy('metrics.acc DESC')];
  // Baseline: read every run of the experiment, evaluate and sort in JS, take the page.
  const scan = async (f: typeof filter, o: typeof byAcc) => {
    const runs = (await repo.getExperimentRuns(db, exp))
      .map(repo.runOf)
      .filter((r) => r.info.lifecycleStage === 'active' && matchesFilter(r, f));
    runs.sort(runComparator(o));
    return runs.slice(0, 100);
  };

  const cases: [string, () => Promise<unknown>, () => Promise<unknown>][] = [
    [
      'first page (default order, 100 rows)',
      () => c.searchRuns({ experimentIds: [exp], maxResults: 100 }),
      () => scan([], []),
    ],
    [
      'sort by metrics.acc DESC (100 rows)',
      () => c.searchRuns({ experimentIds: [exp], orderBy: ['metrics.acc DESC'], maxResults: 100 }),
      () => scan([], byAcc),
    ],
    [
      filterText,
      () => c.searchRuns({ experimentIds: [exp], filter: filterText, maxResults: 100 }),
      () => scan(filter, []),
    ],
  ];
  for (const [label, ours, base] of cases) {
    const a = await median(ours);
    const b = await median(base);
    console.log(
      `  ${label}: ${fmt(a)}  (read-all baseline ${fmt(b)}, ${(b / a).toFixed(1)}x faster)`,
    );
  }
  const res = await c.searchRuns({ experimentIds: [exp], filter: filterText, maxResults: 50_000 });
  console.log(`  filter matched ${res.runs.length} runs`);
  // MLflow users report ~1 minute to list 500 runs (mlflow/mlflow#1517): per-run figure for scale.
  const firstPage = await median(() => c.searchRuns({ experimentIds: [exp], maxResults: 100 }));
  console.log(
    `  vs the ~60 s for 500 runs reported in mlflow/mlflow#1517: ${(60_000 / firstPage).toFixed(0)}x`,
  );
}

await logging();
await bigExperiment();
