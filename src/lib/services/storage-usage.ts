/**
 * Where the space goes and getting it back: usage per registered model and per experiment,
 * deleting a model version's weights while keeping its registry entry, and garbage collection of
 * stored files nothing refers to (left by a tab closed mid-import, or by a failed cleanup).
 */
import type { AnyDB } from '../store/db.ts';
import { deleteBlob, type BlobFileRecord } from '../store/blobs.ts';
import type { ModelFileRecord } from '../store/model-files.ts';
import { setModelVersionTag, type ModelVersionRecord } from '../store/registry.ts';
import { emitStoreChange } from './events.ts';

/** Version tag set when the weights were deleted; its value is the ISO time of the deletion. */
export const WEIGHTS_REMOVED_TAG = 'tabflow.weights_removed';

const WEIGHT_EXTENSIONS = [
  '.onnx',
  '.onnx_data',
  '.onnx.data',
  '.data',
  '.bin',
  '.safetensors',
  '.gguf',
  '.pt',
  '.pth',
  '.ckpt',
  '.h5',
  '.msgpack',
  '.npz',
  '.tflite',
];

/**
 * A file counts as weights when its name says so or when it is big (over 1 MiB); small text
 * files (MLmodel, configs, tokenizer, chat template) stay so the version page still shows them.
 */
export function isWeightFile(path: string, size: number): boolean {
  const lower = path.toLowerCase();
  if (/(^|\/)(mlmodel|mlproject)$/.test(lower)) return false;
  if (/\.(json|ya?ml|txt|md|jinja|model|py|toml|cfg)$/.test(lower) && size <= 64 * 1024 * 1024) {
    return false;
  }
  return WEIGHT_EXTENSIONS.some((e) => lower.endsWith(e)) || size > 1024 * 1024;
}

export interface VersionUsage {
  version: number;
  versionId: string;
  bytes: number;
  weightBytes: number;
  /** ISO time the weights were deleted, when they were. */
  weightsRemoved: string | null;
}

export interface ModelUsage {
  name: string;
  bytes: number;
  versions: VersionUsage[];
}

export interface ExperimentUsage {
  experimentId: string;
  name: string;
  lifecycleStage: string;
  runs: number;
  artifactBytes: number;
  importedFileBytes: number;
  /** Metric history as stored (chunks of up to 1024 points, 24 bytes a point): an upper bound. */
  metricBytes: number;
  bytes: number;
}

export interface StorageUsage {
  models: ModelUsage[];
  experiments: ExperimentUsage[];
  /** All stored files (artifacts, weights, kept mlruns files, unfinished downloads). */
  files: { count: number; bytes: number; incomplete: number };
}

interface ExperimentRow {
  experimentId: string;
  name: string;
  lifecycleStage: string;
}
interface RunRow {
  runId: string;
  experimentId: string;
}
interface ArtifactRow {
  runId: string;
  size: number;
}
interface MlrunsFileRow {
  experimentId: string;
  size: number;
}

const POINT_BYTES = 24;
const CHUNK_POINTS = 1024;

