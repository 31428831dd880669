/**
 * Tracking repository: the only code that reads and writes the tracking object stores
 * (see migrations/002-tracking.ts for the shape and why).
 */
import { unwrap, type IDBPTransaction } from 'idb';
import type { AnyDB } from './db.ts';
import type {
  DatasetInput,
  Experiment,
  Metric,
  Param,
  Run,
  RunInfo,
  RunTag,
} from '../mlflow/entities.ts';
import { MlflowError } from '../mlflow/errors.ts';

export const TRACKING_STORES = [
  'experiments',
  'runs',
  'latestMetrics',
  'metricHistory',
  'artifacts',
  'mlrunsFiles',
] as const;

/** Longest value kept in the param/tag equality indexes; longer values are re-checked in JS. */
const INDEXED_VALUE_CHARS = 200;

export interface RunRecord extends RunInfo {
  /** Epoch ms of the soft delete (MLflow's deleted_time), else null. */
  deletedTime: number | null;
  params: Record<string, string>;
  tags: Record<string, string>;
  metrics: Record<string, Metric>;
  inputs: DatasetInput[];
  paramIndex: string[];
  tagIndex: string[];
}

/**
 * `latestMetrics` holds keys only: [experimentId, metric key, latest value, runId] -> runId.
 * A metric comparison or a sort by a metric is then one key-range read, with no record fetched.
 * NaN is not a valid key, so runs whose latest value is NaN are absent (they sort last anyway).
 */
export type LatestMetricKey = [string, string, number, string];

function latestKey(experimentId: string, m: Metric, runId: string): LatestMetricKey | null {
  return Number.isNaN(m.value) ? null : [experimentId, m.key, m.value, runId];
}

/** Points per metric history chunk. */
export const CHUNK_POINTS = 1024;

/** A run of consecutive logged points of one metric, in the order they were logged. */
export interface MetricChunk {
  runId: string;
  key: string;
  seq: number;
  steps: Float64Array;
  timestamps: Float64Array;
  values: Float64Array;
}

/** One metric's history as parallel arrays (charts read these without making point objects). */
export interface MetricSeries {
  steps: Float64Array;
  timestamps: Float64Array;
  values: Float64Array;
}

function chunkRange(runId: string, key: string): IDBKeyRange {
  return IDBKeyRange.bound([runId, key, -Infinity], [runId, key, Infinity]);
}

function runChunkRange(runId: string): IDBKeyRange {
  return IDBKeyRange.bound([runId], [runId, []]);
}

function concatSeries(chunks: MetricChunk[]): MetricSeries {
  let n = 0;
  for (const c of chunks) n += c.values.length;
  const out: MetricSeries = {
    steps: new Float64Array(n),
    timestamps: new Float64Array(n),
    values: new Float64Array(n),
  };
  let off = 0;
  for (const c of chunks) {
    out.steps.set(c.steps, off);
    out.timestamps.set(c.timestamps, off);
    out.values.set(c.values, off);
    off += c.values.length;
  }
  return out;
}

/** Sorts a series by (step, timestamp), keeping log order among equal points. */
export function sortSeries(s: MetricSeries): MetricSeries {
  const n = s.values.length;
  let sorted = true;
  for (let i = 1; i < n && sorted; i++) {
    const ds = s.steps[i]! - s.steps[i - 1]!;
    sorted = ds > 0 || (ds === 0 && s.timestamps[i]! >= s.timestamps[i - 1]!);
  }
  if (sorted) return s;
  const idx = Array.from({ length: n }, (_, i) => i);
  idx.sort((a, b) => s.steps[a]! - s.steps[b]! || s.timestamps[a]! - s.timestamps[b]! || a - b);
  const out: MetricSeries = {
    steps: new Float64Array(n),
    timestamps: new Float64Array(n),
    values: new Float64Array(n),
  };
  idx.forEach((j, i) => {
    out.steps[i] = s.steps[j]!;
    out.timestamps[i] = s.timestamps[j]!;
    out.values[i] = s.values[j]!;
  });
  return out;
}

