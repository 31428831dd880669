// The app's mlflow.db export, judged by real MLflow 3.x: MlflowClient on the file, and
// `mlflow server` serving it (with the artifact proxy for what the app logged itself), both see
// what Python wrote before the import, with nothing lost.
import 'fake-indexeddb/auto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/lib/store/db.ts';
import { TrackingClient } from '../../src/lib/services/tracking.ts';
import {
  SCHEMA_REVISION,
  exportArtifactBytes,
  exportMlflowDb,
  getLoggedModels,
  importMlflowDb,
  readMlflowDbFile,
} from '../../src/lib/services/mlflow-db.ts';
import { dumpApp, type StoreDump } from './support/app-view.ts';
import { startMlflowServer, type MlflowServer } from './support/mlflow-server.ts';
import { PY, removeTempDirs, runPython, runPythonJson, tempDir } from './support/python.ts';

const available = Boolean(PY.mlflow3);
let server: MlflowServer | undefined;

afterAll(async () => {
  await server?.stop();
  removeTempDirs();
});

// Nothing is left out of the comparison: logged models included.
const IGNORE: string[] = [];

describe('an mlflow.db exported by the app', () => {
  let dir = '';
  let truthPath = '';
  let truth: StoreDump;
  let client: TrackingClient;
  let appExperimentId = '';
  let sourceRevision = '';

  beforeAll(async () => {
    if (!available) return;
    dir = tempDir('mlflow-db-export');
    const source = join(dir, 'source.db');
    await runPythonJson('mlflow3', 'write_store.py', [`sqlite:///${source}`, join(dir, 'files')]);
    truthPath = join(dir, 'truth.json');
    await runPython('mlflow3', 'dump_store.py', [
      'dump',
      `sqlite:///${source}`,
      '--out',
      truthPath,
    ]);
    truth = JSON.parse(readFileSync(truthPath, 'utf8')) as StoreDump;
    client = new TrackingClient(await openDatabase({ name: 'interop-mlflow-db-export' }));
    const result = await importMlflowDb(client.db, new Uint8Array(readFileSync(source)));
    sourceRevision = result.alembicRevision;

    // Work done in the app itself: its artifacts exist only in the browser store.
    appExperimentId = await client.createExperiment('made-in-tabflow', { tags: { origin: 'app' } });
    const run = await client.startRun({ experimentId: appExperimentId, runName: 'browser-run' });
    await client.logParams(run.runId, { lr: 0.001, epochs: 3 });
    for (let from = 0; from < 2500; from += 1000) {
      await client.logBatch(run.runId, {
        metrics: Array.from({ length: Math.min(1000, 2500 - from) }, (_, n) => ({
          key: 'loss',
          value: 1 / (from + n + 1),
          timestamp: 1_700_000_000_000 + from + n,
          step: from + n,
        })),
      });
    }
    await client.logText(run.runId, 'made in the browser\n', 'notes/hello.txt');
    await client.logDict(run.runId, { layers: [4, 8] }, 'config.json');
    await client.endRun(run.runId, 'FINISHED', 1_700_000_100_000);
  });

  it.skipIf(!available)(
    'has the schema of the interop MLflow, and reads back into the same entities',
    async () => {
      // The shipped schema is the one the interop MLflow writes (regenerate it when that moves).
      expect(sourceRevision).toBe(SCHEMA_REVISION);
      const out = await exportMlflowDb(client.db);
      const back = await readMlflowDbFile(out.database);
      expect(back.alembicRevision).toBe(out.alembicRevision);
      expect(back.experiments.map((e) => e.experimentId).sort()).toEqual(
        [...truth.experiments.map((e) => e.experiment_id), appExperimentId].sort(),
      );
      expect(back.runs).toHaveLength(truth.runs.length + 1);
    },
  );

  it.skipIf(!available)(
    'is read by MlflowClient (sqlite:///) exactly as Python wrote the source database',
    async () => {
      const out = await exportMlflowDb(client.db, {
        experimentIds: truth.experiments.map((e) => e.experiment_id),
      });
      const file = join(dir, 'export-python-only.db');
      writeFileSync(file, out.database);
      const diff = await runPythonJson<unknown[]>('mlflow3', 'dump_store.py', [
        'diff',
        truthPath,
        `sqlite:///${file}`,
        ...IGNORE,
      ]);
      expect(diff).toEqual([]);
    },
  );

  it.skipIf(!available)(
    'is served by `mlflow server` with nothing lost, the app-made artifacts through the artifact proxy',
    async () => {
      const out = await exportMlflowDb(client.db);
      const served = join(dir, 'served');
      const file = join(served, 'mlflow.db');
      mkdirSync(served, { recursive: true });
      writeFileSync(file, out.database);
      const destination = join(served, 'mlartifacts');
      for (const a of out.artifacts) {
        const target = join(destination, ...a.path.split('/'));
        mkdirSync(dirname(target), { recursive: true });
        writeFileSync(target, await exportArtifactBytes(client.db, a));
      }
      expect(out.artifacts.map((a) => a.artifactPath).sort()).toEqual([
        'config.json',
        'notes/hello.txt',
      ]);
      server = await startMlflowServer({
        backendStoreUri: `sqlite:///${file}`,
        artifactsDestination: destination,
      });

      // Expected: what Python wrote, plus the app-made experiment as the app shows it.
      const app = await dumpApp(client);
      const expected: StoreDump = {
        ...truth,
        experiments: [
          ...truth.experiments,
          ...app.experiments.filter((e) => e.experiment_id === appExperimentId),
        ],
        runs: [...truth.runs, ...app.runs.filter((r) => r.experiment_id === appExperimentId)],
      };
      const expectedPath = join(dir, 'expected-served.json');
      writeFileSync(expectedPath, JSON.stringify(expected));
      const diff = await runPythonJson<unknown[]>('mlflow3', 'dump_store.py', [
        'diff',
        expectedPath,
        server.url,
        ...IGNORE,
        // Over REST an unset description, user id or run link arrives as "".
        '--empty-is-null',
      ]);
      expect(diff).toEqual([]);
      const appRun = app.runs.find((r) => r.experiment_id === appExperimentId);
      expect(appRun?.metric_history['loss']).toHaveLength(2500);
    },
  );
});