/** Usage per model (largest first) and per experiment (largest first). */
export async function storageUsage(db: AnyDB): Promise<StorageUsage> {
  const versions = (await db.getAll('modelVersions')) as ModelVersionRecord[];
  const files = (await db.getAll('modelFiles')) as ModelFileRecord[];
  const blobs = (await db.getAll('blobFiles')) as BlobFileRecord[];
  const present = new Set(blobs.filter((b) => b.complete).map((b) => b.id));

  const byVersion = new Map<string, ModelFileRecord[]>();
  for (const f of files) {
    let l = byVersion.get(f.versionId);
    if (!l) byVersion.set(f.versionId, (l = []));
    l.push(f);
  }
  const models = new Map<string, ModelUsage>();
  for (const v of versions) {
    let m = models.get(v.name);
    if (!m) models.set(v.name, (m = { name: v.name, bytes: 0, versions: [] }));
    let bytes = 0;
    let weightBytes = 0;
    for (const f of byVersion.get(v.id) ?? []) {
      if (!present.has(f.blobId)) continue;
      bytes += f.size;
      if (isWeightFile(f.path, f.size)) weightBytes += f.size;
    }
    m.bytes += bytes;
    m.versions.push({
      version: v.version,
      versionId: v.id,
      bytes,
      weightBytes,
      weightsRemoved: v.tags[WEIGHTS_REMOVED_TAG] ?? null,
    });
  }
  for (const m of models.values()) m.versions.sort((a, b) => b.version - a.version);

  const experiments = (await db.getAll('experiments')) as ExperimentRow[];
  const runs = (await db.getAll('runs')) as RunRow[];
  const runExp = new Map(runs.map((r) => [r.runId, r.experimentId]));
  const usage = new Map<string, ExperimentUsage>(
    experiments.map((e) => [
      e.experimentId,
      {
        experimentId: e.experimentId,
        name: e.name,
        lifecycleStage: e.lifecycleStage,
        runs: 0,
        artifactBytes: 0,
        importedFileBytes: 0,
        metricBytes: 0,
        bytes: 0,
      },
    ]),
  );
  for (const r of runs) {
    const u = usage.get(r.experimentId);
    if (u) u.runs++;
  }
  for (const a of (await db.getAll('artifacts')) as ArtifactRow[]) {
    const u = usage.get(runExp.get(a.runId) ?? '');
    if (u) u.artifactBytes += a.size;
  }
  for (const f of (await db.getAll('mlrunsFiles')) as MlrunsFileRow[]) {
    const u = usage.get(f.experimentId);
    if (u) u.importedFileBytes += f.size;
  }
  // Keys only: [runId, key, seq] per chunk of history.
  let cursor = await db.transaction('metricHistory').store.openKeyCursor();
  while (cursor) {
    const runId = (cursor.key as unknown as [string])[0];
    const u = usage.get(runExp.get(runId) ?? '');
    if (u) u.metricBytes += CHUNK_POINTS * POINT_BYTES;
    cursor = await cursor.continue();
  }
  for (const u of usage.values()) u.bytes = u.artifactBytes + u.importedFileBytes + u.metricBytes;

  return {
    models: [...models.values()].sort((a, b) => b.bytes - a.bytes || a.name.localeCompare(b.name)),
    experiments: [...usage.values()].sort(
      (a, b) => b.bytes - a.bytes || a.name.localeCompare(b.name),
    ),
    files: {
      count: blobs.length,
      bytes: blobs.reduce((n, b) => n + b.size, 0),
      incomplete: blobs.filter((b) => !b.complete).length,
    },
  };
}

export interface DeletedWeights {
  files: string[];
  bytes: number;
}

/**
 * Deletes the weight files of one model version and keeps everything else: the registry entry,
 * its stage, aliases, tags and description, and the small files (MLmodel, configs, tokenizer).
 * The file list still names the deleted files; the version gets the tag `tabflow.weights_removed`
 * so the pages can say so. Re-import or re-download the model to serve it again.
 */
export async function deleteModelWeights(
  db: AnyDB,
  name: string,
  version: number,
): Promise<DeletedWeights> {
  const rec = (await db.getFromIndex('modelVersions', 'nameVersion', [name, version])) as
    ModelVersionRecord | undefined;
  if (!rec) throw new Error(`Model version ${name} v${version} not found`);
  const files = (await db.getAllFromIndex('modelFiles', 'versionId', rec.id)) as ModelFileRecord[];
  const out: DeletedWeights = { files: [], bytes: 0 };
  // The tag first: if the tab dies half-way, the version already says its weights are going.
  await setModelVersionTag(db, name, version, WEIGHTS_REMOVED_TAG, new Date().toISOString());
  for (const f of files) {
    if (!isWeightFile(f.path, f.size)) continue;
    await deleteBlob(db, f.blobId);
    out.files.push(f.path);
    out.bytes += f.size;
  }
  emitStoreChange({ kind: 'model', id: name });
  return out;
}

