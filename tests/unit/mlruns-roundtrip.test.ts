import 'fake-indexeddb/auto';
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { unzipSync, zipSync } from 'fflate';
import { openDatabase } from '../../src/lib/store/db.ts';
import { TrackingClient } from '../../src/lib/services/tracking.ts';
import {
  exportMlruns,
  exportMlrunsFiles,
  importMlruns,
  listLoggedModels,
  readLoggedModelFiles,
  unzipGuarded,
} from '../../src/lib/services/mlruns-io.ts';
import {
  md5Hex,
  MlrunsParseError,
  parsePyFloat,
  pyFloatRepr,
  readMlruns,
  runMetaYaml,
  experimentMetaYaml,
} from '../../src/lib/mlflow/mlruns/index.ts';
import { MlflowError } from '../../src/lib/mlflow/errors.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();
let n = 0;
const freshDb = () => openDatabase({ name: `mlruns-${n++}` });

const EXP = '606783375233873416';
const PARENT = '1c6b2d5b909041df93e6e00b960de019';
const CHILD = '2d7c3e6ca1a152e0a4f7f11c071ef12a';
const TRASHED_RUN = '3e8d4f7db2b263f1b5a8a22d182fa23b';
const MODEL_ID = 'm-75b24f103c544a0694a466f0196e4676';
const DS_ID = md5Hex('iris' + 'abc123');

function runMeta(
  runId: string,
  expId: string,
  name: string,
  extra: Record<string, string> = {},
): string {
  const fields: Record<string, string> = {
    artifact_uri: `file:///home/u/mlruns/${expId}/${runId}/artifacts`,
    deleted_time: 'null',
    end_time: '1721450907230',
    entry_point_name: "''",
    experiment_id: `'${expId}'`,
    lifecycle_stage: 'active',
    run_id: runId,
    run_name: name,
    run_uuid: runId,
    source_name: "''",
    source_type: '4',
    source_version: "''",
    start_time: '1721450907221',
    status: '3',
    tags: '[]',
    user_id: 'ashish',
    ...extra,
  };
  return Object.entries(fields)
    .map(([k, v]) => `${k}: ${v}\n`)
    .join('');
}

