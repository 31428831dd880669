// A big mlruns import is written in slices (so the page keeps painting) and its parse can be
// sent from the zip worker in pieces: neither may change what lands in the store, nor the
// all-or-nothing promise. (The browser side, with the worker and long-task observation, is
// tests/browser/reliability-long-tasks.spec.ts.)
import 'fake-indexeddb/auto';
import { describe, expect, it } from 'vitest';
import { strToU8, zipSync } from 'fflate';
import { openDatabase, type AnyDB } from '../../src/lib/store/db.ts';
import * as repo from '../../src/lib/store/tracking.ts';
import { importMlruns } from '../../src/lib/services/mlruns-io.ts';
import {
  joinPrepared,
  prepareMlruns,
  splitPrepared,
  PART_FILES,
  PART_RUNS,
} from '../../src/lib/archive/zip-worker-mlruns.ts';
import { prepareMlrunsOffThread } from '../../src/lib/archive/zip-off-thread.ts';
import { MlrunsParseError } from '../../src/lib/mlflow/mlruns/index.ts';
import { MlflowError } from '../../src/lib/mlflow/errors.ts';

const EXP = '12345';
let n = 0;
const freshDb = () => openDatabase({ name: `mlruns-slices-${n++}` });

/** An mlruns tree of `runs` runs (meta, two params, a tag, a two-point metric each). */
function tree(runs: number, exp = EXP): Map<string, Uint8Array> {
  const files = new Map<string, Uint8Array>();
  const put = (p: string, s: string) => files.set(`mlruns/${p}`, strToU8(s));
  put(
    `${exp}/meta.yaml`,
    `artifact_location: file:///tmp/mlruns/${exp}\ncreation_time: 1\nexperiment_id: '${exp}'\nlast_update_time: 1\nlifecycle_stage: active\nname: slices-${exp}\n`,
  );
  for (let i = 0; i < runs; i++) {
    const id = `${exp}${i.toString(16)}`.padStart(32, '0');
    const dir = `${exp}/${id}`;
    put(
      `${dir}/meta.yaml`,
      `artifact_uri: file:///tmp/mlruns/${dir}/artifacts\nend_time: ${i + 2}\nexperiment_id: '${exp}'\nlifecycle_stage: active\nrun_id: ${id}\nrun_name: run-${i}\nrun_uuid: ${id}\nstart_time: ${i + 1}\nstatus: 3\nuser_id: u\nworkspace: w${i % 3}\n`,
    );
    put(`${dir}/params/lr`, String(i / 1000));
    put(`${dir}/params/bs`, String(i % 7));
    put(`${dir}/tags/mlflow.runName`, `run-${i}`);
    put(`${dir}/metrics/acc`, `${i} ${i / runs} 0\n${i + 1} ${(i + 1) / runs} 1\n`);
  }
  return files;
}

async function dump(db: AnyDB): Promise<Record<string, unknown[]>> {
  const out: Record<string, unknown[]> = {};
  for (const s of repo.TRACKING_STORES) out[s] = await db.getAll(s);
  out['latestMetricKeys'] = await db.getAllKeys('latestMetrics');
  return out;
}

describe('mlruns import in slices', () => {
  it('a parse sent in pieces joins back to the same tree, hashes and registry', async () => {
    const files = tree(PART_RUNS * 3 + 7);
    const whole = await prepareMlruns(files, { registry: true });
    const { rest, parts } = splitPrepared(await prepareMlruns(files, { registry: true }));
    expect(parts.filter((p) => p.kind === 'runs')).toHaveLength(4);
    expect(parts.filter((p) => p.kind === 'originals').length).toBe(
      Math.ceil(whole.tree.experiments[0]!.originals.size / PART_FILES),
    );
    // The pieces go through a structured clone, as they do between the worker and the page.
    const joined = joinPrepared(
      structuredClone(rest),
      parts.map((p) => structuredClone(p)),
    );
    expect(joined).toEqual(whole);
    expect([...joined.tree.experiments[0]!.runs.map((r) => r.info.runId)]).toEqual(
      whole.tree.experiments[0]!.runs.map((r) => r.info.runId),
    );
  });

  it('a stored zip entry is copied out of the zip before it is kept', async () => {
    const zip = zipSync(Object.fromEntries([...tree(2)].map(([p, b]) => [p, [b, { level: 0 }]])));
    const prepared = await prepareMlrunsOffThread(zip, { registry: false });
    for (const bytes of prepared.tree.experiments[0]!.originals.values()) {
      expect(bytes.byteLength).toBe(bytes.buffer.byteLength);
    }
  });

  it('a bad file is named in the error, off the main thread as on it', async () => {
    const files = tree(3);
    const bad = [...files.keys()].find((p) => p.endsWith('/metrics/acc'))!;
    files.set(bad, strToU8('not a metric line\n'));
    const err = await prepareMlrunsOffThread(zipSync(Object.fromEntries(files)), {
      registry: false,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MlrunsParseError);
    expect((err as MlrunsParseError).file).toContain('/metrics/acc');
  });

  it('lands 3,000 runs whole, letting other tasks run while it writes', async () => {
    const db = await freshDb();
    let ticks = 0;
    let running = true;
    const ticker = () => {
      ticks++;
      if (running) setTimeout(ticker, 0);
    };
    setTimeout(ticker, 0);
    const res = await importMlruns(db, tree(3000));
    running = false;
    expect(res.runs).toBe(3000);
    expect(res.metricPoints).toBe(6000);
    expect(await db.count('runs')).toBe(3000);
    expect(await db.count('mlrunsFiles')).toBe(1 + 3000 * 5);
    expect((await db.getAllKeys('latestMetrics')).length).toBe(3000);
    const one = (await repo.getExperimentRuns(db, EXP)).find((r) => r.runName === 'run-42')!;
    expect(one.params).toEqual({ lr: '0.042', bs: '0' });
    expect(one.metrics['acc']).toMatchObject({ step: 1, value: 43 / 3000 });
    expect(ticks).toBeGreaterThan(5);
  });

  it('a write that fails after many slices leaves the store as it was, naming the conflict', async () => {
    const db = await freshDb();
    await importMlruns(db, tree(5, '777'));
    const before = await dump(db);
    // A bundle that only fails at its last run: every slice before it was already placed.
    const prepared = await prepareMlruns(tree(3000), { registry: false });
    const x = prepared.tree.experiments[0]!;
    const runs = x.runs.map((r) => {
      const rec = repo.newRunRecord(r.info, r.tags);
      rec.params = { ...r.params };
      return rec;
    });
    const taken = (await repo.getExperimentRuns(db, '777'))[0]!;
    runs.push({ ...runs[0]!, runId: taken.runId });
    const err = await repo
      .writeImport(db, {
        experiments: [x.experiment],
        runs,
        history: x.runs.flatMap((r) => repo.packChunks(r.info.runId, 'acc', r.metrics['acc']!)),
        artifacts: [],
        files: [],
        replaceExperimentIds: [],
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MlflowError);
    expect((err as MlflowError).errorCode).toBe('RESOURCE_ALREADY_EXISTS');
    expect(await dump(db)).toEqual(before);
  });
});
