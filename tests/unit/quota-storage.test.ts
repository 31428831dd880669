// Storage faults on a real (fake-indexeddb) store: refusing early with the numbers, a quota error
// in the middle of a write rolling back, usage per model and experiment, deleting weights while
// keeping the registry entry, and garbage collection of orphaned files and chunks.
import 'fake-indexeddb/auto';
import { describe, expect, it } from 'vitest';
import { strToU8, zipSync } from 'fflate';
import { openDatabase, type AnyDB } from '../../src/lib/store/db.ts';
import { StorageQuotaError, readBlobBytes, writeBlob } from '../../src/lib/store/blobs.ts';
import { InsufficientStorageError, ensureSpaceFor, withMargin } from '../../src/lib/store/quota.ts';
import {
  WEIGHTS_REMOVED_TAG,
  collectOrphanFiles,
  deleteModelWeights,
  isWeightFile,
  storageUsage,
  weightsMissing,
} from '../../src/lib/services/storage-usage.ts';
import { TrackingClient } from '../../src/lib/services/tracking.ts';
import { RegistryClient } from '../../src/lib/services/registry.ts';
import { putDownload } from '../../src/lib/store/downloads.ts';

let n = 0;
const fresh = () => openDatabase({ name: `quota-${n++}` });
const bytes = (size: number, seed = 3) => new Uint8Array(size).map((_, i) => (i * seed + 1) & 255);

/** The database, with every blobChunks put after the first `okPuts` failing as a full disk does. */
function failingAfter(db: AnyDB, okPuts: number): AnyDB {
  let puts = 0;
  const bind = <T extends object>(target: T, over: (p: string | symbol) => unknown): T =>
    new Proxy(target, {
      get(t, p) {
        const o = over(p);
        if (o !== undefined) return o;
        const v = Reflect.get(t, p, t);
        return typeof v === 'function' ? v.bind(t) : v;
      },
    });
  return bind(db, (p) =>
    p === 'transaction'
      ? (...args: Parameters<AnyDB['transaction']>) => {
          const tx = db.transaction(...args);
          return bind(tx, (q) =>
            q === 'objectStore'
              ? (name: string) => {
                  const store = tx.objectStore(name);
                  return bind(store, (r) =>
                    r === 'put' && name === 'blobChunks'
                      ? (...a: unknown[]) => {
                          if (++puts > okPuts) {
                            throw new DOMException(
                              'The quota has been exceeded.',
                              'QuotaExceededError',
                            );
                          }
                          return (store.put as (...x: unknown[]) => unknown)(...a);
                        }
                      : undefined,
                  );
                }
              : undefined,
          );
        }
      : undefined,
  );
}

describe('quota pre-check', () => {
  it('refuses early with the numbers', async () => {
    const err = await ensureSpaceFor(50_000_000, 'phi3.zip', async () => ({
      usage: 900_000_000,
      quota: 940_000_000,
    })).catch((e) => e);
    expect(err).toBeInstanceOf(InsufficientStorageError);
    expect(err).toBeInstanceOf(StorageQuotaError);
    expect(err.neededBytes).toBe(withMargin(50_000_000));
    expect(err.availableBytes).toBe(40_000_000);
    expect(err.message).toBe(
      'Not enough storage for phi3.zip: it needs about 60.9 MB, and the browser allows 40.0 MB more (900.0 MB used of 940.0 MB). Nothing was written. Free space in Settings → Storage (delete model weights or experiments), or free disk space on this computer.',
    );
  });

  it('lets a write through when it fits, and does not block when the browser reports nothing', async () => {
    const ok = await ensureSpaceFor(1000, 'x', async () => ({ usage: 0, quota: 1e9 }));
    expect(ok).toMatchObject({ checked: true, availableBytes: 1e9 });
    expect(await ensureSpaceFor(1e15, 'x', async () => null)).toMatchObject({ checked: false });
    expect(await ensureSpaceFor(1e15, 'x', async () => ({ usage: 5 }))).toMatchObject({
      checked: false,
    });
  });
});