/** An mlruns tree shaped like Python MLflow 2.x/3.x FileStore output. */
function fixture(): Map<string, Uint8Array> {
  const f: Record<string, string | Uint8Array> = {
    'mlruns/0/meta.yaml':
      "artifact_location: file:///home/u/mlruns/0\ncreation_time: 1721450907221\nexperiment_id: '0'\nlast_update_time: 1721450907221\nlifecycle_stage: active\nname: Default\n",
    [`mlruns/${EXP}/meta.yaml`]: `artifact_location: file:///home/u/mlruns/${EXP}\ncreation_time: 1721450907300\nexperiment_id: '${EXP}'\nlast_update_time: 1721450907300\nlifecycle_stage: active\nname: iris classifier\n`,
    [`mlruns/${EXP}/tags/mlflow.note.content`]: 'Iris *experiments*',
    [`mlruns/${EXP}/${PARENT}/meta.yaml`]: runMeta(PARENT, EXP, 'wistful-ant-659'),
    [`mlruns/${EXP}/${PARENT}/metrics/acc`]:
      '1721450907222 0.5 0\n1721450907223 0.75 1\n1721450907224 1 2\n',
    [`mlruns/${EXP}/${PARENT}/metrics/train/loss`]: '1721450907222 0.9\n1721450907223 nan 1\n',
    [`mlruns/${EXP}/${PARENT}/metrics/eval_loss`]: '1721450907225 0.25 3 iris abc123\n',
    [`mlruns/${EXP}/${PARENT}/params/lr`]: '0.01',
    [`mlruns/${EXP}/${PARENT}/params/model/depth`]: '5',
    [`mlruns/${EXP}/${PARENT}/tags/mlflow.runName`]: 'wistful-ant-659',
    [`mlruns/${EXP}/${PARENT}/tags/mlflow.user`]: 'ashish',
    [`mlruns/${EXP}/${PARENT}/tags/mlflow.source.name`]: 'train.py',
    [`mlruns/${EXP}/${PARENT}/tags/note`]: 'café ☕',
    [`mlruns/${EXP}/${PARENT}/artifacts/model/MLmodel`]: 'artifact_path: model\nflavors: {}\n',
    [`mlruns/${EXP}/${PARENT}/artifacts/plots/roc.png`]: new Uint8Array([
      0x89, 0x50, 0x4e, 0x47, 0, 255, 1,
    ]),
    [`mlruns/${EXP}/${PARENT}/inputs/${md5Hex(DS_ID + PARENT)}/meta.yaml`]: `destination_id: ${DS_ID}\ndestination_type: RUN\nsource_id: ${DS_ID}\nsource_type: DATASET\ntags:\n  mlflow.data.context: training\n`,
    [`mlruns/${EXP}/${PARENT}/outputs/${MODEL_ID}/meta.yaml`]: `destination_id: ${MODEL_ID}\ndestination_type: MODEL_OUTPUT\nsource_id: ${MODEL_ID}\nsource_type: RUN_OUTPUT\nstep: 0\ntags: {}\n`,
    [`mlruns/${EXP}/datasets/${DS_ID}/meta.yaml`]: `digest: abc123\nname: iris\nprofile: '{"num_rows": 150}'\nschema: '{"mlflow_colspec": []}'\nsource: '{"uri": "iris.csv"}'\nsource_type: local\n`,
    [`mlruns/${EXP}/${CHILD}/meta.yaml`]: runMeta(CHILD, EXP, 'child-run', {
      status: '1',
      end_time: 'null',
      start_time: '1721450907500',
    }),
    [`mlruns/${EXP}/${CHILD}/tags/mlflow.parentRunId`]: PARENT,
    [`mlruns/${EXP}/${CHILD}/tags/mlflow.runName`]: 'child-run',
    [`mlruns/${EXP}/models/${MODEL_ID}/meta.yaml`]: `artifact_location: file:///home/u/mlruns/${EXP}/models/${MODEL_ID}/artifacts\ncreation_timestamp: 1750000000000\nexperiment_id: '${EXP}'\nlast_updated_timestamp: 1750000000000\nlifecycle_stage: active\nmodel_id: ${MODEL_ID}\nmodel_type: null\nname: model\nsource_run_id: ${PARENT}\nstatus: 2\nstatus_message: null\n`,
    [`mlruns/${EXP}/models/${MODEL_ID}/artifacts/MLmodel`]: `artifact_path: file:///home/u/mlruns/${EXP}/models/${MODEL_ID}/artifacts\nflavors: {}\nmodel_id: ${MODEL_ID}\n`,
    [`mlruns/${EXP}/models/${MODEL_ID}/metrics/acc`]: `1721450907224 1.0 2 ${PARENT}\n`,
    'mlruns/.trash/2/meta.yaml':
      "artifact_location: file:///home/u/mlruns/2\ncreation_time: 1721450900000\nexperiment_id: '2'\nlast_update_time: 1721450909999\nlifecycle_stage: deleted\nname: old stuff\n",
    [`mlruns/.trash/2/${TRASHED_RUN}/meta.yaml`]: runMeta(TRASHED_RUN, '2', 'gone', {
      lifecycle_stage: 'deleted',
      deleted_time: '1721450909999',
    }),
    [`mlruns/.trash/2/${TRASHED_RUN}/metrics/m`]: '1 2.5 0\n',
    'mlruns/models/my-model/meta.yaml': 'name: my-model\n',
  };
  return new Map(Object.entries(f).map(([k, v]) => [k, typeof v === 'string' ? enc.encode(v) : v]));
}

function withoutRegistry(files: Map<string, Uint8Array>): Map<string, Uint8Array> {
  return new Map([...files].filter(([k]) => !k.startsWith('mlruns/models/')));
}

function unzipToMap(zip: Uint8Array): Map<string, Uint8Array> {
  return new Map(Object.entries(unzipSync(zip)).filter(([k]) => !k.endsWith('/')));
}

async function storeCounts(db: Awaited<ReturnType<typeof freshDb>>) {
  const out: Record<string, number> = {};
  for (const s of [
    'experiments',
    'runs',
    'latestMetrics',
    'metricHistory',
    'artifacts',
    'mlrunsFiles',
    'blobFiles',
    'blobChunks',
  ]) {
    out[s] = await db.count(s);
  }
  return out;
}

