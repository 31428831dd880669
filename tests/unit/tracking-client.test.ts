import 'fake-indexeddb/auto';
import { describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/lib/store/db.ts';
import { TrackingClient } from '../../src/lib/services/tracking.ts';
import { MlflowError } from '../../src/lib/mlflow/errors.ts';
import { onStoreChange, type StoreChange } from '../../src/lib/services/events.ts';
import { CHUNK_POINTS } from '../../src/lib/store/tracking.ts';

let n = 0;
async function client(): Promise<TrackingClient> {
  return new TrackingClient(await openDatabase({ name: `tracking-client-${n++}` }), {
    userId: 'ada',
  });
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof MlflowError) return e.errorCode;
    throw e;
  }
  return 'no error';
}

describe('experiments', () => {
  it('creates, finds by name, renames, deletes and restores an experiment', async () => {
    const c = await client();
    const id = await c.createExperiment('fraud', { tags: { team: 'risk' } });
    expect(id).toMatch(/^\d{18}$/);
    const e = await c.getExperiment(id);
    expect(e).toMatchObject({ name: 'fraud', lifecycleStage: 'active', tags: { team: 'risk' } });
    expect(e.artifactLocation).toBe(`mlflow-artifacts:/${id}`);
    expect((await c.getExperimentByName('fraud'))?.experimentId).toBe(id);
    expect(await c.getExperimentByName('nope')).toBeNull();

    await c.renameExperiment(id, 'fraud-v2');
    expect((await c.getExperiment(id)).name).toBe('fraud-v2');
    await c.setExperimentTag(id, 'owner', 'ada');
    expect((await c.getExperiment(id)).tags).toEqual({ team: 'risk', owner: 'ada' });

    await c.deleteExperiment(id);
    expect(await c.listExperiments()).toEqual([]);
    expect((await c.listExperiments({ includeDeleted: true })).map((x) => x.name)).toEqual([
      'fraud-v2',
    ]);
    await c.restoreExperiment(id);
    expect((await c.listExperiments()).map((x) => x.experimentId)).toEqual([id]);
  });

  it('refuses duplicate names and empty names with MLflow error codes', async () => {
    const c = await client();
    await c.createExperiment('a');
    const b = await c.createExperiment('b');
    expect(await code(c.createExperiment('a'))).toBe('RESOURCE_ALREADY_EXISTS');
    expect(await code(c.renameExperiment(b, 'a'))).toBe('RESOURCE_ALREADY_EXISTS');
    expect(await code(c.createExperiment(''))).toBe('INVALID_PARAMETER_VALUE');
    expect(await code(c.getExperiment('123'))).toBe('RESOURCE_DOES_NOT_EXIST');
    expect(await code(c.createExperiment('x'.repeat(501)))).toBe('INVALID_PARAMETER_VALUE');
  });

  it('creates the Default experiment (id 0) when a run starts without an experiment', async () => {
    const c = await client();
    const run = await c.startRun();
    expect(run.experimentId).toBe('0');
    expect((await c.getExperiment('0')).name).toBe('Default');
    expect(await code(c.deleteExperiment('0'))).toBe('INVALID_PARAMETER_VALUE');
  });
});

