// "Export everything" then "Import everything" gives back the same store: every object store's
// record count and records compared before and after (real IndexedDB via fake-indexeddb).
import 'fake-indexeddb/auto';
import { describe, expect, it } from 'vitest';
import { strToU8, zipSync, unzipSync } from 'fflate';
import { openDatabase, type AnyDB } from '../../src/lib/store/db.ts';
import { TrackingClient } from '../../src/lib/services/tracking.ts';
import { RegistryClient } from '../../src/lib/services/registry.ts';
import { createConversation, saveConversation } from '../../src/lib/services/conversations.ts';
import { createProject } from '../../src/lib/services/projects.ts';
import { putDownload } from '../../src/lib/store/downloads.ts';
import { writeBlob, readBlobBytes } from '../../src/lib/store/blobs.ts';
import {
  BackupFormatError,
  exportEverything,
  importEverything,
} from '../../src/lib/services/backup.ts';
import { WEIGHTS_REMOVED_TAG } from '../../src/lib/services/storage-usage.ts';
import { InsufficientStorageError } from '../../src/lib/store/quota.ts';
import { decodeValue, encodeValue } from '../../src/lib/store/backup.ts';
import fc from 'fast-check';
import { createHash } from 'node:crypto';

const digest = (b: Uint8Array) =>
  `sha256:${createHash('sha256').update(b).digest('hex')}:${b.length}`;

let n = 0;
const fresh = () => openDatabase({ name: `backup-${n++}` });

const weights = (size: number, seed: number) =>
  new Uint8Array(size).map((_, i) => (i * seed + 7) & 0xff);

function onnxModelZip(): File {
  const env = '    env:\n      conda: conda.yaml\n      virtualenv: python_env.yaml\n';
  const files = {
    MLmodel: strToU8(
      `flavors:\n  onnx:\n    code: null\n    data: model.onnx\n    onnx_version: 1.16.1\n    providers:\n    - CPUExecutionProvider\n  python_function:\n    code: null\n    data: model.onnx\n${env}    loader_module: mlflow.onnx\n    python_version: 3.11.9\n`,
    ),
    'model.onnx': weights(3000, 23),
    'weights.bin': [weights(2_000_000, 29), { level: 0 }] as [Uint8Array, { level: 0 }],
    'conda.yaml': strToU8('name: x\n'),
    'python_env.yaml': strToU8('python: 3.11.9\n'),
  };
  return new File([zipSync(files) as BlobPart], 'model.zip');
}

/** Populates a store with one of everything the app keeps. */
async function populate(db: AnyDB): Promise<void> {
  const t = new TrackingClient(db);
  const exp = await t.createExperiment('backup <b>test</b>', { tags: { team: 'a' } });
  const run = await t.startRun({ experimentId: exp, runName: 'r1', tags: { note: 'x' } });
  await t.logParams(run.runId, { lr: 0.01, layers: 4 });
  await t.logMetrics(run.runId, [
    { key: 'loss', value: 1.5, step: 0, timestamp: 1 },
    { key: 'loss', value: Number.NaN, step: 1, timestamp: 2 },
    { key: 'loss', value: -0, step: 2, timestamp: 3 },
    { key: 'acc', value: Number.POSITIVE_INFINITY, step: 0, timestamp: 4 },
  ]);
  const buf = t.metricBuffer(run.runId);
  for (let i = 0; i < 3000; i++) buf.log('curve', Math.sin(i), { step: i, timestamp: 10 + i });
  await buf.flush();
  await t.logText(run.runId, '# hello', 'notes/readme.md');
  await t.logArtifact(run.runId, 'data/blob.bin', weights(70_000, 3));
  await t.endRun(run.runId);
  await t.deleteRun((await t.startRun({ experimentId: exp, runName: 'gone' })).runId);

  const reg = new RegistryClient(db);
  const imported = await reg.importModelZip(onnxModelZip(), { name: 'onnx-model' });
  await reg.setRegisteredModelAlias('onnx-model', 'champion', imported.version.version);

  const c = await createConversation(db, { mode: 'chat', model: null, title: 'hi' });
  c.messages.push({ role: 'user', content: 'hello' } as (typeof c.messages)[number]);
  await saveConversation(db, c);
  await createProject(db, { name: 'eval', rows: [{ prompt: 'a', expected: 'b' }] });

  // An unfinished download with one stored chunk of a two-chunk file.
  await writeBlob(db, 'dl-file', weights(1000, 5), { chunkSize: 1000 });
  await putDownload(db, {
    id: 'dl-1',
    repoId: 'o/r',
    revision: 'main',
    commit: 'c'.repeat(40),
    subfolder: '',
    layout: 'web',
    modelName: 'm',
    hubUrl: 'https://huggingface.co',
    files: [
      {
        remotePath: 'a',
        path: 'model/a',
        size: 2000,
        blobId: 'dl-file',
        chunkSize: 1000,
        chunksDone: 1,
      },
    ],
    totalBytes: 2000,
    status: 'interrupted',
    createdAt: 1,
    updatedAt: 2,
  });
}