describe('mlruns reader', () => {
  it('reads experiments, nested runs, metrics, params, tags, inputs, artifacts and .trash', () => {
    const tree = readMlruns(fixture());
    expect(
      tree.experiments.map((x) => [x.experiment.experimentId, x.experiment.name, x.trashed]),
    ).toEqual([
      ['0', 'Default', false],
      ['2', 'old stuff', true],
      [EXP, 'iris classifier', false],
    ]);
    expect(tree.ignored).toEqual(['mlruns/models/my-model/meta.yaml']);
    const iris = tree.experiments[2]!;
    expect(iris.experiment.tags).toEqual({ 'mlflow.note.content': 'Iris *experiments*' });
    const parent = iris.runs.find((r) => r.info.runId === PARENT)!;
    expect(parent.info).toMatchObject({
      status: 'FINISHED',
      runName: 'wistful-ant-659',
      userId: 'ashish',
      endTime: 1721450907230,
    });
    expect(parent.metrics['acc']!.map((m) => [m.step, m.value])).toEqual([
      [0, 0.5],
      [1, 0.75],
      [2, 1],
    ]);
    expect(parent.metrics['train/loss']!.map((m) => m.step)).toEqual([0, 1]);
    expect(Number.isNaN(parent.metrics['train/loss']![1]!.value)).toBe(true);
    expect(parent.metrics['eval_loss']).toEqual([
      { key: 'eval_loss', value: 0.25, timestamp: 1721450907225, step: 3 },
    ]);
    expect(parent.params).toEqual({ lr: '0.01', 'model/depth': '5' });
    expect(parent.tags['note']).toBe('café ☕');
    expect(parent.inputs).toEqual([
      {
        dataset: {
          name: 'iris',
          digest: 'abc123',
          sourceType: 'local',
          source: '{"uri": "iris.csv"}',
          schema: '{"mlflow_colspec": []}',
          profile: '{"num_rows": 150}',
        },
        tags: { 'mlflow.data.context': 'training' },
      },
    ]);
    expect([...parent.artifacts.keys()].sort()).toEqual(['model/MLmodel', 'plots/roc.png']);
    const child = iris.runs.find((r) => r.info.runId === CHILD)!;
    expect(child.info).toMatchObject({ status: 'RUNNING', endTime: null });
    expect(child.tags['mlflow.parentRunId']).toBe(PARENT);
    expect([...iris.preserved.keys()].sort()).toEqual([
      `${PARENT}/outputs/${MODEL_ID}/meta.yaml`,
      `models/${MODEL_ID}/artifacts/MLmodel`,
      `models/${MODEL_ID}/meta.yaml`,
      `models/${MODEL_ID}/metrics/acc`,
    ]);
    const trashed = tree.experiments[1]!;
    expect(trashed.runs[0]!.info.lifecycleStage).toBe('deleted');
    expect(trashed.runs[0]!.deletedTime).toBe(1721450909999);
  });

  it.each([
    [
      `mlruns/${EXP}/${PARENT}/metrics/acc`,
      '1 0.5 0\n2 abc 1\n',
      `mlruns/${EXP}/${PARENT}/metrics/acc:2: value must be a number, found "abc"`,
    ],
    [
      `mlruns/${EXP}/${PARENT}/metrics/acc`,
      '1 0.5 0 1\n',
      `mlruns/${EXP}/${PARENT}/metrics/acc:1: expected "<timestamp> <value> <step>" (2, 3 or 5 fields), found 4 fields`,
    ],
    [`mlruns/${EXP}/${PARENT}/metrics/acc`, 'x 0.5 0\n', 'acc:1: timestamp must be an integer'],
    [
      `mlruns/${EXP}/${PARENT}/meta.yaml`,
      'run_id: x\nstatus: 3\nname: [a, b\nuser_id: u\n',
      `mlruns/${EXP}/${PARENT}/meta.yaml:4: invalid YAML`,
    ],
    [
      `mlruns/${EXP}/${PARENT}/meta.yaml`,
      runMeta(PARENT, EXP, 'x', { start_time: 'soon' }),
      `meta.yaml:13: key 'start_time' must be an integer, found "soon"`,
    ],
    [
      `mlruns/${EXP}/${PARENT}/meta.yaml`,
      runMeta(PARENT, EXP, 'x', { status: '9' }),
      `meta.yaml:14: key 'status' must be a run status`,
    ],
    [
      `mlruns/${EXP}/${PARENT}/meta.yaml`,
      runMeta(CHILD, EXP, 'x'),
      `run_id '${CHILD}' does not match its folder`,
    ],
    [
      `mlruns/${EXP}/meta.yaml`,
      'name: x\nexperiment_id: "7"\n',
      `mlruns/${EXP}/meta.yaml:2: experiment_id '7' does not match its folder`,
    ],
    [`mlruns/${EXP}/meta.yaml`, "experiment_id: '1'\nexperiment_id: '2'\n", 'invalid YAML'],
    [
      `mlruns/${EXP}/${PARENT}/params/bad$key`,
      'v',
      `params/bad$key: Invalid parameter name: 'bad$key'`,
    ],
  ])('names the file and line of a bad file: %s', (path, content, message) => {
    const files = fixture();
    files.set(path, enc.encode(content));
    let err: unknown;
    try {
      readMlruns(files);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MlrunsParseError);
    expect((err as Error).message).toContain(message);
  });

  it('rejects invalid UTF-8 in a param file', () => {
    const files = fixture();
    files.set(`mlruns/${EXP}/${PARENT}/params/lr`, new Uint8Array([0xff, 0xfe]));
    expect(() => readMlruns(files)).toThrow(`params/lr: is not valid UTF-8 text`);
  });

  it('reads a tree without a wrapper folder and old files without run_name', () => {
    const files = new Map<string, Uint8Array>();
    files.set(
      '1/meta.yaml',
      enc.encode(
        'artifact_location: /tmp/mlruns/1\nexperiment_id: 1\nlifecycle_stage: active\nname: old\n',
      ),
    );
    const meta = runMeta(PARENT, '1', 'x')
      .replace(/run_name: x\n/, '')
      .replace("experiment_id: '1'", 'experiment_id: 1');
    files.set(`1/${PARENT}/meta.yaml`, enc.encode(meta));
    files.set(`1/${PARENT}/tags/mlflow.runName`, enc.encode('from-tag'));
    const tree = readMlruns(files);
    expect(tree.experiments[0]!.experiment).toMatchObject({
      experimentId: '1',
      name: 'old',
      creationTime: 0,
    });
    expect(tree.experiments[0]!.runs[0]!.info.runName).toBe('from-tag');
  });
});