describe('runs', () => {
  it('starts a run with MLflow system tags and ends it', async () => {
    const c = await client();
    const exp = await c.createExperiment('e');
    const info = await c.startRun({ experimentId: exp, runName: 'first', startTime: 1000 });
    expect(info.runId).toMatch(/^[0-9a-f]{32}$/);
    expect(info).toMatchObject({
      status: 'RUNNING',
      runName: 'first',
      userId: 'ada',
      endTime: null,
    });
    expect(info.artifactUri).toBe(`mlflow-artifacts:/${exp}/${info.runId}/artifacts`);
    const run = await c.getRun(info.runId);
    expect(run.tags).toMatchObject({
      'mlflow.runName': 'first',
      'mlflow.user': 'ada',
      'mlflow.source.name': 'tabflow',
      'mlflow.source.type': 'LOCAL',
    });
    const ended = await c.endRun(info.runId, 'FAILED', 5000);
    expect(ended).toMatchObject({ status: 'FAILED', endTime: 5000 });
  });

  it('gives runs a random adjective-noun-number name when none is given', async () => {
    const c = await client();
    const info = await c.startRun({ experimentId: await c.createExperiment('e') });
    expect(info.runName).toMatch(/^[a-z]+-[a-z]+-\d{1,3}$/);
  });

  it('nests runs through the mlflow.parentRunId tag', async () => {
    const c = await client();
    const exp = await c.createExperiment('e');
    const parent = await c.startRun({ experimentId: exp });
    const child = await c.startRun({ experimentId: exp, parentRunId: parent.runId });
    expect((await c.getRun(child.runId)).tags['mlflow.parentRunId']).toBe(parent.runId);
    expect((await c.getChildRuns(parent.runId)).map((r) => r.info.runId)).toEqual([child.runId]);
    expect(await code(c.startRun({ experimentId: exp, parentRunId: 'f'.repeat(32) }))).toBe(
      'RESOURCE_DOES_NOT_EXIST',
    );
  });

  it('renames a run and keeps the mlflow.runName tag in step', async () => {
    const c = await client();
    const r = await c.startRun({ experimentId: await c.createExperiment('e') });
    await c.updateRun(r.runId, { runName: 'renamed' });
    const run = await c.getRun(r.runId);
    expect(run.info.runName).toBe('renamed');
    expect(run.tags['mlflow.runName']).toBe('renamed');
  });

  it('soft-deletes and restores runs; a deleted run refuses new data', async () => {
    const c = await client();
    const r = await c.startRun({ experimentId: await c.createExperiment('e') });
    await c.deleteRun(r.runId);
    expect((await c.getRun(r.runId)).info.lifecycleStage).toBe('deleted');
    expect(await code(c.logMetric(r.runId, 'x', 1))).toBe('INVALID_PARAMETER_VALUE');
    await c.restoreRun(r.runId);
    await c.logMetric(r.runId, 'x', 1);
    expect((await c.getRun(r.runId)).metrics['x']?.value).toBe(1);
  });
});

