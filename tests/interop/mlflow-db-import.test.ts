// MLflow's own database (mlflow.db), written by real Python MLflow 3.x and 2.x, imported through
// sql.js: the app shows the experiments, runs, params, tags, metric histories, MLflow 3 logged
// models, registered models, versions and aliases that MlflowClient reports on the same file.
import 'fake-indexeddb/auto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/lib/store/db.ts';
import { TrackingClient } from '../../src/lib/services/tracking.ts';
import { RegistryClient } from '../../src/lib/services/registry.ts';
import {
  MlflowDbError,
  getLoggedModels,
  importMlflowDb,
  loadSqlJs,
} from '../../src/lib/services/mlflow-db.ts';
import { exportMlrunsFiles } from '../../src/lib/services/mlruns-io.ts';
import { loggedModelDoc, type LoggedModelsDump } from './support/logged-models.ts';
import { dumpApp, type StoreDump } from './support/app-view.ts';
import {
  PY,
  removeTempDirs,
  runPython,
  runPythonJson,
  tempDir,
  writeTree,
  type Flavour,
} from './support/python.ts';

afterAll(removeTempDirs);

describe.each(['mlflow3', 'mlflow2'] as Flavour[])('an mlflow.db written by %s', (flavour) => {
  const available = Boolean(PY[flavour]);
  let dbFile = '';
  let truth: StoreDump;

  beforeAll(async () => {
    if (!available) return;
    const dir = tempDir(`mlflow-db-${flavour}`);
    dbFile = join(dir, 'mlflow.db');
    const uri = `sqlite:///${dbFile}`;
    await runPythonJson(flavour, 'write_store.py', [uri, join(dir, 'artifacts')]);
    const truthPath = join(dir, 'truth.json');
    await runPython(flavour, 'dump_store.py', ['dump', uri, '--out', truthPath]);
    truth = JSON.parse(readFileSync(truthPath, 'utf8')) as StoreDump;
  });

  it.skipIf(!available)(
    'imports experiments, runs, params, tags, metric histories, registered models, versions and aliases as MlflowClient reports them',
    async () => {
      const db = await openDatabase({ name: `interop-mlflow-db-${flavour}` });
      const result = await importMlflowDb(db, new Uint8Array(readFileSync(dbFile)));
      expect(result.runs).toBe(truth.runs.length);

      const app = await dumpApp(new TrackingClient(db));
      expect(app.experiments).toEqual(truth.experiments);
      // Artifacts live under each experiment's artifact location, not in the database.
      const withoutArtifacts = (runs: StoreDump['runs']) => runs.map(({ artifacts: _, ...r }) => r);
      expect(withoutArtifacts(app.runs)).toEqual(withoutArtifacts(truth.runs));
      expect(app.runs.find((r) => r.run_name === 'to-delete')?.lifecycle_stage).toBe('deleted');

      const reg = new RegistryClient(db);
      for (const want of truth.registered_models) {
        const got = await reg.getRegisteredModel(want.name);
        expect(got.description, want.name).toBe(want.description ?? '');
        expect(got.tags, want.name).toEqual(want.tags);
        expect(got.aliases, want.name).toEqual(want.aliases);
        expect(got.creationTimestamp, want.name).toBe(want.creation_timestamp);
        const versions = await reg.listModelVersions(want.name);
        expect(
          versions
            .map((v) => ({
              version: v.version,
              source: v.source,
              run_id: v.runId || null,
              current_stage: v.currentStage,
              status: v.status,
              description: v.description || null,
              tags: v.tags,
              aliases: [...v.aliases].sort(),
              creation_timestamp: v.creationTimestamp,
            }))
            .sort((a, b) => Number(a.version) - Number(b.version)),
          want.name,
        ).toEqual(
          want.versions.map((v) => ({
            version: v.version,
            source: v.source,
            run_id: v.run_id,
            current_stage: v.current_stage,
            status: v.status,
            description: v.description,
            tags: v.tags,
            aliases: v.aliases,
            creation_timestamp: v.creation_timestamp,
          })),
        );
      }
      expect(truth.registered_models.map((m) => m.name)).toEqual(['interop-echo', 'interop-empty']);
    },
  );

  it.skipIf(!available)(
    'refuses a database whose alembic revision it does not know, naming the revision, and writes nothing',
    async () => {
      const SQL = await loadSqlJs();
      const copy = new SQL.Database(new Uint8Array(readFileSync(dbFile)));
      copy.run("UPDATE alembic_version SET version_num = 'fffffffffff0'");
      const bytes = copy.export();
      copy.close();
      const db = await openDatabase({ name: `interop-mlflow-db-refuse-${flavour}` });
      const err = await importMlflowDb(db, bytes, { fileName: 'future.db' }).catch((e) => e);
      expect(err).toBeInstanceOf(MlflowDbError);
      expect(String(err.message)).toMatch(/future\.db: alembic_version is 'fffffffffff0'/);
      expect(await new TrackingClient(db).listExperiments({ viewType: 'ALL' })).toEqual([]);
    },
  );
});