describe('Python text forms', () => {
  it('writes floats as Python repr does', () => {
    const cases: [number, string][] = [
      [0.5, '0.5'],
      [1, '1.0'],
      [1e-5, '1e-05'],
      [1e16, '1e+16'],
      [1e15, '1000000000000000.0'],
      [0.0001, '0.0001'],
      [-2.5e-7, '-2.5e-07'],
      [Number.NaN, 'nan'],
      [Infinity, 'inf'],
      [-Infinity, '-inf'],
      [0.1 + 0.2, '0.30000000000000004'],
      [-0, '-0.0'],
      [123456789.125, '123456789.125'],
      [1.5e300, '1.5e+300'],
    ];
    for (const [x, s] of cases) expect(pyFloatRepr(x)).toBe(s);
    for (const [x, s] of cases)
      expect(
        Object.is(parsePyFloat(s), x) || (Number.isNaN(x) && Number.isNaN(parsePyFloat(s)!)),
      ).toBe(true);
    expect(parsePyFloat('1')).toBe(1);
    expect(parsePyFloat('Infinity')).toBe(Infinity);
    expect(parsePyFloat('abc')).toBeUndefined();
  });

  it('writes meta.yaml with sorted keys, legacy keys and PyYAML quoting', () => {
    expect(
      experimentMetaYaml({
        experimentId: '0',
        name: 'Default',
        artifactLocation: 'file:///home/u/mlruns/0',
        lifecycleStage: 'active',
        creationTime: 1721450907221,
        lastUpdateTime: 1721450907221,
        tags: {},
      }),
    ).toBe(
      "artifact_location: file:///home/u/mlruns/0\ncreation_time: 1721450907221\nexperiment_id: '0'\nlast_update_time: 1721450907221\nlifecycle_stage: active\nname: Default\n",
    );
    expect(
      runMetaYaml(
        {
          runId: PARENT,
          experimentId: '0',
          runName: 'wistful-ant-659',
          userId: 'ashish',
          status: 'FINISHED',
          startTime: 1721450907221,
          endTime: 1721450907230,
          artifactUri: `file:///home/u/mlruns/0/${PARENT}/artifacts`,
          lifecycleStage: 'active',
        },
        null,
      ),
    ).toBe(
      runMeta(PARENT, '0', 'wistful-ant-659').replace(
        `file:///home/u/mlruns/0/`,
        `file:///home/u/mlruns/0/`,
      ),
    );
  });
});