function seriesToMetrics(key: string, s: MetricSeries): Metric[] {
  const out: Metric[] = new Array(s.values.length);
  for (let i = 0; i < s.values.length; i++) {
    out[i] = { key, value: s.values[i]!, timestamp: s.timestamps[i]!, step: s.steps[i]! };
  }
  return out;
}

/** Packs points (in log order) into chunks numbered from `firstSeq`. */
export function packChunks(
  runId: string,
  key: string,
  points: readonly Metric[],
  firstSeq = 0,
): MetricChunk[] {
  const out: MetricChunk[] = [];
  for (let i = 0, seq = firstSeq; i < points.length; i += CHUNK_POINTS, seq++) {
    const part = points.slice(i, i + CHUNK_POINTS);
    out.push({
      runId,
      key,
      seq,
      steps: Float64Array.from(part, (p) => p.step),
      timestamps: Float64Array.from(part, (p) => p.timestamp),
      values: Float64Array.from(part, (p) => p.value),
    });
  }
  return out;
}

function appendToChunk(c: MetricChunk, points: readonly Metric[]): MetricChunk {
  const n = c.values.length;
  const grow = (a: Float64Array, pick: (p: Metric) => number) => {
    const b = new Float64Array(n + points.length);
    b.set(a);
    points.forEach((p, i) => (b[n + i] = pick(p)));
    return b;
  };
  return {
    ...c,
    steps: grow(c.steps, (p) => p.step),
    timestamps: grow(c.timestamps, (p) => p.timestamp),
    values: grow(c.values, (p) => p.value),
  };
}

export interface ArtifactRecord {
  runId: string;
  /** '/'-separated path under the run's artifact root. */
  path: string;
  blobId: string;
  size: number;
  createdAt: number;
}

/** An mlruns file as imported: its bytes, and what our writer produced from it at import time. */
export interface MlrunsFileRecord {
  /** Path relative to the mlruns root, '/' separated. */
  path: string;
  experimentId: string;
  runId: string | null;
  /** true: a file we keep as is and do not map to an entity (logged models, traces, ...). */
  preserved: boolean;
  /** SHA-256 (hex) of our writer's output for the entity as imported; '' for preserved files. */
  canonicalHash: string;
  bytes?: Uint8Array;
  blobId?: string;
  size: number;
}

export function indexEntry(experimentId: string, key: string, value: string): string {
  return `${experimentId}\u0000${key}\u0000${value.slice(0, INDEXED_VALUE_CHARS)}`;
}

function reindex(rec: RunRecord): void {
  rec.paramIndex = Object.entries(rec.params).map(([k, v]) => indexEntry(rec.experimentId, k, v));
  rec.tagIndex = Object.entries(rec.tags).map(([k, v]) => indexEntry(rec.experimentId, k, v));
}

export function newRunRecord(info: RunInfo, tags: Record<string, string> = {}): RunRecord {
  const rec: RunRecord = {
    ...info,
    deletedTime: null,
    params: {},
    tags: { ...tags },
    metrics: {},
    inputs: [],
    paramIndex: [],
    tagIndex: [],
  };
  reindex(rec);
  return rec;
}

export function runInfoOf(rec: RunRecord): RunInfo {
  return {
    runId: rec.runId,
    experimentId: rec.experimentId,
    runName: rec.runName,
    userId: rec.userId,
    status: rec.status,
    startTime: rec.startTime,
    endTime: rec.endTime,
    artifactUri: rec.artifactUri,
    lifecycleStage: rec.lifecycleStage,
  };
}

export function runOf(rec: RunRecord): Run {
  return {
    info: runInfoOf(rec),
    params: rec.params,
    metrics: rec.metrics,
    tags: rec.tags,
    inputs: rec.inputs,
  };
}

/** MLflow's "latest": the point with the greatest (step, timestamp, value). */
export function isNewer(a: Metric, b: Metric | undefined): boolean {
  if (!b) return true;
  if (a.step !== b.step) return a.step > b.step;
  if (a.timestamp !== b.timestamp) return a.timestamp > b.timestamp;
  if (Number.isNaN(b.value)) return !Number.isNaN(a.value);
  return a.value > b.value;
}