describe('an mlflow.db exported with the MLflow 2.x schema', () => {
  const has2 = Boolean(PY.mlflow2);

  it.skipIf(!has2)(
    'is read by MLflow 2.x MlflowClient exactly as MLflow 2.x wrote the source database',
    async () => {
      const dir = tempDir('mlflow-db-export-2x');
      const source = join(dir, 'source.db');
      await runPythonJson('mlflow2', 'write_store.py', [`sqlite:///${source}`, join(dir, 'files')]);
      const truth = join(dir, 'truth.json');
      await runPython('mlflow2', 'dump_store.py', ['dump', `sqlite:///${source}`, '--out', truth]);
      const db = await openDatabase({ name: 'interop-mlflow-db-export-2x' });
      const imported = await importMlflowDb(db, new Uint8Array(readFileSync(source)));
      const out = await exportMlflowDb(db, { mlflowVersion: '2.22.5' });
      // The source's own revision: MLflow 2.22 opens the export without migrating it.
      expect(out.alembicRevision).toBe(imported.alembicRevision);
      const file = join(dir, 'export.db');
      writeFileSync(file, out.database);
      const diff = await runPythonJson<unknown[]>('mlflow2', 'dump_store.py', [
        'diff',
        truth,
        `sqlite:///${file}`,
      ]);
      expect(diff).toEqual([]);
    },
  );
});

describe('MLflow 3 logged models in an mlflow.db exported by the app', () => {
  let dir = '';
  let truthPath = '';
  let db: Awaited<ReturnType<typeof openDatabase>>;

  beforeAll(async () => {
    if (!available) return;
    dir = tempDir('mlflow-db-export-logged-models');
    const source = join(dir, 'source.db');
    await runPythonJson('mlflow3', 'logged_models_db.py', [
      'write',
      `sqlite:///${source}`,
      join(dir, 'artifacts'),
    ]);
    truthPath = join(dir, 'truth.json');
    await runPython('mlflow3', 'logged_models_db.py', [
      'dump',
      `sqlite:///${source}`,
      '--out',
      truthPath,
    ]);
    db = await openDatabase({ name: 'interop-mlflow-db-export-logged-models' });
    await importMlflowDb(db, new Uint8Array(readFileSync(source)));
  });

  it.skipIf(!available)(
    'are read back by MlflowClient (get_logged_model, search_logged_models, run outputs and inputs, files at their artifact location) with nothing changed',
    async () => {
      const out = await exportMlflowDb(db);
      expect(out.omittedLoggedModels).toBe(0);
      const file = join(dir, 'export.db');
      writeFileSync(file, out.database);
      const diff = await runPythonJson<unknown[]>('mlflow3', 'logged_models_db.py', [
        'diff',
        truthPath,
        `sqlite:///${file}`,
      ]);
      expect(diff).toEqual([]);
      // Exported again from a database that went through the app once more: the same rows.
      const again = await openDatabase({ name: 'interop-mlflow-db-export-logged-models-2' });
      await importMlflowDb(again, out.database);
      const [first] = await Promise.all([readMlflowDbFile(out.database)]);
      const second = await readMlflowDbFile((await exportMlflowDb(again)).database);
      expect(second.loggedModels).toEqual(first.loggedModels);
      expect(second.loggedModelLinks).toEqual(first.loggedModelLinks);
    },
  );

  it.skipIf(!available)('are served by `mlflow server` with nothing lost', async () => {
    const out = await exportMlflowDb(db);
    const served = join(dir, 'served');
    mkdirSync(served, { recursive: true });
    const file = join(served, 'mlflow.db');
    writeFileSync(file, out.database);
    const local = await startMlflowServer({
      backendStoreUri: `sqlite:///${file}`,
      artifactsDestination: join(served, 'mlartifacts'),
    });
    try {
      const diff = await runPythonJson<unknown[]>('mlflow3', 'logged_models_db.py', [
        'diff',
        truthPath,
        local.url,
        // Over REST an unset status message arrives as "".
        '--empty-is-null',
      ]);
      expect(diff).toEqual([]);
    } finally {
      await local.stop();
    }
  });

  it.skipIf(!available)(
    'leave a 2.x-schema export without logged models, and say how many were left out',
    async () => {
      const out = await exportMlflowDb(db, { mlflowVersion: '2.22.5' });
      expect(out.omittedLoggedModels).toBe(3);
      const back = await readMlflowDbFile(out.database);
      expect(back.loggedModels).toEqual([]);
      expect(
        (
          await getLoggedModels(
            db,
            back.experiments.find((e) => e.name === 'interop-logged-models')!.experimentId,
          )
        ).loggedModels,
      ).toHaveLength(3);
    },
  );
});