describe('mlruns import and export', () => {
  it('exports imported files byte for byte when nothing changed', async () => {
    const db = await freshDb();
    const input = fixture();
    const res = await importMlruns(db, input);
    expect(res).toMatchObject({
      experimentIds: ['0', '2', EXP],
      runs: 3,
      artifacts: 2,
      preservedFiles: 4,
    });
    expect(res.warnings.join()).toMatch(/registry/);
    const zip = await exportMlruns(db, { experimentIds: ['0', EXP, '2'] });
    const out = unzipToMap(zip);
    const expected = withoutRegistry(input);
    expect([...out.keys()].sort()).toEqual([...expected.keys()].sort());
    for (const [k, v] of expected) expect(dec.decode(out.get(k)!), k).toBe(dec.decode(v));
    for (const [k, v] of expected) expect(out.get(k), k).toEqual(v);
    // The folders MLflow expects exist even when empty.
    const all = Object.keys(unzipSync(zip));
    expect(all).toContain('mlruns/.trash/');
    expect(all).toContain(`mlruns/${EXP}/${CHILD}/metrics/`);
  });

  it('makes imported data visible through the tracking client', async () => {
    const db = await freshDb();
    await importMlruns(db, fixture());
    const c = new TrackingClient(db);
    const run = await c.getRun(PARENT);
    expect(run.metrics['acc']).toEqual({ key: 'acc', value: 1, step: 2, timestamp: 1721450907224 });
    expect(run.params['lr']).toBe('0.01');
    expect(await c.readArtifactText(PARENT, 'model/MLmodel')).toBe(
      'artifact_path: model\nflavors: {}\n',
    );
    expect((await c.getMetricHistory(PARENT, 'acc')).length).toBe(3);
    const found = await c.searchRuns({
      experimentIds: [EXP],
      filter: "metrics.acc >= 1 and params.lr = '0.01'",
    });
    expect(found.runs.map((r) => r.info.runId)).toEqual([PARENT]);
    expect((await c.getChildRuns(PARENT)).map((r) => r.info.runId)).toEqual([CHILD]);
    expect((await c.getExperiment('2')).lifecycleStage).toBe('deleted');
  });

  it('rewrites only the files of entities that changed', async () => {
    const db = await freshDb();
    const input = fixture();
    await importMlruns(db, input);
    const c = new TrackingClient(db);
    await c.logMetric(PARENT, 'acc', 0.5, { step: 3, timestamp: 1721450907299 });
    await c.setTag(CHILD, 'reviewed', 'yes');
    await c.updateRun(CHILD, { runName: 'renamed-child' });
    const out = await exportMlrunsFiles(db, { experimentIds: [EXP] });
    const p = (rel: string) => dec.decode(out.get(`${EXP}/${rel}`)!);
    // acc changed: regenerated with Python float text (1 -> 1.0) and the new point.
    expect(p(`${PARENT}/metrics/acc`)).toBe(
      '1721450907222 0.5 0\n1721450907223 0.75 1\n1721450907224 1.0 2\n1721450907299 0.5 3\n',
    );
    expect(p(`${CHILD}/tags/reviewed`)).toBe('yes');
    expect(p(`${CHILD}/meta.yaml`)).toContain('run_name: renamed-child\n');
    expect(p(`${CHILD}/tags/mlflow.runName`)).toBe('renamed-child');
    // Untouched files keep their original bytes (2-field metric lines, 5-field lines).
    expect(p(`${PARENT}/metrics/train/loss`)).toBe('1721450907222 0.9\n1721450907223 nan 1\n');
    expect(p(`${PARENT}/metrics/eval_loss`)).toBe('1721450907225 0.25 3 iris abc123\n');
    expect(p(`${PARENT}/meta.yaml`)).toBe(
      dec.decode(input.get(`mlruns/${EXP}/${PARENT}/meta.yaml`)!),
    );
  });

  it('moves a deleted experiment to .trash on export', async () => {
    const db = await freshDb();
    const c = new TrackingClient(db);
    const id = await c.createExperiment('to delete');
    await c.deleteExperiment(id);
    const out = await exportMlrunsFiles(db, { experimentIds: [id] });
    expect(dec.decode(out.get(`.trash/${id}/meta.yaml`)!)).toContain('lifecycle_stage: deleted\n');
  });

  it('exports browser-made runs in FileStore form and re-imports them with the same data', async () => {
    const db = await freshDb();
    const c = new TrackingClient(db);
    const exp = await c.createExperiment('browser', { tags: { team: 'ml' } });
    const parent = await c.startRun({ experimentId: exp, runName: 'p', startTime: 1000 });
    const child = await c.startRun({
      experimentId: exp,
      runName: 'c',
      parentRunId: parent.runId,
      startTime: 1001,
    });
    await c.logParams(parent.runId, { lr: 0.01, optimizer: 'adam' });
    for (let s = 0; s < 5; s++)
      await c.logMetric(parent.runId, 'loss', 1 / (s + 1), { step: s, timestamp: 2000 + s });
    await c.logMetric(parent.runId, 'loss', 0.2, { step: 4, timestamp: 2004 });
    await c.logMetric(child.runId, 'val/acc', 0.9, { step: 0, timestamp: 3000 });
    await c.logText(parent.runId, 'hello', 'notes/readme.md');
    await c.logInputs(parent.runId, [
      {
        dataset: { name: 'iris', digest: 'abc123', sourceType: 'local', source: '{"uri": "x"}' },
        tags: { 'mlflow.data.context': 'eval' },
      },
    ]);
    await c.endRun(parent.runId, 'FINISHED', 5000);
    await c.deleteRun(child.runId);
    const zip = await exportMlruns(db, { experimentIds: [exp] });
    const files = unzipToMap(zip);
    const meta = dec.decode(files.get(`mlruns/${exp}/${parent.runId}/meta.yaml`)!);
    expect(meta).toBe(
      [
        `artifact_uri: mlruns/${exp}/${parent.runId}/artifacts`,
        'deleted_time: null',
        'end_time: 5000',
        "entry_point_name: ''",
        `experiment_id: '${exp}'`,
        'lifecycle_stage: active',
        `run_id: ${parent.runId}`,
        'run_name: p',
        `run_uuid: ${parent.runId}`,
        "source_name: ''",
        'source_type: 4',
        "source_version: ''",
        'start_time: 1000',
        'status: 3',
        'tags: []',
        'user_id: browser',
        '',
      ].join('\n'),
    );
    expect(dec.decode(files.get(`mlruns/${exp}/${parent.runId}/metrics/loss`)!)).toBe(
      '2000 1.0 0\n2001 0.5 1\n2002 0.3333333333333333 2\n2003 0.25 3\n2004 0.2 4\n2004 0.2 4\n',
    );
    expect(dec.decode(files.get(`mlruns/${exp}/${parent.runId}/params/lr`)!)).toBe('0.01');
    expect(dec.decode(files.get(`mlruns/${exp}/${child.runId}/metrics/val/acc`)!)).toBe(
      '3000 0.9 0\n',
    );
    const dsId = md5Hex('irisabc123');
    expect(files.has(`mlruns/${exp}/datasets/${dsId}/meta.yaml`)).toBe(true);
    expect(
      files.has(`mlruns/${exp}/${parent.runId}/inputs/${md5Hex(dsId + parent.runId)}/meta.yaml`),
    ).toBe(true);

    const db2 = await freshDb();
    await importMlruns(db2, zip);
    const c2 = new TrackingClient(db2);
    for (const id of [parent.runId, child.runId]) {
      const before = await c.getRun(id);
      const after = await c2.getRun(id);
      // The browser's mlflow-artifacts: location became a file-store path; everything else is equal.
      expect(after.info.artifactUri).toBe(`mlruns/${exp}/${id}/artifacts`);
      expect({ ...after, info: { ...after.info, artifactUri: '' } }).toEqual({
        ...before,
        info: { ...before.info, artifactUri: '' },
      });
    }
    expect(await c2.getMetricHistory(parent.runId, 'loss')).toEqual(
      await c.getMetricHistory(parent.runId, 'loss'),
    );
    expect(await c2.readArtifactText(parent.runId, 'notes/readme.md')).toBe('hello');
    expect((await c2.getExperiment(exp)).tags).toEqual({ team: 'ml' });
    // And a second export of the re-imported data is byte-identical.
    const again = unzipToMap(await exportMlruns(db2, { experimentIds: [exp] }));
    expect([...again.keys()].sort()).toEqual([...files.keys()].sort());
    for (const [k, v] of files) expect(again.get(k), k).toEqual(v);
  });

  it('leaves the store unchanged when a file deep in the import is bad', async () => {
    const db = await freshDb();
    const c = new TrackingClient(db);
    await c.createExperiment('already here');
    const before = await storeCounts(db);
    const files = fixture();
    files.set(`mlruns/.trash/2/${TRASHED_RUN}/metrics/m`, enc.encode('1 2.5 0\n2 oops 1\n'));
    await expect(importMlruns(db, files)).rejects.toThrow(
      `mlruns/.trash/2/${TRASHED_RUN}/metrics/m:2: value must be a number`,
    );
    expect(await storeCounts(db)).toEqual(before);
  });

  it('leaves the store unchanged when the write itself fails midway', async () => {
    const db = await freshDb();
    const c = new TrackingClient(db);
    // A run id collision inside the transaction, after blobs were written.
    const exp = await c.createExperiment('other');
    const r = await c.startRun({ experimentId: exp });
    const before = await storeCounts(db);
    const files = fixture();
    const bad = new Map<string, Uint8Array>();
    for (const [k, v] of files) {
      const isText = !k.endsWith('.png');
      bad.set(
        k.split(PARENT).join(r.runId),
        isText ? enc.encode(dec.decode(v).split(PARENT).join(r.runId)) : v,
      );
    }
    await expect(importMlruns(db, bad)).rejects.toBeInstanceOf(MlflowError);
    expect(await storeCounts(db)).toEqual(before);
  });

  it('refuses an experiment that exists unless asked to replace it', async () => {
    const db = await freshDb();
    await importMlruns(db, fixture());
    await expect(importMlruns(db, fixture())).rejects.toThrow(/already exists/);
    const c = new TrackingClient(db);
    await c.logMetric(PARENT, 'extra', 1);
    const res = await importMlruns(db, fixture(), { onConflict: 'replace' });
    expect(res.runs).toBe(3);
    expect((await c.getRun(PARENT)).metrics['extra']).toBeUndefined();
    expect(await db.count('blobFiles')).toBe(2);
  });
});