function notFound(message: string): MlflowError {
  return new MlflowError('RESOURCE_DOES_NOT_EXIST', message);
}

// ---------------- experiments ----------------

export async function getExperiment(db: AnyDB, id: string): Promise<Experiment | undefined> {
  return (await db.get('experiments', id)) as Experiment | undefined;
}

export async function getExperimentByName(
  db: AnyDB,
  name: string,
): Promise<Experiment | undefined> {
  return (await db.getFromIndex('experiments', 'name', name)) as Experiment | undefined;
}

export async function listExperiments(db: AnyDB): Promise<Experiment[]> {
  return (await db.getAll('experiments')) as Experiment[];
}

export async function addExperiment(db: AnyDB, exp: Experiment): Promise<void> {
  const tx = db.transaction('experiments', 'readwrite');
  const store = tx.objectStore('experiments');
  if ((await store.index('name').count(exp.name)) > 0) {
    tx.abort();
    await tx.done.catch(() => undefined);
    throw new MlflowError('RESOURCE_ALREADY_EXISTS', `Experiment '${exp.name}' already exists.`);
  }
  if ((await store.count(exp.experimentId)) > 0) {
    tx.abort();
    await tx.done.catch(() => undefined);
    throw new MlflowError(
      'RESOURCE_ALREADY_EXISTS',
      `Experiment with id '${exp.experimentId}' already exists.`,
    );
  }
  await store.add(exp);
  await tx.done;
}

/** Read-modify-write of one experiment in one transaction. */
export async function updateExperiment(
  db: AnyDB,
  id: string,
  change: (exp: Experiment) => void,
): Promise<Experiment> {
  const tx = db.transaction('experiments', 'readwrite');
  const store = tx.objectStore('experiments');
  const exp = (await store.get(id)) as Experiment | undefined;
  if (!exp) {
    tx.abort();
    await tx.done.catch(() => undefined);
    throw notFound(`No Experiment with id=${id} exists`);
  }
  change(exp);
  try {
    await store.put(exp);
    await tx.done;
  } catch (e) {
    if (e instanceof Error && e.name === 'ConstraintError') {
      throw new MlflowError('RESOURCE_ALREADY_EXISTS', `Experiment '${exp.name}' already exists.`);
    }
    throw e;
  }
  return exp;
}

// ---------------- runs ----------------

export async function getRunRecord(db: AnyDB, runId: string): Promise<RunRecord | undefined> {
  return (await db.get('runs', runId)) as RunRecord | undefined;
}

export async function addRun(db: AnyDB, rec: RunRecord): Promise<void> {
  reindex(rec);
  await db.add('runs', rec);
}

/** Read-modify-write of one run record (info, tags, params) in one transaction. */
export async function updateRun(
  db: AnyDB,
  runId: string,
  change: (rec: RunRecord) => void,
): Promise<RunRecord> {
  const tx = db.transaction('runs', 'readwrite');
  const store = tx.objectStore('runs');
  const rec = (await store.get(runId)) as RunRecord | undefined;
  if (!rec) {
    tx.abort();
    await tx.done.catch(() => undefined);
    throw notFound(`Run '${runId}' not found`);
  }
  try {
    change(rec);
  } catch (e) {
    tx.abort();
    await tx.done.catch(() => undefined);
    throw e;
  }
  reindex(rec);
  await store.put(rec);
  await tx.done;
  return rec;
}

export interface BatchWrite {
  metrics: Metric[];
  params: Param[];
  tags: RunTag[];
}

/**
 * log-batch in one transaction: every metric point appended to the history, the latest value per
 * key updated, params checked for immutability, tags overwritten. Either all of it or none.
 */