describe('params, metrics and tags', () => {
  it('keeps params immutable: same value is fine, a different one is INVALID_PARAMETER_VALUE', async () => {
    const c = await client();
    const r = await c.startRun({ experimentId: await c.createExperiment('e') });
    await c.logParam(r.runId, 'lr', 0.01);
    await c.logParam(r.runId, 'lr', '0.01');
    await c.logParams(r.runId, { layers: 3, shuffle: true, none: null });
    const err = await c.logParam(r.runId, 'lr', 0.02).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MlflowError);
    expect((err as MlflowError).errorCode).toBe('INVALID_PARAMETER_VALUE');
    expect((err as MlflowError).message).toContain("key='lr'");
    expect((await c.getRun(r.runId)).params).toEqual({
      lr: '0.01',
      layers: '3',
      shuffle: 'True',
      none: 'None',
    });
  });

  it('keeps the full metric history (duplicates too) and the latest by step, then timestamp', async () => {
    const c = await client();
    const r = await c.startRun({ experimentId: await c.createExperiment('e') });
    await c.logMetric(r.runId, 'loss', 0.9, { step: 0, timestamp: 10 });
    await c.logMetric(r.runId, 'loss', 0.5, { step: 2, timestamp: 11 });
    await c.logMetric(r.runId, 'loss', 0.7, { step: 1, timestamp: 12 });
    await c.logMetric(r.runId, 'loss', 0.7, { step: 1, timestamp: 12 });
    const hist = await c.getMetricHistory(r.runId, 'loss');
    expect(hist.map((m) => [m.step, m.value])).toEqual([
      [0, 0.9],
      [1, 0.7],
      [1, 0.7],
      [2, 0.5],
    ]);
    expect((await c.getRun(r.runId)).metrics['loss']).toEqual({
      key: 'loss',
      value: 0.5,
      step: 2,
      timestamp: 11,
    });
    await c.logMetric(r.runId, 'nan', Number.NaN, { step: 0, timestamp: 1 });
    expect(Number.isNaN((await c.getRun(r.runId)).metrics['nan']?.value)).toBe(true);
  });

  it('logs metrics at a step and writes a large batch in one call', async () => {
    const c = await client();
    const r = await c.startRun({ experimentId: await c.createExperiment('e') });
    await c.logMetrics(r.runId, { acc: 0.8, f1: 0.7 }, { step: 3 });
    const points = Array.from({ length: 2500 }, (_, i) => ({
      key: 'x',
      value: i,
      step: i,
      timestamp: i,
    }));
    await c.logMetrics(r.runId, points);
    expect((await c.getMetricHistory(r.runId, 'x')).length).toBe(2500);
    expect((await c.getRun(r.runId)).metrics).toMatchObject({
      acc: { value: 0.8, step: 3 },
      x: { value: 2499 },
    });
  });

  it('keeps long histories across chunk boundaries, in step order, also as arrays', async () => {
    const c = await client();
    const r = await c.startRun({ experimentId: await c.createExperiment('e') });
    // 10,500 points, logged newest step first in uneven batches, with one duplicate.
    const n = 10_500;
    const points = Array.from({ length: n }, (_, i) => ({
      key: 'loss',
      value: i / n,
      step: n - 1 - i,
      timestamp: i,
    }));
    points.push({ ...points[0]! });
    for (let i = 0; i < points.length; i += 700)
      await c.logBatch(r.runId, { metrics: points.slice(i, i + 700) });
    expect(await c.db.count('metricHistory')).toBe(Math.ceil((n + 1) / CHUNK_POINTS));
    const hist = await c.getMetricHistory(r.runId, 'loss');
    expect(hist).toHaveLength(n + 1);
    expect(hist[0]).toEqual({ key: 'loss', value: (n - 1) / n, step: 0, timestamp: n - 1 });
    expect(hist[n - 1]).toEqual(hist[n]);
    for (let i = 1; i < hist.length; i++)
      expect(hist[i]!.step).toBeGreaterThanOrEqual(hist[i - 1]!.step);
    const series = await c.getMetricSeries(r.runId, 'loss');
    expect(series.values).toBeInstanceOf(Float64Array);
    expect(Array.from(series.steps.subarray(0, 3))).toEqual([0, 1, 2]);
    expect((await c.getRun(r.runId)).metrics['loss']).toEqual({
      key: 'loss',
      value: 0,
      step: n - 1,
      timestamp: 0,
    });
    const both = await c.getMetricSeriesForRuns([r.runId], 'loss');
    expect(both.get(r.runId)!.values.length).toBe(n + 1);
  });

  it('buffers metrics from a training loop into large writes', async () => {
    const c = await client();
    const r = await c.startRun({ experimentId: await c.createExperiment('e') });
    const buf = c.metricBuffer(r.runId, { maxPoints: 5000, flushMs: 10 });
    for (let i = 0; i < 12_345; i++) buf.log(i % 2 ? 'a' : 'b', i, { step: i, timestamp: i });
    expect(() => buf.log('bad$key', 1)).toThrow(MlflowError);
    await buf.flush();
    expect((await c.getMetricHistory(r.runId, 'a')).length).toBe(6172);
    expect((await c.getRun(r.runId)).metrics['b']?.value).toBe(12_344);
    buf.log('late', 1);
    await new Promise((ok) => setTimeout(ok, 50));
    expect((await c.getRun(r.runId)).metrics['late']?.value).toBe(1);
    await c.deleteRun(r.runId);
    buf.log('after-delete', 1);
    await expect(buf.flush()).rejects.toThrow(/must be in the 'active' state/);
    expect(() => buf.log('again', 1)).toThrow(/must be in the 'active' state/);
  });

  it('applies MLflow batch limits', async () => {
    const c = await client();
    const r = await c.startRun({ experimentId: await c.createExperiment('e') });
    const metrics = Array.from({ length: 1001 }, (_, i) => ({
      key: 'm',
      value: i,
      step: i,
      timestamp: 0,
    }));
    await expect(c.logBatch(r.runId, { metrics })).rejects.toThrow(/at most 1000 metrics/);
    const params = Array.from({ length: 101 }, (_, i) => ({ key: `p${i}`, value: 'v' }));
    await expect(c.logBatch(r.runId, { params })).rejects.toThrow(/at most 100 params/);
    const tags = Array.from({ length: 101 }, (_, i) => ({ key: `t${i}`, value: 'v' }));
    await expect(c.logBatch(r.runId, { tags })).rejects.toThrow(/at most 100 tags/);
    await expect(
      c.logBatch(r.runId, { metrics: metrics.slice(0, 950), params: params.slice(0, 60) }),
    ).rejects.toThrow(/at most 1000 total/);
    await expect(
      c.logBatch(r.runId, {
        params: [
          { key: 'a', value: '1' },
          { key: 'a', value: '2' },
        ],
      }),
    ).rejects.toThrow(/Duplicate parameter keys/);
    // Nothing of the refused batches landed.
    const run = await c.getRun(r.runId);
    expect(run.params).toEqual({});
    expect(run.metrics).toEqual({});
  });

  it('validates key names and value lengths like MLflow', async () => {
    const c = await client();
    const r = await c.startRun({ experimentId: await c.createExperiment('e') });
    for (const bad of ['a$b', '../x', '/abs', 'a//b', 'trailing/', '.', '', 'x'.repeat(251)]) {
      expect(await code(c.logMetric(r.runId, bad, 1)), bad).toBe('INVALID_PARAMETER_VALUE');
    }
    await c.logMetric(r.runId, 'train/loss: epoch-1.a b', 1);
    expect(await code(c.logParam(r.runId, 'long', 'x'.repeat(6001)))).toBe(
      'INVALID_PARAMETER_VALUE',
    );
    await c.logParam(r.runId, 'ok', 'x'.repeat(6000));
    expect(await code(c.setTag(r.runId, 'long', 'x'.repeat(8001)))).toBe('INVALID_PARAMETER_VALUE');
    expect(await code(c.logMetric(r.runId, 'm', 1, { step: 1.5 }))).toBe('INVALID_PARAMETER_VALUE');
    expect(await code(c.logMetric('f'.repeat(32), 'm', 1))).toBe('RESOURCE_DOES_NOT_EXIST');
  });

  it('sets, overwrites and deletes tags', async () => {
    const c = await client();
    const r = await c.startRun({ experimentId: await c.createExperiment('e') });
    await c.setTags(r.runId, { a: '1', b: '2' });
    await c.setTag(r.runId, 'a', '3');
    await c.deleteTag(r.runId, 'b');
    const run = await c.getRun(r.runId);
    expect(run.tags['a']).toBe('3');
    expect(run.tags['b']).toBeUndefined();
    expect(await code(c.deleteTag(r.runId, 'b'))).toBe('RESOURCE_DOES_NOT_EXIST');
  });

  it('records dataset inputs', async () => {
    const c = await client();
    const r = await c.startRun({ experimentId: await c.createExperiment('e') });
    await c.logInputs(r.runId, [
      {
        dataset: {
          name: 'iris',
          digest: 'abc123',
          sourceType: 'local',
          source: '{"uri": "iris.csv"}',
        },
        tags: { 'mlflow.data.context': 'training' },
      },
    ]);
    expect((await c.getRun(r.runId)).inputs?.[0]?.dataset.name).toBe('iris');
  });
});