describe('a store written by Python MLflow 3.17', () => {
  // Written by MLflow 3.17.2's FileStore: a run with params, metrics, a tag, a text artifact and a
  // logged pyfunc model (models/m-.../ plus the run's outputs/), a nested run, a deleted experiment.
  const zip = new Uint8Array(
    readFileSync(new URL('../fixtures/mlruns-mlflow-3.17.zip', import.meta.url)),
  );
  const EXP3 = '802348375909855010';
  const RUN3 = '433c32feb5964411a2cf69852a866b3c';
  const MODEL3 = 'm-e88e1e9eabaa49eeb36a47fede3629c8';

  it('imports it and exports every file byte for byte', async () => {
    const db = await freshDb();
    const res = await importMlruns(db, zip);
    expect(res.experimentIds).toEqual(['0', '447920304702470333', EXP3]);
    expect(res.runs).toBe(3);
    const c = new TrackingClient(db);
    const run = await c.getRun(RUN3);
    expect(run.params).toEqual({ lr: '0.01', layers: '3' });
    expect(run.metrics['count']?.value).toBe(7);
    expect((await c.getMetricHistory(RUN3, 'loss')).map((m) => m.value)).toEqual([
      1,
      1,
      0.5,
      1 / 3,
    ]); // MLflow 3 logged step 0 twice
    expect(await c.readArtifactText(RUN3, 'notes/readme.txt')).toBe('hello');
    expect((await c.getExperiment('447920304702470333')).lifecycleStage).toBe('deleted');

    const input = unzipToMap(zip);
    const out = unzipToMap(await exportMlruns(db, { experimentIds: res.experimentIds }));
    expect([...out.keys()].sort()).toEqual([...input.keys()].sort());
    for (const [k, v] of input) expect(out.get(k), k).toEqual(v);
  });

  it('lists the logged model and reads its files', async () => {
    const db = await freshDb();
    await importMlruns(db, zip);
    const models = await listLoggedModels(db, EXP3, { runId: RUN3 });
    expect(models).toHaveLength(1);
    expect(models[0]).toMatchObject({
      modelId: MODEL3,
      name: 'model',
      sourceRunId: RUN3,
      status: 'LOGGED_MODEL_READY',
      files: ['MLmodel', 'conda.yaml', 'python_env.yaml', 'python_model.pkl', 'requirements.txt'],
    });
    const files = await readLoggedModelFiles(db, EXP3, MODEL3);
    expect(dec.decode(files.get('MLmodel')!)).toContain(`model_id: ${MODEL3}`);
    expect(await listLoggedModels(db, EXP3, { runId: 'f'.repeat(32) })).toEqual([]);
  });

  it('takes over an empty Default experiment instead of refusing the import', async () => {
    const db = await freshDb();
    const c = new TrackingClient(db);
    await c.getOrCreateDefaultExperiment();
    await importMlruns(db, zip);
    expect((await c.getExperiment('0')).artifactLocation).toBe('file:///home/u/mlruns/0');
  });

  it('keeps keys it does not map and the logged model when an entity changes', async () => {
    const db = await freshDb();
    await importMlruns(db, zip);
    const c = new TrackingClient(db);
    await c.renameExperiment(EXP3, 'renamed');
    await c.updateRun(RUN3, { runName: 'new name' });
    const out = await exportMlrunsFiles(db, { experimentIds: [EXP3] });
    const meta = dec.decode(out.get(`${EXP3}/meta.yaml`)!);
    expect(meta).toContain('name: renamed\n');
    expect(meta).toContain('workspace: default\n');
    expect(meta).toContain('trace_location: null\n');
    const runMeta = dec.decode(out.get(`${EXP3}/${RUN3}/meta.yaml`)!);
    expect(runMeta).toContain('run_name: new name\n');
    expect(runMeta).toContain(`run_uuid: ${RUN3}\n`);
    const input = unzipToMap(zip);
    for (const rel of [
      `models/${MODEL3}/artifacts/python_model.pkl`,
      `models/${MODEL3}/meta.yaml`,
      `${RUN3}/outputs/${MODEL3}/meta.yaml`,
    ]) {
      expect(out.get(`${EXP3}/${rel}`), rel).toEqual(input.get(`mlruns/${EXP3}/${rel}`));
    }
  });
});