export async function writeBatch(db: AnyDB, runId: string, batch: BatchWrite): Promise<RunRecord> {
  const tx = db.transaction(['runs', 'latestMetrics', 'metricHistory'], 'readwrite', {
    durability: 'relaxed',
  });
  const runs = tx.objectStore('runs');
  const fail = async (err: Error): Promise<never> => {
    tx.abort();
    await tx.done.catch(() => undefined);
    throw err;
  };
  const rec = (await runs.get(runId)) as RunRecord | undefined;
  if (!rec) return fail(notFound(`Run '${runId}' not found`));
  if (rec.lifecycleStage !== 'active') {
    return fail(
      new MlflowError(
        'INVALID_PARAMETER_VALUE',
        `The run ${runId} must be in the 'active' state. Current state is ${rec.lifecycleStage}.`,
      ),
    );
  }
  for (const p of batch.params) {
    const old = rec.params[p.key];
    if (old !== undefined && old !== p.value) {
      return fail(
        new MlflowError(
          'INVALID_PARAMETER_VALUE',
          `Changing param values is not allowed. Param with key='${p.key}' was already logged with value='${old}' for run ID='${runId}'. Attempted logging new value '${p.value}'.`,
        ),
      );
    }
    rec.params[p.key] = p.value;
  }
  for (const t of batch.tags) rec.tags[t.key] = t.value;
  const history = tx.objectStore('metricHistory');
  const latest = tx.objectStore('latestMetrics');
  const changed = new Set<string>();
  /** The latest point of each key before this batch, whose key in latestMetrics goes away. */
  const replaced = new Map<string, Metric>();
  const ops: Promise<unknown>[] = [];
  const byKey = new Map<string, Metric[]>();
  for (const m of batch.metrics) {
    const point: Metric = { key: m.key, value: m.value, timestamp: m.timestamp, step: m.step };
    let list = byKey.get(m.key);
    if (!list) byKey.set(m.key, (list = []));
    list.push(point);
    const prev = rec.metrics[m.key];
    if (isNewer(point, prev)) {
      if (prev && !replaced.has(m.key)) replaced.set(m.key, prev);
      rec.metrics[m.key] = point;
      changed.add(m.key);
    }
  }
  // Append to the last chunk of each key, then open new chunks.
  const tails = await Promise.all(
    [...byKey.keys()].map(async (key) => {
      const cursor = await history.openCursor(chunkRange(runId, key), 'prev');
      return cursor?.value as MetricChunk | undefined;
    }),
  );
  [...byKey.entries()].forEach(([key, points], i) => {
    const tail = tails[i];
    let rest = points;
    if (tail && tail.values.length < CHUNK_POINTS) {
      const room = CHUNK_POINTS - tail.values.length;
      ops.push(history.put(appendToChunk(tail, rest.slice(0, room))));
      rest = rest.slice(room);
    }
    for (const c of packChunks(runId, key, rest, tail ? tail.seq + 1 : 0)) ops.push(history.put(c));
  });
  for (const key of changed) {
    const old = replaced.get(key);
    const oldKey = old && latestKey(rec.experimentId, old, runId);
    if (oldKey) ops.push(latest.delete(oldKey));
    const newKey = latestKey(rec.experimentId, rec.metrics[key]!, runId);
    if (newKey) ops.push(latest.put(runId, newKey));
  }
  const tag = batch.tags.find((t) => t.key === 'mlflow.runName');
  if (tag) rec.runName = tag.value;
  reindex(rec);
  ops.push(runs.put(rec), tx.done);
  await Promise.all(ops);
  return rec;
}

/** One metric's history as parallel arrays, in (step, timestamp) order. */
export async function getMetricSeries(
  db: AnyDB,
  runId: string,
  key: string,
): Promise<MetricSeries> {
  const chunks = (await db.getAll('metricHistory', chunkRange(runId, key))) as MetricChunk[];
  return sortSeries(concatSeries(chunks));
}

export async function getMetricHistory(db: AnyDB, runId: string, key: string): Promise<Metric[]> {
  return seriesToMetrics(key, await getMetricSeries(db, runId, key));
}

/** All metric points of a run by key, in the order they were logged (for export). */
export async function getRunHistoriesInLogOrder(
  db: AnyDB,
  runId: string,
): Promise<Map<string, Metric[]>> {
  // Chunks come back in [key, seq] order, and points inside a chunk are in log order.
  const chunks = (await db.getAll('metricHistory', runChunkRange(runId))) as MetricChunk[];
  const byKey = new Map<string, MetricChunk[]>();
  for (const c of chunks) {
    let list = byKey.get(c.key);
    if (!list) byKey.set(c.key, (list = []));
    list.push(c);
  }
  const out = new Map<string, Metric[]>();
  for (const [key, list] of byKey) out.set(key, seriesToMetrics(key, concatSeries(list)));
  return out;
}