describe('a quota error in the middle of a write', () => {
  it('rolls the file back and says how much space is needed', async () => {
    const db = await fresh();
    await writeBlob(db, 'keep', bytes(100));
    const before = { files: await db.count('blobFiles'), chunks: await db.count('blobChunks') };
    const err = await writeBlob(failingAfter(db, 2), 'big', bytes(10_000), {
      chunkSize: 1000,
      expectedSize: 10_000,
    }).catch((e) => e);
    expect(err).toBeInstanceOf(StorageQuotaError);
    expect(err.neededBytes).toBe(10_000);
    expect(err.message).toContain('About 10.0 KB more space is needed');
    expect({ files: await db.count('blobFiles'), chunks: await db.count('blobChunks') }).toEqual(
      before,
    );
    expect(await readBlobBytes(db, 'keep')).toEqual(bytes(100));
  });

  it('an artifact write that hits the quota leaves no artifact record and no chunks', async () => {
    const db = await fresh();
    const t = new TrackingClient(db);
    const exp = await t.createExperiment('e');
    const run = await t.startRun({ experimentId: exp });
    const before = { files: await db.count('blobFiles'), chunks: await db.count('blobChunks') };
    const full = new TrackingClient(failingAfter(db, 0));
    await expect(full.logArtifact(run.runId, 'big.bin', bytes(5000))).rejects.toBeInstanceOf(
      StorageQuotaError,
    );
    expect(await t.listArtifacts(run.runId)).toEqual([]);
    expect({ files: await db.count('blobFiles'), chunks: await db.count('blobChunks') }).toEqual(
      before,
    );
  });
});

function modelZip(): File {
  const env = '    env:\n      conda: conda.yaml\n      virtualenv: python_env.yaml\n';
  return new File(
    [
      zipSync({
        MLmodel: strToU8(
          `flavors:\n  onnx:\n    data: model.onnx\n    onnx_version: 1.16.1\n  python_function:\n    data: model.onnx\n${env}    loader_module: mlflow.onnx\n    python_version: 3.11.9\n`,
        ),
        'model.onnx': bytes(4000, 7),
        'model.onnx_data': [bytes(1_500_000, 11), { level: 0 }],
        'tokenizer.json': strToU8('{"model": {}}'),
        'conda.yaml': strToU8('name: x\n'),
        'python_env.yaml': strToU8('python: 3.11.9\n'),
      }) as BlobPart,
    ],
    'model.zip',
  );
}

describe('usage and deleting weights', () => {
  it('reports usage per model and per experiment', async () => {
    const db = await fresh();
    const reg = new RegistryClient(db);
    await reg.importModelZip(modelZip(), { name: 'small' });
    await reg.importModelZip(modelZip(), { name: 'small' });
    const t = new TrackingClient(db);
    const exp = await t.createExperiment('exp-a');
    const run = await t.startRun({ experimentId: exp });
    await t.logArtifact(run.runId, 'a.bin', bytes(3000));
    await t.logMetrics(run.runId, [{ key: 'm', value: 1, step: 0, timestamp: 1 }]);
    const u = await storageUsage(db);
    const m = u.models.find((x) => x.name === 'small')!;
    expect(m.versions.map((v) => v.version)).toEqual([2, 1]);
    expect(m.versions[0]!.weightBytes).toBe(1_504_000);
    expect(m.bytes).toBe(2 * m.versions[0]!.bytes);
    const e = u.experiments.find((x) => x.name === 'exp-a')!;
    expect(e).toMatchObject({ runs: 1, artifactBytes: 3000 });
    expect(e.metricBytes).toBeGreaterThan(0);
  });

  it('deletes weights, keeps the registry entry, its small files and its tags', async () => {
    const db = await fresh();
    const reg = new RegistryClient(db);
    const { version } = await reg.importModelZip(modelZip(), { name: 'phi' });
    await reg.setRegisteredModelAlias('phi', 'prod', 1);
    expect(await weightsMissing(db, version.id)).toBe(false);
    const res = await deleteModelWeights(db, 'phi', 1);
    expect(res.files.sort()).toEqual(['model.onnx', 'model.onnx_data']);
    expect(res.bytes).toBe(1_504_000);
    const v = await reg.getModelVersion('phi', 1);
    expect(v.tags[WEIGHTS_REMOVED_TAG]).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect((await reg.getRegisteredModel('phi')).aliases).toEqual({ prod: '1' });
    expect(await weightsMissing(db, version.id)).toBe(true);
    const details = await reg.getModelVersionDetails('phi', 1);
    expect(details).toBeTruthy();
    const u = await storageUsage(db);
    expect(u.models[0]!.versions[0]).toMatchObject({ weightBytes: 0 });
    expect(u.models[0]!.versions[0]!.weightsRemoved).toBeTruthy();
    // Small files stay readable.
    const tok = (await db.get('modelFiles', [version.id, 'tokenizer.json'])) as { blobId: string };
    expect(new TextDecoder().decode(await readBlobBytes(db, tok.blobId))).toBe('{"model": {}}');
  });

  it('tells weights from metadata by name and size', () => {
    expect(isWeightFile('model/onnx/model_q4.onnx', 100)).toBe(true);
    expect(isWeightFile('model.safetensors', 10)).toBe(true);
    expect(isWeightFile('python_model.pkl', 5_000_000)).toBe(true);
    expect(isWeightFile('MLmodel', 5_000_000)).toBe(false);
    expect(isWeightFile('components/tokenizer/tokenizer.json', 3_000_000)).toBe(false);
    expect(isWeightFile('conda.yaml', 100)).toBe(false);
  });
});