describe('views for the runs table and compare page', () => {
  it('lists the metric, param and tag keys of an experiment and reads one metric for several runs', async () => {
    const c = await client();
    const exp = await c.createExperiment('e');
    const a = await c.startRun({ experimentId: exp });
    const b = await c.startRun({ experimentId: exp });
    await c.logBatch(a.runId, {
      metrics: [
        { key: 'loss', value: 1, step: 0, timestamp: 1 },
        { key: 'loss', value: 0.5, step: 1, timestamp: 2 },
      ],
      params: [{ key: 'lr', value: '0.1' }],
    });
    await c.logBatch(b.runId, {
      metrics: [{ key: 'acc', value: 0.7, step: 0, timestamp: 1 }],
      tags: [{ key: 'team', value: 'x' }],
    });
    const keys = await c.getExperimentKeys(exp);
    expect(keys.metrics).toEqual(['acc', 'loss']);
    expect(keys.params).toEqual(['lr']);
    expect(keys.tags).toContain('team');
    expect(keys.tags).toContain('mlflow.runName');
    const h = await c.getMetricHistories([a.runId, b.runId], 'loss');
    expect(h.get(a.runId)!.map((m) => m.value)).toEqual([1, 0.5]);
    expect(h.get(b.runId)).toEqual([]);
  });
});

