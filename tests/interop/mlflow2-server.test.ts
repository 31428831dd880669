// The app's mlflow.db export with the MLflow 2.x schema, served by MLflow 2.x itself:
// `mlflow server --backend-store-uri sqlite:///<export>` from the 2.22 venv on 127.0.0.1, read
// over REST by 2.x's MlflowClient, shows what Python 2.x wrote before the import (and the run
// made in the app, its artifacts through the artifact proxy), with nothing lost.
import 'fake-indexeddb/auto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/lib/store/db.ts';
import { readBlobBytes } from '../../src/lib/store/blobs.ts';
import { TrackingClient } from '../../src/lib/services/tracking.ts';
import { exportMlflowDb, importMlflowDb } from '../../src/lib/services/mlflow-db.ts';
import { dumpApp, type StoreDump } from './support/app-view.ts';
import { startMlflowServer, type MlflowServer } from './support/mlflow-server.ts';
import { PY, removeTempDirs, runPython, runPythonJson, tempDir } from './support/python.ts';

const available = Boolean(PY.mlflow2);
const MLFLOW2 = '2.22.5';
let server: MlflowServer | undefined;

afterAll(async () => {
  await server?.stop();
  removeTempDirs();
});

describe('an mlflow.db exported with the MLflow 2.x schema, served by MLflow 2.x', () => {
  let dir = '';
  let truth: StoreDump;
  let client: TrackingClient;
  let appExperimentId = '';
  let sourceRevision = '';

  beforeAll(async () => {
    if (!available) return;
    dir = tempDir('mlflow2-server');
    const source = join(dir, 'source.db');
    await runPythonJson('mlflow2', 'write_store.py', [`sqlite:///${source}`, join(dir, 'files')]);
    const truthPath = join(dir, 'truth.json');
    await runPython('mlflow2', 'dump_store.py', [
      'dump',
      `sqlite:///${source}`,
      '--out',
      truthPath,
    ]);
    truth = JSON.parse(readFileSync(truthPath, 'utf8')) as StoreDump;
    client = new TrackingClient(await openDatabase({ name: 'interop-mlflow2-server' }));
    sourceRevision = (await importMlflowDb(client.db, new Uint8Array(readFileSync(source))))
      .alembicRevision;

    // A run made in the app: its artifacts exist only in the browser store.
    appExperimentId = await client.createExperiment('made-in-tabflow', { tags: { origin: 'app' } });
    const run = await client.startRun({ experimentId: appExperimentId, runName: 'browser-run' });
    await client.logParams(run.runId, { lr: 0.001, epochs: 3 });
    for (let from = 0; from < 1200; from += 600) {
      await client.logBatch(run.runId, {
        metrics: Array.from({ length: 600 }, (_, n) => ({
          key: 'loss',
          value: 1 / (from + n + 1),
          timestamp: 1_700_000_000_000 + from + n,
          step: from + n,
        })),
      });
    }
    await client.logText(run.runId, 'made in the browser\n', 'notes/hello.txt');
    await client.endRun(run.runId, 'FINISHED', 1_700_000_100_000);
  });

  it.skipIf(!available)(
    'is opened by `mlflow server` 2.22 and MlflowClient over REST reads what was exported',
    async () => {
      const out = await exportMlflowDb(client.db, { mlflowVersion: MLFLOW2 });
      expect(out.mlflowVersion).toBe(MLFLOW2);
      // The revision 2.x wrote: its server opens the file without migrating it.
      expect(out.alembicRevision).toBe(sourceRevision);
      const served = join(dir, 'served');
      const file = join(served, 'mlflow.db');
      mkdirSync(served, { recursive: true });
      writeFileSync(file, out.database);
      const destination = join(served, 'mlartifacts');
      for (const a of out.artifacts) {
        const target = join(destination, ...a.path.split('/'));
        mkdirSync(dirname(target), { recursive: true });
        writeFileSync(target, await readBlobBytes(client.db, a.blobId));
      }
      expect(out.artifacts.map((a) => a.artifactPath)).toEqual(['notes/hello.txt']);

      server = await startMlflowServer({
        flavour: 'mlflow2',
        backendStoreUri: `sqlite:///${file}`,
        artifactsDestination: destination,
      });
      const app = await dumpApp(client);
      const expected: StoreDump = {
        ...truth,
        experiments: [
          ...truth.experiments,
          ...app.experiments.filter((e) => e.experiment_id === appExperimentId),
        ],
        runs: [...truth.runs, ...app.runs.filter((r) => r.experiment_id === appExperimentId)],
      };
      // Guards against a vacuous comparison: the cases the writer made are in the expectation.
      expect(expected.runs.some((r) => r.lifecycle_stage === 'deleted')).toBe(true);
      expect(expected.registered_models.flatMap((m) => m.versions)).not.toHaveLength(0);
      const expectedPath = join(dir, 'expected-served.json');
      writeFileSync(expectedPath, JSON.stringify(expected));
      const diff = await runPythonJson<unknown[]>('mlflow2', 'dump_store.py', [
        'diff',
        expectedPath,
        server.url,
        // Over REST an unset description, user id or run link arrives as "".
        '--empty-is-null',
      ]);
      expect(diff, server.log().slice(-2000)).toEqual([]);
      const appRun = app.runs.find((r) => r.experiment_id === appExperimentId);
      expect(appRun?.metric_history['loss']).toHaveLength(1200);
      expect(Object.keys(appRun?.artifacts ?? {})).toEqual(['notes/hello.txt']);
    },
  );
});