/** Every run record of an experiment (one getAll on an index). */
export async function getExperimentRuns(db: AnyDB, experimentId: string): Promise<RunRecord[]> {
  return (await db.getAllFromIndex('runs', 'experimentId', experimentId)) as RunRecord[];
}

export async function getRunRecords(db: AnyDB, runIds: Iterable<string>): Promise<RunRecord[]> {
  const tx = db.transaction('runs');
  const store = tx.objectStore('runs');
  const out = await Promise.all(
    [...runIds].map((id) => store.get(id) as Promise<RunRecord | undefined>),
  );
  await tx.done;
  return out.filter((r): r is RunRecord => r !== undefined);
}

/** Run ids of an experiment, in the order getExperimentRuns gives their records (keys only). */
export async function getExperimentRunIds(db: AnyDB, experimentId: string): Promise<string[]> {
  return (await db.getAllKeysFromIndex('runs', 'experimentId', experimentId)) as string[];
}

/** Run ids whose param (or tag) `key` equals `value`, from the equality index. */
export async function runIdsByKeyValue(
  db: AnyDB,
  kind: 'param' | 'tag',
  experimentId: string,
  key: string,
  value: string,
): Promise<string[]> {
  const ids = (await db.getAllKeysFromIndex(
    'runs',
    kind === 'param' ? 'paramKV' : 'tagKV',
    indexEntry(experimentId, key, value),
  )) as string[];
  return ids;
}

export interface NumberRange {
  lower?: number;
  lowerOpen?: boolean;
  upper?: number;
  upperOpen?: boolean;
}

/** Run ids whose latest `key` lies in the range (NaN values are never in the index). */
export async function runIdsByMetricRange(
  db: AnyDB,
  experimentId: string,
  key: string,
  r: NumberRange,
): Promise<string[]> {
  // [.., value] sorts before [.., value, runId]: an open lower bound must skip past every runId.
  const lo = r.lowerOpen
    ? [experimentId, key, r.lower!, []]
    : [experimentId, key, r.lower ?? -Infinity];
  const hi = r.upperOpen
    ? [experimentId, key, r.upper!]
    : [experimentId, key, r.upper ?? Infinity, []];
  const range = IDBKeyRange.bound(lo, hi, false, r.upperOpen ?? false);
  const keys = (await db.getAllKeys('latestMetrics', range)) as LatestMetricKey[];
  return keys.map((k) => k[3]);
}

/**
 * Run ids of an experiment, newest start time first (keys only: no run record is read).
 * Equal start times come out in descending run id order; callers re-sort the page they read.
 */
export async function runIdsNewestFirst(db: AnyDB, experimentId: string): Promise<string[]> {
  const range = IDBKeyRange.bound([experimentId, -Infinity], [experimentId, Infinity]);
  const ids = (await db.getAllKeysFromIndex('runs', 'experimentStart', range)) as string[];
  return ids.reverse();
}

/** The latest value of `key` for every run of an experiment that has one (NaN excluded). */
export async function latestMetricValues(
  db: AnyDB,
  experimentId: string,
  key: string,
): Promise<{ runId: string; value: number }[]> {
  const range = IDBKeyRange.bound(
    [experimentId, key, -Infinity],
    [experimentId, key, Infinity, []],
  );
  const keys = (await db.getAllKeys('latestMetrics', range)) as LatestMetricKey[];
  return keys.map((k) => ({ runId: k[3], value: k[2] }));
}

/** One metric's history for several runs (compare charts), in (step, timestamp) order. */
export async function getMetricSeriesForRuns(
  db: AnyDB,
  runIds: readonly string[],
  key: string,
): Promise<Map<string, MetricSeries>> {
  const tx = db.transaction('metricHistory');
  const store = tx.objectStore('metricHistory');
  const lists = await Promise.all(
    runIds.map((runId) => store.getAll(chunkRange(runId, key)) as Promise<MetricChunk[]>),
  );
  await tx.done;
  const out = new Map<string, MetricSeries>();
  runIds.forEach((runId, i) => out.set(runId, sortSeries(concatSeries(lists[i]!))));
  return out;
}