describe('zip guards', () => {
  const ok = enc.encode('x');
  it.each([
    ['../evil/meta.yaml', /'\.\.' segment/],
    ['mlruns/../../etc/passwd', /'\.\.' segment/],
    ['/etc/passwd', /absolute path/],
    ['mlruns\\0\\meta.yaml', /backslash/],
    ['C:/mlruns/0/meta.yaml', /drive letter/],
  ])('rejects %s before writing anything', async (name, message) => {
    const db = await freshDb();
    const zip = zipSync({ 'mlruns/0/meta.yaml': ok, [name]: ok });
    await expect(importMlruns(db, zip)).rejects.toThrow(message);
    expect(await db.count('experiments')).toBe(0);
  });

  it('caps entry count and total size', () => {
    const many: Record<string, Uint8Array> = {};
    for (let i = 0; i < 20; i++) many[`mlruns/0/f${i}`] = ok;
    expect(() => unzipGuarded(zipSync(many), { maxEntries: 10 })).toThrow(/more than 10 files/);
    const big = zipSync({ 'a.bin': new Uint8Array(5000) });
    expect(() => unzipGuarded(big, { maxTotalBytes: 4000 })).toThrow(/more than 4000 bytes/);
    expect(() => unzipGuarded(big, { maxEntryBytes: 100 })).toThrow(/over the 100-byte limit/);
    const bomb = zipSync({ 'zeros.bin': new Uint8Array(4 * 1024 * 1024) });
    expect(() => unzipGuarded(bomb, { maxRatio: 100 })).toThrow(/zip bomb/);
    expect(() => unzipGuarded(enc.encode('not a zip'))).toThrow(/Not a readable zip/);
  });
});