/** Every object store: its [key, value] pairs in key order; chunk values as bytes. */
async function snapshot(db: AnyDB): Promise<Record<string, [unknown, unknown][]>> {
  const out: Record<string, [unknown, unknown][]> = {};
  for (const name of Array.from(db.objectStoreNames)) {
    const keys = await db.getAllKeys(name);
    const values = await db.getAll(name);
    out[name] = await Promise.all(
      keys.map(async (k, i) => {
        const v = values[i];
        const bytes = v instanceof Blob ? new Uint8Array(await v.arrayBuffer()) : v;
        // Chunks compare by digest: deep equality over megabytes element by element is slow.
        return [k, bytes instanceof Uint8Array ? digest(bytes) : bytes] as [unknown, unknown];
      }),
    );
  }
  return out;
}

describe('backup round trip', () => {
  it('export everything (with weights) then import into a fresh store: every store equal', async () => {
    const a = await fresh();
    await populate(a);
    const before = await snapshot(a);
    expect(before.runs!.length).toBe(2);
    expect(before.metricHistory!.length).toBeGreaterThan(2);
    expect(before.modelFiles!.length).toBe(5);

    const backup = await exportEverything(a, { includeWeights: true });
    const b = await fresh();
    const res = await importEverything(b, backup);
    const after = await snapshot(b);
    expect(Object.keys(after).sort()).toEqual(Object.keys(before).sort());
    for (const name of Object.keys(before)) {
      expect(after[name]!.length, `${name} count`).toBe(before[name]!.length);
      expect(after[name], name).toEqual(before[name]);
    }
    expect(res.records.runs).toBe(2);
    // Signs and non-finite values survive (NaN, -0, Infinity).
    const t = new TrackingClient(b);
    const [exp] = await t.listExperiments();
    const { runs } = await t.searchRuns({
      experimentIds: [exp!.experimentId],
      filter: "attributes.run_name = 'r1'",
    });
    const hist = await t.getMetricHistory(runs[0]!.info.runId, 'loss');
    expect(hist.map((p) => p.value)).toEqual([1.5, Number.NaN, -0]);
    expect(Object.is(hist[2]!.value, -0)).toBe(true);
  });

  it('import replaces what was stored, and deletes files only the old data used', async () => {
    const a = await fresh();
    await populate(a);
    const before = await snapshot(a);
    const backup = await exportEverything(a, { includeWeights: true });
    const b = await fresh();
    const t = new TrackingClient(b);
    const other = await t.createExperiment('old stuff');
    const r = await t.startRun({ experimentId: other });
    await t.logArtifact(r.runId, 'old.bin', weights(5000, 9));
    await importEverything(b, backup);
    expect(await snapshot(b)).toEqual(before);
  });

  it('without weights: weight files are left out, small files kept, the version says so', async () => {
    const a = await fresh();
    await populate(a);
    const backup = await exportEverything(a, { includeWeights: false });
    const entries = Object.keys(unzipSync(new Uint8Array(await backup.arrayBuffer())));
    expect(entries).toContain('tabflow-backup.json');
    const b = await fresh();
    await importEverything(b, backup);
    const reg = new RegistryClient(b);
    const v = await reg.getModelVersion('onnx-model', 1);
    expect(v.tags[WEIGHTS_REMOVED_TAG]).toBeTruthy();
    const files = (await b.getAll('modelFiles')) as { path: string; blobId: string }[];
    const mlmodel = files.find((f) => f.path === 'MLmodel')!;
    expect(new TextDecoder().decode(await readBlobBytes(b, mlmodel.blobId))).toContain('flavors');
    const bin = files.find((f) => f.path === 'weights.bin')!;
    expect(await b.get('blobFiles', bin.blobId)).toBeUndefined();
    // Runs and artifacts are all there.
    expect(await b.count('runs')).toBe(2);
    expect(await b.count('artifacts')).toBe(await a.count('artifacts'));
  });

  it('a damaged backup is refused with the entry and line, and the store is unchanged', async () => {
    const a = await fresh();
    await populate(a);
    const backup = new Uint8Array(await (await exportEverything(a)).arrayBuffer());
    const files = unzipSync(backup);
    const runs = new TextDecoder().decode(files['stores/runs.jsonl']!);
    const lines = runs.trimEnd().split('\n');

    const b = await fresh();
    const t = new TrackingClient(b);
    await t.createExperiment('keep me');
    const before = await snapshot(b);

    const broken = zipSync({ ...files, 'stores/runs.jsonl': strToU8(`${lines[0]}\n{not json\n`) });
    const err = await importEverything(b, new Blob([broken as BlobPart])).catch((e) => e);
    expect(err).toBeInstanceOf(BackupFormatError);
    expect(String(err.message)).toContain('stores/runs.jsonl:2');
    expect(await snapshot(b)).toEqual(before);

    const short = zipSync({ ...files, 'stores/runs.jsonl': strToU8(`${lines[0]}\n`) });
    await expect(importEverything(b, new Blob([short as BlobPart]))).rejects.toThrow(
      /expected 2 records, found 1/,
    );
    expect(await snapshot(b)).toEqual(before);

    const notBackup = zipSync({ MLmodel: strToU8('flavors: {}') });
    await expect(importEverything(b, new Blob([notBackup as BlobPart]))).rejects.toThrow(
      /not a Tabflow backup/,
    );
    expect(await snapshot(b)).toEqual(before);
  });

  it('refuses early with the numbers when the estimate says it will not fit', async () => {
    const a = await fresh();
    await populate(a);
    const backup = await exportEverything(a, { includeWeights: true });
    const b = await fresh();
    const before = await snapshot(b);
    const err = await importEverything(b, backup, {
      estimate: async () => ({ usage: 9_000_000, quota: 10_000_000 }),
    }).catch((e) => e);
    expect(err).toBeInstanceOf(InsufficientStorageError);
    expect(err.message).toMatch(
      /needs about .* allows 1\.00 MB more \(9\.00 MB used of 10\.0 MB\)/,
    );
    expect(await snapshot(b)).toEqual(before);
  });
});

describe('record encoding', () => {
  it('round-trips structured-clone values through JSON', () => {
    const value = fc.letrec<{ v: unknown }>((tie) => ({
      v: fc.oneof(
        { depthSize: 'small' },
        fc.double(),
        fc.integer(),
        fc.string(),
        fc.boolean(),
        fc.constant(null),
        fc.float64Array({ maxLength: 5 }),
        fc.uint8Array({ maxLength: 5 }),
        fc.int32Array({ maxLength: 5 }),
        fc.date({ noInvalidDate: true }),
        fc.array(tie('v'), { maxLength: 4 }),
        fc.dictionary(fc.oneof(fc.string({ maxLength: 6 }), fc.constant('$tabflow')), tie('v'), {
          maxKeys: 4,
          noNullPrototype: true,
        }),
      ),
    })).v;
    fc.assert(
      fc.property(value, (v) => {
        const back = decodeValue(JSON.parse(JSON.stringify(encodeValue(v))));
        expect(back).toStrictEqual(v);
      }),
      { numRuns: 300 },
    );
  });
});