export async function getMetricHistories(
  db: AnyDB,
  runIds: readonly string[],
  key: string,
): Promise<Map<string, Metric[]>> {
  const series = await getMetricSeriesForRuns(db, runIds, key);
  return new Map([...series].map(([runId, s]) => [runId, seriesToMetrics(key, s)]));
}

// ---------------- artifacts ----------------

export async function putArtifact(
  db: AnyDB,
  rec: ArtifactRecord,
): Promise<ArtifactRecord | undefined> {
  const tx = db.transaction('artifacts', 'readwrite');
  const store = tx.objectStore('artifacts');
  const old = (await store.get([rec.runId, rec.path])) as ArtifactRecord | undefined;
  await store.put(rec);
  await tx.done;
  return old;
}

export async function getArtifact(
  db: AnyDB,
  runId: string,
  path: string,
): Promise<ArtifactRecord | undefined> {
  return (await db.get('artifacts', [runId, path])) as ArtifactRecord | undefined;
}

export async function getRunArtifacts(db: AnyDB, runId: string): Promise<ArtifactRecord[]> {
  const range = IDBKeyRange.bound([runId, ''], [runId, '\uffff']);
  return (await db.getAll('artifacts', range)) as ArtifactRecord[];
}

/** Blob ids that tracking records refer to (for blob garbage collection). */
export async function getArtifactBlobIds(db: AnyDB): Promise<Set<string>> {
  const recs = (await db.getAll('artifacts')) as ArtifactRecord[];
  const files = (await db.getAll('mlrunsFiles')) as MlrunsFileRecord[];
  const ids = new Set(recs.map((r) => r.blobId));
  for (const f of files) if (f.blobId) ids.add(f.blobId);
  return ids;
}

// ---------------- imported mlruns files ----------------

export async function getMlrunsFiles(db: AnyDB, experimentId: string): Promise<MlrunsFileRecord[]> {
  return (await db.getAllFromIndex(
    'mlrunsFiles',
    'experimentId',
    experimentId,
  )) as MlrunsFileRecord[];
}

/**
 * The imported files of an experiment, like getMlrunsFiles, read in batches of `batch` records:
 * one getAll of 12,000 files, or placing 12,000 requests at once, is one task that blocks the
 * page for hundreds of milliseconds.
 */
export async function getMlrunsFilesInBatches(
  db: AnyDB,
  experimentId: string,
  batch = 200,
): Promise<MlrunsFileRecord[]> {
  const paths = await db.getAllKeysFromIndex('mlrunsFiles', 'experimentId', experimentId);
  const out: MlrunsFileRecord[] = [];
  for (let i = 0; i < paths.length; i += batch) {
    const tx = db.transaction('mlrunsFiles');
    const store = tx.objectStore('mlrunsFiles');
    const part = await Promise.all(
      paths.slice(i, i + batch).map((p) => store.get(p) as Promise<MlrunsFileRecord | undefined>),
    );
    await tx.done;
    for (const f of part) if (f) out.push(f);
  }
  return out;
}

export interface ImportBundle {
  experiments: Experiment[];
  runs: RunRecord[];
  /** Metric history already packed into chunks (see packChunks). */
  history: MetricChunk[];
  artifacts: ArtifactRecord[];
  files: MlrunsFileRecord[];
  /** Experiments whose existing data is removed first (import with replace). */
  replaceExperimentIds: string[];
  /** More records of other stores that must land in the same transaction (e.g. the registry). */
  also?: { stores: readonly string[]; write(tx: IDBTransactionLike): Promise<unknown> };
}