describe('garbage collection', () => {
  it('removes files nothing refers to once old enough, and chunks without a file', async () => {
    const db = await fresh();
    const t = new TrackingClient(db);
    const exp = await t.createExperiment('e');
    const run = await t.startRun({ experimentId: exp });
    await t.logArtifact(run.runId, 'kept.txt', 'kept');
    await writeBlob(db, 'orphan-old', bytes(500));
    await writeBlob(db, 'orphan-young', bytes(500));
    await writeBlob(db, 'download-part', bytes(500));
    await putDownload(db, {
      id: 'd',
      repoId: 'o/r',
      revision: 'main',
      commit: 'c',
      subfolder: '',
      layout: 'web',
      modelName: 'm',
      hubUrl: 'https://huggingface.co',
      files: [
        {
          remotePath: 'a',
          path: 'a',
          size: 1000,
          blobId: 'download-part',
          chunkSize: 500,
          chunksDone: 1,
        },
      ],
      totalBytes: 1000,
      status: 'interrupted',
      createdAt: 1,
      updatedAt: 1,
    });
    // Age every file except the young orphan by two hours.
    const now = Date.now() + 2 * 3600_000;
    const young = (await db.get('blobFiles', 'orphan-young')) as { createdAt: number };
    await db.put('blobFiles', { ...young, createdAt: now - 60_000 });
    // A chunk whose file record is gone (a cleanup cut short).
    await db.put('blobChunks', bytes(10), ['lost-file', 0]);
    await db.put('blobChunks', bytes(10), ['lost-file', 1]);

    const res = await collectOrphanFiles(db, { now });
    expect(res.files).toEqual(['orphan-old']);
    expect(res.bytes).toBe(500);
    expect(res.orphanChunks).toBe(2);
    const left = ((await db.getAllKeys('blobFiles')) as string[]).sort();
    expect(left).toContain('orphan-young');
    expect(left).toContain('download-part');
    expect(await t.readArtifactText(run.runId, 'kept.txt')).toBe('kept');
    expect(
      await db.count('blobChunks', IDBKeyRange.bound(['lost-file', 0], ['lost-file', 9])),
    ).toBe(0);

    // With no grace, the young orphan goes too; referenced files never do.
    const again = await collectOrphanFiles(db, { graceMs: 0, now });
    expect(again.files).toEqual(['orphan-young']);
    expect(await t.readArtifactText(run.runId, 'kept.txt')).toBe('kept');
  });
});
