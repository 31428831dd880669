// The tracking measurements, written once and run twice: in Node on fake-indexeddb and in a
// Chromium page on its real IndexedDB (see ../tracking.bench.ts). Uses globalThis.indexedDB.
import { openDatabase } from '../../src/lib/store/db.ts';
import { TrackingClient } from '../../src/lib/services/tracking.ts';
import * as repo from '../../src/lib/store/tracking.ts';
import {
  matchesFilter,
  parseFilter,
  parseOrderBy,
  runComparator,
} from '../../src/lib/mlflow/search/index.ts';
import type { Metric } from '../../src/lib/mlflow/entities.ts';

export interface BenchOptions {
  points: number;
  runs: number;
  /** Prefix of database names, so runs do not collide. */
  tag: string;
}

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

async function logging(o: BenchOptions, log: (s: string) => void): Promise<void> {
  const points: Metric[] = Array.from({ length: o.points }, (_, i) => ({
    key: `m${i % 10}`,
    value: Math.sin(i),
    step: Math.floor(i / 10),
    timestamp: 1_700_000_000_000 + i,
  }));

  const db1 = await openDatabase({ name: `${o.tag}-floor` });
  const c1 = new TrackingClient(db1);
  const r1 = await c1.startRun({ experimentId: await c1.createExperiment('floor') });
  // The floor: every point already in its final chunk, all chunks put in one transaction.
  const floor = await time(async () => {
    const byKey = new Map<string, Metric[]>();
    for (const p of points) {
      let list = byKey.get(p.key);
      if (!list) byKey.set(p.key, (list = []));
      list.push(p);
    }
    const tx = db1.transaction('metricHistory', 'readwrite');
    const store = tx.objectStore('metricHistory');
    for (const [key, list] of byKey)
      for (const c of repo.packChunks(r1.runId, key, list)) void store.put(c);
    await tx.done;
  });

  const db2 = await openDatabase({ name: `${o.tag}-batched` });
  const c2 = new TrackingClient(db2);
  const r2 = await c2.startRun({ experimentId: await c2.createExperiment('batched') });
  const batched = await time(async () => {
    for (let i = 0; i < points.length; i += 1000) {
      await c2.logBatch(r2.runId, { metrics: points.slice(i, i + 1000) });
    }
  });
  const r3 = await c2.startRun({ experimentId: (await c2.getRun(r2.runId)).info.experimentId });
  const buffered = await time(async () => {
    const buf = c2.metricBuffer(r3.runId);
    for (const p of points) buf.log(p.key, p.value, { step: p.step, timestamp: p.timestamp });
    await buf.flush();
  });
  log(`metric logging, ${o.points.toLocaleString('en-US')} points`);
  log(`  floor (one array, one transaction):   ${fmt(floor.ms)}  ${rate(o.points, floor.ms)}`);
  log(
    `  logBatch x ${Math.ceil(o.points / 1000)} (1000 points each):  ${fmt(batched.ms)}  ${rate(o.points, batched.ms)}`,
  );
  log(`  batched time / floor time: ${(batched.ms / floor.ms).toFixed(2)}x`);
  log(
    `  metricBuffer (10000-point writes):     ${fmt(buffered.ms)}  ${rate(o.points, buffered.ms)}`,
  );
  log(`  buffered time / floor time: ${(buffered.ms / floor.ms).toFixed(2)}x`);
  const hist = await time(() => c2.getMetricHistory(r2.runId, 'm0'));
  log(`  read one metric's history as objects (${hist.value.length} points): ${fmt(hist.ms)}`);
  const series = await time(() => c2.getMetricSeries(r2.runId, 'm0'));
  log(`  read it as arrays (getMetricSeries): ${fmt(series.ms)}`);
  db1.close();
  db2.close();
}

async function bigExperiment(o: BenchOptions, log: (s: string) => void): Promise<void> {
  const db = await openDatabase({ name: `${o.tag}-10k` });
  const c = new TrackingClient(db);
  const exp = await c.createExperiment('many runs');
  const expRec = await c.getExperiment(exp);
  let seed = 42;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const metricNames = ['acc', 'loss', 'f1', 'precision', 'recall', 'auc', 'm6', 'm7', 'm8', 'm9'];
  const gen = await time(async () => {
    const runs: repo.RunRecord[] = [];
    for (let i = 0; i < o.runs; i++) {
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
      rec.params['lr'] = ['0.1', '0.01', '0.001'][i % 3]!;
      for (let p = 1; p < 20; p++) rec.params[`p${p}`] = String(Math.floor(rnd() * 100));
      for (const k of metricNames)
        rec.metrics[k] = { key: k, value: rnd(), step: 10, timestamp: 1 };
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
  log(
    `${o.runs.toLocaleString('en-US')}-run experiment, 20 params and 10 metrics per run (generated in ${fmt(gen.ms)})`,
  );

  const filterText = "metrics.acc > 0.9 and params.lr = '0.01'";
  const filter = parseFilter(filterText);
  const byAcc = [parseOrderBy('metrics.acc DESC')];
  // Baseline: read every run of the experiment, evaluate and sort in JS, then take the page.
  const scan = async (f: typeof filter, order: typeof byAcc) => {
    const runs = (await repo.getExperimentRuns(db, exp))
      .map(repo.runOf)
      .filter((r) => r.info.lifecycleStage === 'active' && matchesFilter(r, f));
    runs.sort(runComparator(order));
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
    log(`  ${label}: ${fmt(a)}  (read-every-run baseline ${fmt(b)}: ${(b / a).toFixed(1)}x)`);
  }
  const res = await c.searchRuns({ experimentIds: [exp], filter: filterText, maxResults: 50_000 });
  log(`  the filter matched ${res.runs.length} runs`);
  const firstPage = await median(() => c.searchRuns({ experimentIds: [exp], maxResults: 100 }));
  // MLflow users report about a minute to show 500 runs (mlflow/mlflow#1517).
  log(
    `  first page vs the ~60 s for 500 runs reported in mlflow/mlflow#1517: ${(60_000 / firstPage).toFixed(0)}x`,
  );
  db.close();
}

export async function runTrackingBench(o: BenchOptions, log: (s: string) => void): Promise<void> {
  await logging(o, log);
  await bigExperiment(o, log);
}