async function deleteExperimentData(tx: IDBTransactionLike, experimentId: string): Promise<void> {
  const runs = tx.objectStore('runs');
  const runIds = (await runs.index('experimentId').getAllKeys(experimentId)) as string[];
  await tx
    .objectStore('latestMetrics')
    .delete(IDBKeyRange.bound([experimentId], [experimentId, []]));
  for (const runId of runIds) {
    await runs.delete(runId);
    await tx.objectStore('metricHistory').delete(runChunkRange(runId));
    await tx.objectStore('artifacts').delete(IDBKeyRange.bound([runId, ''], [runId, '\uffff']));
  }
  const files = tx.objectStore('mlrunsFiles');
  for (const path of (await files.index('experimentId').getAllKeys(experimentId)) as string[]) {
    await files.delete(path);
  }
  await tx.objectStore('experiments').delete(experimentId);
}

type IDBTransactionLike = IDBPTransaction<unknown, string[], 'readwrite'>;

/** Milliseconds of requests placed in one go by writeImport before it lets the page run. */
const IMPORT_SLICE_MS = 4;

/** Resolves on the request's success event (the transaction is active in what follows). */
function requestDone(req: IDBRequest): Promise<void> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve();
    req.onerror = () => reject(req.error ?? new DOMException('request failed', 'AbortError'));
  });
}

/**
 * Writes a whole import in one transaction: all of it lands, or nothing does.
 *
 * Each put clones its record synchronously, so a 2,000-run import placed in one loop blocks the
 * page for hundreds of milliseconds. The requests are placed in slices of about IMPORT_SLICE_MS
 * instead: after a slice, the next one starts from the success callback of the slice's last
 * request (the transaction is active there, and other tasks of the page ran in between). The
 * records go through the plain IndexedDB API, without a promise per request: a failed request
 * aborts the transaction, and the transaction's error names it.
 */
export async function writeImport(db: AnyDB, bundle: ImportBundle): Promise<void> {
  const tx = db.transaction(
    [...TRACKING_STORES, ...(bundle.also?.stores ?? [])] as string[],
    'readwrite',
  );
  // It may abort before the last slice is placed; the failure is reported below.
  tx.done.catch(() => undefined);
  const raw = (name: string) => unwrap(tx.objectStore(name)) as IDBObjectStore;
  let last: IDBRequest | null = null;
  let sliceStart = performance.now();
  /** Call after placing a request; continues in a later task once the slice's time is used. */
  const pace = async (): Promise<void> => {
    if (!last || performance.now() - sliceStart < IMPORT_SLICE_MS) return;
    await requestDone(last);
    sliceStart = performance.now();
  };
  try {
    for (const id of bundle.replaceExperimentIds) await deleteExperimentData(tx, id);
    const exps = raw('experiments');
    for (const e of bundle.experiments) last = exps.add(e);
    const runs = raw('runs');
    const latest = raw('latestMetrics');
    for (const r of bundle.runs) {
      reindex(r);
      last = runs.add(r);
      for (const m of Object.values(r.metrics)) {
        const k = latestKey(r.experimentId, m, r.runId);
        if (k) last = latest.put(r.runId, k);
      }
      await pace();
    }
    const hist = raw('metricHistory');
    for (const h of bundle.history) {
      last = hist.put(h);
      await pace();
    }
    const arts = raw('artifacts');
    for (const a of bundle.artifacts) {
      last = arts.put(a);
      await pace();
    }
    const files = raw('mlrunsFiles');
    for (const f of bundle.files) {
      last = files.put(f);
      await pace();
    }
    if (bundle.also) await bundle.also.write(tx);
    await tx.done;
  } catch (caught) {
    try {
      tx.abort();
    } catch {
      // already finished or aborted
    }
    await tx.done.catch(() => undefined);
    // After a failed request every later one fails with AbortError: the transaction's error is
    // the request that failed first.
    const first = (unwrap(tx) as IDBTransaction).error;
    const e: unknown =
      caught instanceof Error && caught.name === 'AbortError' && first ? first : caught;
    if (e instanceof Error && e.name === 'ConstraintError') {
      throw new MlflowError(
        'RESOURCE_ALREADY_EXISTS',
        `Import conflicts with data already in the store (an experiment name, experiment id or run id exists): ${e.message}`,
        { cause: e },
      );
    }
    throw e;
  }
}