describe('artifacts', () => {
  it('stores files in a tree, lists a folder and reads them back', async () => {
    const c = await client();
    const r = await c.startRun({ experimentId: await c.createExperiment('e') });
    await c.logText(r.runId, 'hello', 'notes/readme.txt');
    await c.logDict(r.runId, { a: 1, b: [1, 2] }, 'config.json');
    await c.logDict(r.runId, { a: 1 }, 'config.yaml');
    const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]);
    await c.logImage(r.runId, png, 'plots/roc.png');
    expect(await c.listArtifacts(r.runId)).toEqual([
      { path: 'config.json', isDir: false, fileSize: 39 },
      { path: 'config.yaml', isDir: false, fileSize: 5 },
      { path: 'notes', isDir: true },
      { path: 'plots', isDir: true },
    ]);
    expect(await c.listArtifacts(r.runId, 'notes')).toEqual([
      { path: 'notes/readme.txt', isDir: false, fileSize: 5 },
    ]);
    expect(await c.readArtifactText(r.runId, 'notes/readme.txt')).toBe('hello');
    expect(JSON.parse(await c.readArtifactText(r.runId, 'config.json'))).toEqual({
      a: 1,
      b: [1, 2],
    });
    expect(await c.readArtifactText(r.runId, 'config.yaml')).toBe('a: 1\n');
    expect(
      new Uint8Array(await (await c.readArtifact(r.runId, 'plots/roc.png')).arrayBuffer()),
    ).toEqual(png);
    await c.logText(r.runId, 'replaced', 'notes/readme.txt');
    expect(await c.readArtifactText(r.runId, 'notes/readme.txt')).toBe('replaced');
    expect(await c.db.count('blobFiles')).toBe(4);
  });

  it('rejects artifact paths that leave the run folder', async () => {
    const c = await client();
    const r = await c.startRun({ experimentId: await c.createExperiment('e') });
    for (const p of ['../x', '/etc/passwd', 'a\\b', 'C:/x', 'a/../../b']) {
      expect(await code(c.logText(r.runId, 'x', p)), p).toBe('INVALID_PARAMETER_VALUE');
    }
  });
});

describe('change events', () => {
  it('emits an event after each write', async () => {
    const c = await client();
    const seen: StoreChange[] = [];
    const off = onStoreChange((e) => seen.push(e));
    const exp = await c.createExperiment('e');
    const r = await c.startRun({ experimentId: exp });
    await c.logMetric(r.runId, 'm', 1);
    off();
    await c.logMetric(r.runId, 'm', 2);
    expect(seen).toEqual([
      { kind: 'experiment', id: exp },
      { kind: 'run', id: r.runId },
      { kind: 'metric', id: r.runId },
    ]);
  });
});