/** Whether a version's weights were deleted (by deleteModelWeights) or are missing. */
export async function weightsMissing(db: AnyDB, versionId: string): Promise<boolean> {
  const files = (await db.getAllFromIndex(
    'modelFiles',
    'versionId',
    versionId,
  )) as ModelFileRecord[];
  for (const f of files) {
    const b = (await db.get('blobFiles', f.blobId)) as BlobFileRecord | undefined;
    if (!b || !b.complete) return true;
  }
  return false;
}

// ---------------------------------------------------------------- garbage collection

export interface GcOptions {
  /**
   * Files younger than this are left alone even when nothing refers to them yet: another tab
   * may be importing (an import writes files first, then the records that refer to them).
   * Default one hour.
   */
  graceMs?: number;
  now?: number;
}

export interface GcResult {
  /** Stored files removed (nothing referred to them). */
  files: string[];
  bytes: number;
  /** Chunks removed whose file record was gone. */
  orphanChunks: number;
}

const BLOB_STORES = new Set(['blobFiles', 'blobChunks']);

function collectStrings(v: unknown, wanted: Set<string>, found: Set<string>, depth = 0): void {
  if (depth > 32 || v === null || v === undefined) return;
  if (typeof v === 'string') {
    if (wanted.has(v)) found.add(v);
    return;
  }
  if (typeof v !== 'object' || ArrayBuffer.isView(v) || v instanceof ArrayBuffer) return;
  if (typeof Blob !== 'undefined' && v instanceof Blob) return;
  if (Array.isArray(v)) {
    for (const x of v) collectStrings(x, wanted, found, depth + 1);
    return;
  }
  for (const x of Object.values(v as Record<string, unknown>))
    collectStrings(x, wanted, found, depth + 1);
}

/**
 * Removes stored files that no record in any other object store mentions (the check reads every
 * store, so a store added later that refers to files by id is covered without changes here),
 * and chunks whose file record is gone.
 */
export async function collectOrphanFiles(db: AnyDB, opts: GcOptions = {}): Promise<GcResult> {
  const grace = opts.graceMs ?? 60 * 60 * 1000;
  const now = opts.now ?? Date.now();
  const blobs = (await db.getAll('blobFiles')) as BlobFileRecord[];
  const candidates = new Map(
    blobs.filter((b) => now - b.createdAt >= grace).map((b) => [b.id, b] as const),
  );
  const result: GcResult = { files: [], bytes: 0, orphanChunks: 0 };
  if (candidates.size > 0) {
    const wanted = new Set(candidates.keys());
    const found = new Set<string>();
    for (const name of Array.from(db.objectStoreNames)) {
      if (BLOB_STORES.has(name) || name === 'metricHistory' || name === 'latestMetrics') continue;
      let cursor = await db.transaction(name).store.openCursor();
      while (cursor) {
        collectStrings(cursor.value, wanted, found);
        cursor = await cursor.continue();
      }
    }
    for (const [id, b] of candidates) {
      if (found.has(id)) continue;
      // Re-check right before deleting: a write may have started using it meanwhile.
      const again = (await db.get('blobFiles', id)) as BlobFileRecord | undefined;
      if (!again || now - again.createdAt < grace) continue;
      await deleteBlob(db, id);
      result.files.push(id);
      result.bytes += b.size;
    }
  }
  // Chunks without a file record (nothing can read them).
  const ids = new Set((await db.getAllKeys('blobFiles')) as string[]);
  const orphanIds = new Set<string>();
  let kc = await db.transaction('blobChunks').store.openKeyCursor();
  while (kc) {
    const [fileId] = kc.key as unknown as [string, number];
    if (!ids.has(fileId)) orphanIds.add(fileId);
    kc = await kc.continue();
  }
  for (const id of orphanIds) {
    if (await db.get('blobFiles', id)) continue;
    const range = IDBKeyRange.bound([id, 0], [id, Number.MAX_SAFE_INTEGER]);
    result.orphanChunks += await db.count('blobChunks', range);
    await db.delete('blobChunks', range);
  }
  return result;
}

export { getDatabase as getAppDatabase } from '../store/db.ts';
