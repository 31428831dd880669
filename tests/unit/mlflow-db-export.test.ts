// Exporting the app's store as MLflow's own database (mlflow.db) and reading it back: the same
// experiments, runs, histories and registry, with MLflow's storage rules (NaN as is_nan, infinities
// clamped, experiment ids as 64-bit integers, latest_metrics as the SQL store keeps them).
import 'fake-indexeddb/auto';
import { describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/lib/store/db.ts';
import { TrackingClient } from '../../src/lib/services/tracking.ts';
import { RegistryClient } from '../../src/lib/services/registry.ts';
import {
  MlflowDbError,
  SCHEMA_REVISION,
  exportMlflowDb,
  importMlflowDb,
  loadSqlJs,
  readMlflowDbFile,
} from '../../src/lib/services/mlflow-db.ts';
import { latestMetric } from '../../src/lib/mlflow/sqlite/writer.ts';
import { KNOWN_ALEMBIC_REVISIONS } from '../../src/lib/mlflow/sqlite/reader.ts';

let n = 0;
const fresh = async () =>
  new TrackingClient(await openDatabase({ name: `mlflow-db-export-${n++}` }));

describe('mlflow.db export', () => {
  it('writes a revision the reader knows, with the tables MLflow created', async () => {
    expect(KNOWN_ALEMBIC_REVISIONS).toContain(SCHEMA_REVISION);
    const out = await exportMlflowDb((await fresh()).db);
    const SQL = await loadSqlJs();
    const db = new SQL.Database(out.database);
    const tables = db.exec("SELECT name FROM sqlite_master WHERE type = 'table'")[0]!.values.flat();
    expect(tables).toEqual(
      expect.arrayContaining([
        'experiments',
        'runs',
        'metrics',
        'latest_metrics',
        'model_versions',
      ]),
    );
    expect(db.exec('SELECT version_num FROM alembic_version')[0]!.values).toEqual([
      [SCHEMA_REVISION],
    ]);
    db.close();
  });

  it('reads back the same experiments, runs, params, tags and full metric histories', async () => {
    const client = await fresh();
    const exp = await client.createExperiment('exported', { tags: { team: 'ünï ✓' } });
    const run = await client.startRun({ experimentId: exp, runName: 'r1', startTime: 1000 });
    await client.logParams(run.runId, { lr: 0.1, name: "it's" });
    await client.logBatch(run.runId, {
      metrics: [
        { key: 'loss', value: 1, timestamp: 10, step: 0 },
        { key: 'loss', value: 0.5, timestamp: 11, step: 1 },
        { key: 'loss', value: 0.5, timestamp: 11, step: 1 },
        { key: 'odd', value: NaN, timestamp: 10, step: 0 },
        { key: 'odd', value: Infinity, timestamp: 11, step: 1 },
        { key: 'odd', value: -Infinity, timestamp: 12, step: 2 },
      ],
    });
    await client.setTag(run.runId, 'note', 'x'.repeat(7000));
    await client.endRun(run.runId, 'FAILED', 2000);

    const out = await exportMlflowDb(client.db);
    const back = await readMlflowDbFile(out.database);
    // The app's experiment ids are 18 digits: past 2^53, so every digit must survive.
    expect(exp).toMatch(/^\d{18}$/);
    expect(back.experiments).toEqual([await client.getExperiment(exp)]);
    const [r] = back.runs;
    expect(r!.info).toEqual(await client.getRun(run.runId).then((x) => x.info));
    expect(r!.params).toEqual({ lr: '0.1', name: "it's" });
    expect(r!.tags.note).toHaveLength(7000);
    // MLflow's metrics table keeps one row per distinct point.
    expect(r!.metrics.loss!.map((m) => [m.step, m.value])).toEqual([
      [0, 1],
      [1, 0.5],
    ]);
    expect(r!.metrics.odd!.map((m) => m.value)).toEqual([
      NaN,
      1.7976931348623157e308,
      -1.7976931348623157e308,
    ]);
  });

  it('keeps registered models, versions, stages, tags and aliases, and imports into a fresh store', async () => {
    const client = await fresh();
    const reg = new RegistryClient(client.db);
    await reg.createRegisteredModel('m', { description: 'desc', tags: { owner: 'me' } });
    const exp = await client.createExperiment('e');
    const run = await client.startRun({ experimentId: exp });
    await client.logText(
      run.runId,
      'flavors:\n  python_function:\n    loader_module: x\n',
      'model/MLmodel',
    );
    await reg.registerModelFromRun('m', run.runId, 'model');
    await reg.registerModelFromRun('m', run.runId, 'model', { description: 'second' });
    await reg.setRegisteredModelAlias('m', 'champion', 1);
    await reg.transitionModelVersionStage('m', 2, 'Production');
    await reg.setModelVersionTag('m', 2, 'k', 'v');

    const out = await exportMlflowDb(client.db);
    const target = await fresh();
    await importMlflowDb(target.db, out.database);
    const reg2 = new RegistryClient(target.db);
    const want = await reg.getRegisteredModel('m');
    const got = await reg2.getRegisteredModel('m');
    expect({ ...got, latestVersions: [] }).toEqual({ ...want, latestVersions: [] });
    const strip = (v: Awaited<ReturnType<RegistryClient['listModelVersions']>>[number]) => {
      const { origin: _o, servable: _s, size: _z, ...rest } = v;
      return rest;
    };
    expect((await reg2.listModelVersions('m')).map(strip)).toEqual(
      (await reg.listModelVersions('m')).map(strip),
    );
  });

  it('writes the MLflow 2.x schema on request, and refuses a version it has no schema for', async () => {
    const client = await fresh();
    const exp = await client.createExperiment('two');
    await client.startRun({ experimentId: exp, runName: 'r' });
    const out = await exportMlflowDb(client.db, { mlflowVersion: '2.22.5' });
    expect(out.alembicRevision).toBe('0584bdc529eb');
    const back = await readMlflowDbFile(out.database);
    expect(back.alembicRevision).toBe('0584bdc529eb');
    expect(back.runs.map((r) => r.info.runName)).toEqual(['r']);
    await expect(exportMlflowDb(client.db, { mlflowVersion: '1.0' })).rejects.toThrow(
      /No mlflow.db schema for MLflow 1.0; available: 3.17.2, 2.22.5/,
    );
  });

  it('refuses an experiment id that is not a number, naming it', async () => {
    const client = await fresh();
    await client.createExperiment('odd-id', { experimentId: 'abc' });
    await expect(exportMlflowDb(client.db)).rejects.toThrow(MlflowDbError);
    await expect(exportMlflowDb(client.db)).rejects.toThrow(/experiment id 'abc'/);
  });

  it('keeps the latest metric MLflow keeps: max step, then timestamp, then value, later ties win', () => {
    const p = (step: number, timestamp: number, value: number) => ({
      key: 'k',
      step,
      timestamp,
      value,
    });
    expect(latestMetric([p(2, 5, 1), p(1, 9, 9)])).toEqual(p(2, 5, 1));
    expect(latestMetric([p(1, 5, 1), p(1, 6, 0)])).toEqual(p(1, 6, 0));
    expect(latestMetric([p(1, 5, 3), p(1, 5, 2)])).toEqual(p(1, 5, 3));
    expect(latestMetric([p(1, 5, NaN), p(1, 5, 0)])).toEqual(p(1, 5, 0));
  });
});
