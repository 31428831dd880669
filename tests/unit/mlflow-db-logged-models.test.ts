// MLflow 3 logged models between MLflow's own database and the file store's models/ folders (the
// form the app keeps them in): both directions give back the same models, the SQL store's
// storage rules hold (NaN as 0, infinities clamped), and a damaged file is named with its line.
import 'fake-indexeddb/auto';
import { describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/lib/store/db.ts';
import {
  exportArtifactBytes,
  exportMlflowDb,
  getLoggedModels,
  loadSqlJs,
  readMlflowDbFile,
} from '../../src/lib/services/mlflow-db.ts';
import { importMlruns } from '../../src/lib/services/mlruns-io.ts';
import { writeExperimentFolder } from '../../src/lib/mlflow/mlruns/writer.ts';
import {
  LoggedModelFileError,
  loggedModelFiles,
  loggedModelLinkFile,
  loggedModelsFromFiles,
  readLoggedModels,
  writeLoggedModels,
  type LoggedModel,
  type LoggedModelLink,
} from '../../src/lib/mlflow/sqlite/logged-models.ts';
import { LATEST_SCHEMA, createSchema } from '../../src/lib/mlflow/sqlite/writer.ts';

const RUN = 'a'.repeat(32);
const OTHER_RUN = 'b'.repeat(32);

function model(over: Partial<LoggedModel> = {}): LoggedModel {
  return {
    modelId: 'm-0123456789abcdef0123456789abcdef',
    experimentId: '606783375233873416',
    name: 'classifier',
    artifactLocation:
      'mlflow-artifacts:/606783375233873416/models/m-0123456789abcdef0123456789abcdef/artifacts',
    creationTimestamp: 1_750_000_000_000,
    lastUpdatedTimestamp: 1_750_000_000_500,
    status: 'LOGGED_MODEL_READY',
    statusMessage: null,
    modelType: 'agent',
    sourceRunId: RUN,
    lifecycleStage: 'active',
    tags: { 'mlflow.user': 'ana', stage: 'it\'s "new"', 'ünï/code': '✓' },
    params: { lr: '0.01', 'optimizer/name': 'adam', empty: '' },
    metrics: [
      {
        key: 'acc',
        value: 0.5,
        timestamp: 1,
        step: 0,
        runId: RUN,
        datasetName: null,
        datasetDigest: null,
      },
      {
        key: 'acc',
        value: 1e-5,
        timestamp: 2,
        step: 1,
        runId: RUN,
        datasetName: null,
        datasetDigest: null,
      },
      {
        key: 'f1',
        value: 0.25,
        timestamp: 3,
        step: 1,
        runId: RUN,
        datasetName: 'holdout',
        datasetDigest: 'e291a2ce',
      },
      {
        key: 'big',
        value: 1e16,
        timestamp: 4,
        step: 0,
        runId: OTHER_RUN,
        datasetName: null,
        datasetDigest: null,
      },
    ],
    ...over,
  };
}

const LINKS: LoggedModelLink[] = [
  { runId: RUN, modelId: model().modelId, direction: 'output', step: 2 },
  { runId: OTHER_RUN, modelId: model().modelId, direction: 'input', step: 0 },
];

async function sqlDb() {
  const SQL = await loadSqlJs();
  const db = new SQL.Database();
  const exec = {
    run(sql: string, params?: Array<string | number | null>) {
      db.run(sql, params ?? []);
    },
  };
  const rows = {
    rows(sql: string, params?: Array<string | number | null>) {
      const stmt = db.prepare(sql);
      if (params) stmt.bind(params);
      const out: Array<Record<string, unknown>> = [];
      while (stmt.step()) out.push(stmt.getAsObject());
      stmt.free();
      return out;
    },
  };
  createSchema(exec, LATEST_SCHEMA);
  const tables = new Set(
    rows.rows("SELECT name FROM sqlite_master WHERE type = 'table'").map((r) => String(r.name)),
  );
  return { db, exec, rows, tables };
}

describe('logged models in mlflow.db', () => {
  it('read back as written, with their run links', async () => {
    const { exec, rows, tables } = await sqlDb();
    const deleted = model({
      modelId: 'm-ffffffffffffffffffffffffffffffff',
      name: 'gone',
      lifecycleStage: 'deleted',
      status: 'LOGGED_MODEL_UPLOAD_FAILED',
      statusMessage: 'upload failed',
      sourceRunId: null,
      modelType: null,
      creationTimestamp: 1_750_000_000_001,
      tags: {},
      params: {},
      metrics: [],
    });
    writeLoggedModels(exec, [model(), deleted], LINKS);
    const back = readLoggedModels(rows, tables);
    expect(back.loggedModels).toEqual([model(), deleted]);
    expect(back.links).toEqual(LINKS);
    // The experiment id past 2^53 keeps every digit.
    expect(rows.rows('SELECT CAST(experiment_id AS TEXT) AS e FROM logged_models')[0]!.e).toBe(
      '606783375233873416',
    );
  });

  it('stores NaN as 0 and infinities clamped, as the SQL store does', async () => {
    const { exec, rows, tables } = await sqlDb();
    const m = model({
      metrics: [
        {
          key: 'x',
          value: NaN,
          timestamp: 1,
          step: 0,
          runId: RUN,
          datasetName: null,
          datasetDigest: null,
        },
        {
          key: 'x',
          value: Infinity,
          timestamp: 2,
          step: 1,
          runId: RUN,
          datasetName: null,
          datasetDigest: null,
        },
        {
          key: 'x',
          value: -Infinity,
          timestamp: 3,
          step: 2,
          runId: RUN,
          datasetName: null,
          datasetDigest: null,
        },
      ],
    });
    writeLoggedModels(exec, [m], []);
    expect(readLoggedModels(rows, tables).loggedModels[0]!.metrics.map((p) => p.value)).toEqual([
      0, 1.7976931348623157e308, -1.7976931348623157e308,
    ]);
  });

  it('is empty for a database without the tables (MLflow 2.x)', () => {
    expect(readLoggedModels({ rows: () => [] }, new Set(['runs']))).toEqual({
      loggedModels: [],
      links: [],
    });
  });
});

describe('logged models as file-store folders', () => {
  it('round-trip: files -> models -> the same files', () => {
    const files = new Map(loggedModelFiles(model()));
    for (const l of LINKS) {
      const [rel, bytes] = loggedModelLinkFile(l);
      files.set(rel, bytes);
    }
    const back = loggedModelsFromFiles(model().experimentId, files);
    // Points come back grouped by key (one metric file per key).
    const m = model();
    const byKey = [...m.metrics].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    expect(back.loggedModels).toEqual([{ ...m, metrics: byKey }]);
    expect(back.links).toEqual(LINKS);
    expect(new Map(loggedModelFiles(back.loggedModels[0]!))).toEqual(
      new Map(loggedModelFiles({ ...m, metrics: byKey })),
    );
  });

  it('writes meta.yaml, metric lines and link files the way MLflow 3 file store does', () => {
    const dec = new TextDecoder();
    const files = loggedModelFiles(model());
    const base = `models/${model().modelId}`;
    expect(dec.decode(files.get(`${base}/meta.yaml`))).toBe(
      [
        `artifact_location: ${model().artifactLocation}`,
        'creation_timestamp: 1750000000000',
        "experiment_id: '606783375233873416'",
        'last_updated_timestamp: 1750000000500',
        'lifecycle_stage: active',
        `model_id: ${model().modelId}`,
        'model_type: agent',
        'name: classifier',
        `source_run_id: ${RUN}`,
        'status: 2',
        'status_message: null',
        '',
      ].join('\n'),
    );
    expect(dec.decode(files.get(`${base}/metrics/acc`))).toBe(`1 0.5 0 ${RUN}\n2 1e-05 1 ${RUN}\n`);
    expect(dec.decode(files.get(`${base}/metrics/f1`))).toBe(`3 0.25 1 ${RUN} holdout e291a2ce\n`);
    expect(dec.decode(files.get(`${base}/params/optimizer/name`))).toBe('adam');
    const [outPath, outBytes] = loggedModelLinkFile(LINKS[0]!);
    expect(outPath).toBe(`${RUN}/outputs/${model().modelId}/meta.yaml`);
    expect(dec.decode(outBytes)).toBe(
      `destination_id: ${model().modelId}\ndestination_type: MODEL_OUTPUT\nsource_id: ${model().modelId}\nsource_type: RUN_OUTPUT\nstep: 2\ntags: {}\n`,
    );
  });

  it('reads the folder MLflow 3.17 file store wrote', () => {
    const enc = new TextEncoder();
    const id = 'm-b416827b956c4cd1b505d05752749cfb';
    const run = 'cb6aa2fe65c943e68c9e6b269ee3ab0c';
    const files = new Map([
      [
        `models/${id}/meta.yaml`,
        enc.encode(
          `artifact_location: file:///home/u/mlruns/0/models/${id}/artifacts\ncreation_timestamp: 1795620438314\nexperiment_id: '0'\nlast_updated_timestamp: 1795620438314\nlifecycle_stage: active\nmodel_id: ${id}\nmodel_type: agent\nname: x\nsource_run_id: ${run}\nstatus: 1\nstatus_message: null\n`,
        ),
      ],
      [
        `models/${id}/metrics/acc`,
        enc.encode(`1795620438321 0.5 2 ${run}\n1795620438321 0.75 3 ${run}\n`),
      ],
      [`models/${id}/params/a`, enc.encode('1')],
      [`models/${id}/tags/t`, enc.encode('v')],
      [
        `${run}/inputs/97b128571f85e6a453a11fe5e9b98585/meta.yaml`,
        enc.encode(
          `destination_id: ${id}\ndestination_type: RUN\nsource_id: ${id}\nsource_type: MODEL\ntags: {}\n`,
        ),
      ],
    ]);
    const { loggedModels, links } = loggedModelsFromFiles('0', files);
    expect(loggedModels[0]).toMatchObject({
      modelId: id,
      status: 'LOGGED_MODEL_PENDING',
      params: { a: '1' },
      tags: { t: 'v' },
      metrics: [
        { key: 'acc', value: 0.5, step: 2, runId: run },
        { key: 'acc', value: 0.75, step: 3, runId: run },
      ],
    });
    expect(links).toEqual([{ runId: run, modelId: id, direction: 'input', step: 0 }]);
    // The input folder name is MLflow's md5(model_id + run_id).
    expect(loggedModelLinkFile(links[0]!)[0]).toBe(
      `${run}/inputs/97b128571f85e6a453a11fe5e9b98585/meta.yaml`,
    );
  });

  it('names the file and line of a damaged metric, and refuses keys that are not paths', () => {
    const files = new Map(loggedModelFiles(model()));
    files.set(
      `models/${model().modelId}/metrics/acc`,
      new TextEncoder().encode('1 0.5 0 r\n1 x\n'),
    );
    expect(() => loggedModelsFromFiles('7', files)).toThrowError(
      new LoggedModelFileError(
        `7/models/${model().modelId}/metrics/acc:2`,
        'expected "<timestamp> <value> <step> <run_id>[ <dataset_name> <dataset_digest>]"',
      ),
    );
    expect(() => loggedModelFiles(model({ params: { '../escape': 'x' } }))).toThrow(
      /key '\.\.\/escape' cannot be a file-store path/,
    );
  });
});

describe('logged models imported from an mlruns folder', () => {
  it('go into an mlflow.db export, their files through the artifact proxy', async () => {
    const expId = '5';
    const m = model({
      experimentId: expId,
      artifactLocation: `file:///x/mlruns/5/models/${model().modelId}/artifacts`,
    });
    const folder = writeExperimentFolder(
      {
        experimentId: expId,
        name: 'from-file-store',
        artifactLocation: 'file:///x/mlruns/5',
        lifecycleStage: 'active',
        creationTime: 1,
        lastUpdateTime: 1,
        tags: {},
      },
      [RUN, OTHER_RUN].map((runId) => ({
        info: {
          runId,
          experimentId: expId,
          runName: runId.slice(0, 4),
          userId: 'ana',
          status: 'FINISHED' as const,
          startTime: 1,
          endTime: 2,
          artifactUri: `file:///x/mlruns/5/${runId}/artifacts`,
          lifecycleStage: 'active' as const,
        },
        deletedTime: null,
        params: {},
        tags: {},
        metrics: {},
        inputs: [],
      })),
    ).files;
    const files = new Map<string, Uint8Array>();
    for (const [rel, bytes] of folder) files.set(`mlruns/${expId}/${rel}`, bytes);
    for (const [rel, bytes] of loggedModelFiles(m)) files.set(`mlruns/${expId}/${rel}`, bytes);
    const mlmodel = new TextEncoder().encode('flavors: {}\n');
    files.set(`mlruns/${expId}/models/${m.modelId}/artifacts/MLmodel`, mlmodel);
    const [linkPath, linkBytes] = loggedModelLinkFile(LINKS[0]!);
    files.set(`mlruns/${expId}/${linkPath}`, linkBytes);

    const db = await openDatabase({ name: 'logged-models-from-mlruns' });
    await importMlruns(db, files);
    const kept = await getLoggedModels(db, expId);
    expect(kept.loggedModels).toEqual([
      {
        ...m,
        metrics: [...m.metrics].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)),
      },
    ]);
    expect(kept.links).toEqual([LINKS[0]]);

    const out = await exportMlflowDb(db, { useArtifactProxy: true });
    const back = await readMlflowDbFile(out.database);
    expect(back.loggedModels.map((x) => [x.modelId, x.artifactLocation])).toEqual([
      [m.modelId, `mlflow-artifacts:/${expId}/models/${m.modelId}/artifacts`],
    ]);
    expect(back.loggedModelLinks).toEqual([LINKS[0]]);
    const carried = out.artifacts.filter((a) => a.modelId === m.modelId);
    expect(carried.map((a) => a.path)).toEqual([`${expId}/models/${m.modelId}/artifacts/MLmodel`]);
    expect(await exportArtifactBytes(db, carried[0]!)).toEqual(mlmodel);
  });
});
