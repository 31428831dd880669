// An mlruns store written by real Python MLflow (3.x and 2.x) is imported and shows exactly what
// MlflowClient reports; exported again, MlflowClient reads it back with nothing lost.
import 'fake-indexeddb/auto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/lib/store/db.ts';
import { TrackingClient } from '../../src/lib/services/tracking.ts';
import { exportMlrunsFiles, importMlruns } from '../../src/lib/services/mlruns-io.ts';
import { dumpApp, type StoreDump } from './support/app-view.ts';
import {
  PY,
  fileUri,
  readTree,
  removeTempDirs,
  runPython,
  runPythonJson,
  tempDir,
  writeTree,
  type Flavour,
} from './support/python.ts';

afterAll(removeTempDirs);

interface Written {
  experiments: { alpha: string; beta: string };
  ids: Record<string, string | null>;
}

describe.each(['mlflow3', 'mlflow2'] as Flavour[])('an mlruns store written by %s', (flavour) => {
  const available = Boolean(PY[flavour]);
  let store = '';
  let truthPath = '';
  let truth: StoreDump;
  let written: Written;
  let client: TrackingClient;

  beforeAll(async () => {
    if (!available) return;
    const dir = tempDir(`mlruns-${flavour}`);
    store = join(dir, 'mlruns');
    truthPath = join(dir, 'truth.json');
    written = await runPythonJson<Written>(flavour, 'write_store.py', [
      fileUri(store),
      join(dir, 'artifacts'),
    ]);
    await runPython(flavour, 'dump_store.py', ['dump', fileUri(store), '--out', truthPath]);
    truth = JSON.parse(readFileSync(truthPath, 'utf8')) as StoreDump;
    client = new TrackingClient(await openDatabase({ name: `interop-mlruns-${flavour}` }));
  });

  it.skipIf(!available)(
    'imports experiments, nested and deleted runs, params, tags, metric histories and artifacts exactly as MlflowClient reports them',
    async () => {
      const result = await importMlruns(client.db, readTree(store));
      expect(result.experimentIds.sort()).toEqual(truth.experiments.map((e) => e.experiment_id));

      const app = await dumpApp(client);
      expect(app.experiments).toEqual(truth.experiments);
      expect(app.runs.map((r) => r.run_id)).toEqual(truth.runs.map((r) => r.run_id));
      for (const [n, run] of app.runs.entries()) {
        expect(run, `run ${run.run_name}`).toEqual(truth.runs[n]);
      }
      // The cases the writer set up are really there (guards against a vacuous comparison).
      const byName = new Map(app.runs.map((r) => [r.run_name, r]));
      expect(byName.get('to-delete')?.lifecycle_stage).toBe('deleted');
      expect(byName.get('grandchild')?.tags['mlflow.parentRunId']).toBe(written.ids['child-1']);
      // 3.x log_model re-logs the run's metrics at the model's step: 6 points there, 5 in 2.x.
      expect(byName.get('parent')?.metric_history['loss']).toHaveLength(
        flavour === 'mlflow3' ? 6 : 5,
      );
      expect(new Set(byName.get('parent')?.metric_history['weird']?.map((p) => p.value))).toEqual(
        new Set(['NaN', 'Infinity', '-Infinity']),
      );
      // 2.x keeps the logged model among the run's artifacts; 3.x under the experiment's models/.
      expect(Object.keys(byName.get('parent')?.artifacts ?? {})).toEqual(
        expect.arrayContaining(['config/params.json', 'images/pattern.png', 'notes/readme.txt']),
      );
    },
  );

  it.skipIf(!available)(
    'exports them back into the same place, and MlflowClient reads the export with nothing lost',
    async () => {
      const files = await exportMlrunsFiles(client.db, {
        experimentIds: truth.experiments.map((e) => e.experiment_id),
      });
      // The registry folder is not part of a tracking export: keep Python's, judge the rest.
      const registry = new Map([...readTree(store)].filter(([p]) => p.startsWith('models/')));
      rmSync(store, { recursive: true, force: true });
      writeTree(store, files);
      writeTree(store, registry);
      const diff = await runPythonJson<unknown[]>(flavour, 'dump_store.py', [
        'diff',
        truthPath,
        fileUri(store),
      ]);
      expect(diff).toEqual([]);
    },
  );
});