describe('MLflow 3 logged models in an mlflow.db', () => {
  const available = Boolean(PY.mlflow3);

  it.skipIf(!available)(
    'imports each logged model (id, name, experiment, source run, status, params, tags, metrics, model type, artifact location) and the runs that produced and used it, as MlflowClient reports them',
    async () => {
      const dir = tempDir('mlflow-db-logged-models');
      const file = join(dir, 'mlflow.db');
      const ids = await runPythonJson<Record<string, string>>('mlflow3', 'logged_models_db.py', [
        'write',
        `sqlite:///${file}`,
        join(dir, 'artifacts'),
      ]);
      const truthPath = join(dir, 'truth.json');
      await runPython('mlflow3', 'logged_models_db.py', [
        'dump',
        `sqlite:///${file}`,
        '--out',
        truthPath,
      ]);
      const truth = JSON.parse(readFileSync(truthPath, 'utf8')) as LoggedModelsDump;
      expect(truth.searched).toHaveLength(2);

      const db = await openDatabase({ name: 'interop-mlflow-db-logged-models' });
      const result = await importMlflowDb(db, new Uint8Array(readFileSync(file)));
      expect(result.loggedModels).toBe(3);
      const got = await getLoggedModels(db, ids.experiment_id!);

      // search_logged_models leaves out the soft-deleted one; the app keeps it, marked deleted.
      const active = got.loggedModels.filter((m) => m.lifecycleStage === 'active');
      expect(active.map((m) => m.modelId).sort()).toEqual(truth.searched);
      expect(got.loggedModels.find((m) => m.modelId === ids.deleted)?.lifecycleStage).toBe(
        'deleted',
      );
      expect(active.map(loggedModelDoc).sort((a, b) => (a.model_id < b.model_id ? -1 : 1))).toEqual(
        truth.logged_models.map(({ files: _, ...m }) => m),
      );
      const classifier = active.find((m) => m.modelId === ids.classifier)!;
      expect(classifier.params['optimizer/name']).toBe('adam');
      expect(classifier.metrics.find((p) => p.key === 'f1')?.datasetName).toBe('holdout');

      // Links: the trainer produced both models (the pyfunc at step 2), the evaluator used one.
      for (const run of truth.runs) {
        const outputs = got.links
          .filter((l) => l.runId === run.run_id && l.direction === 'output')
          .map((l) => ({ model_id: l.modelId, step: l.step }))
          .sort((a, b) => (a.model_id < b.model_id ? -1 : 1));
        const inputs = got.links
          .filter((l) => l.runId === run.run_id && l.direction === 'input')
          .map((l) => l.modelId)
          .sort();
        expect({ run_id: run.run_id, model_outputs: outputs, model_inputs: inputs }).toEqual(run);
      }
      expect(truth.runs.find((r) => r.run_id === ids.evaluator)?.model_inputs).toEqual([
        ids.classifier,
      ]);
      // An mlruns export carries them on: MLflow's file store reads the same models and links,
      // reporting (as it always does) only the newest point per metric key and dataset.
      const mlruns = join(dir, 'export', 'mlruns');
      writeTree(mlruns, await exportMlrunsFiles(db, { experimentIds: [ids.experiment_id!] }));
      const fromFiles = JSON.parse(
        await runPython('mlflow3', 'logged_models_db.py', ['dump', `file://${mlruns}`]),
      ) as LoggedModelsDump;
      const newestPerGroup = (points: LoggedModelsDump['logged_models'][number]['metrics']) => {
        const best = new Map<string, (typeof points)[number]>();
        for (const p of points) {
          const k = `${p.key}|${p.dataset_name}|${p.dataset_digest}`;
          const b = best.get(k);
          const later = b
            ? p.step - b.step || p.timestamp - b.timestamp || Number(p.value) - Number(b.value)
            : 1;
          if (later > 0) best.set(k, p);
        }
        return [...best.values()];
      };
      expect(fromFiles.searched).toEqual(truth.searched);
      expect(fromFiles.runs).toEqual(truth.runs);
      expect(fromFiles.logged_models).toEqual(
        truth.logged_models.map((m) => ({ ...m, metrics: newestPerGroup(m.metrics) })),
      );

      // The files stay where MLflow put them: the imported location still resolves to them.
      expect(
        Object.keys(
          truth.logged_models.find((m) => m.model_id === ids.classifier)!.files as object,
        ),
      ).toContain('MLmodel');
    },
  );
});
