/**
 * Moving tracking data in and out as Python MLflow's `mlruns/` file store.
 * - importMlruns: a folder (path -> bytes) or a zip; everything is parsed and validated before
 *   anything is written, then all records land in one transaction (a failure leaves the store as
 *   it was).
 * - exportMlruns: experiments/runs -> an `mlruns/` zip. Files imported earlier whose entity has not
 *   changed since are re-emitted byte for byte.
 * The registry folder (`mlruns/models/`, Python MLflow's registry FileStore) goes with both: its
 * models, versions, tags and aliases land in the app's Model Registry in the same transaction as
 * the tracking data, and versions whose files are among the imported run artifacts or MLflow 3
 * logged models get a copy of those files.
 */
import { DEFAULT_ZIP_LIMITS, unzipGuardedSync, type ZipLimits } from '../archive/mlruns-unzip.ts';
import { exportMlrunsOffThread, prepareMlrunsOffThread } from '../archive/zip-off-thread.ts';
import {
  buildMlrunsFiles,
  type ExportExperimentInput,
  type MlrunsExportInput,
} from '../archive/zip-worker-mlruns.ts';
import type { AnyDB } from '../store/db.ts';
import type { Experiment, Metric } from '../mlflow/entities.ts';
import { MlflowError } from '../mlflow/errors.ts';
import {
  parseLoggedModelMeta,
  type LoggedModelMeta,
  MlrunsParseError,
  type RunForWriting,
  writeMlrunsRegistry,
  type MlrunsRegisteredModel,
  type MlrunsModelVersion,
  type MlrunsTree,
} from '../mlflow/mlruns/index.ts';
import * as repo from '../store/tracking.ts';
import * as registryStore from '../store/registry.ts';
import { newModelBlobId, type ModelFileRecord } from '../store/model-files.ts';
import { deleteBlob, readBlobBytes, writeBlob } from '../store/blobs.ts';
import { detectServable, parseMLmodel, type ServableDescriptor } from '../mlflow/mlmodel.ts';
import { emitStoreChange } from './events.ts';

export { MlrunsParseError, type LoggedModelMeta };

export { DEFAULT_ZIP_LIMITS, type ZipLimits };

export interface ImportOptions {
  /** What to do when an experiment with the same id or name exists: fail (default) or replace it. */
  onConflict?: 'error' | 'replace';
  limits?: Partial<ZipLimits>;
  /** Files kept inline in their record up to this size; bigger ones go to the blob store. */
  inlineLimit?: number;
  /** Import the registry folder (`models/`) too (default true). */
  registry?: boolean;
  /** Name of what was imported (a zip's file name), recorded as the origin of registry versions. */
  fileName?: string;
  /** Called as the import goes: reading the zip, parsing, checking, writing files, committing. */
  onProgress?: (p: ImportProgress) => void;
  /** Cancels the import until its final write starts; then the store is as it was. */
  signal?: AbortSignal;
}

export interface ImportProgress {
  phase: 'unzipping' | 'parsing' | 'checking' | 'writing' | 'committing' | 'done';
  /** Units depend on the phase: bytes while writing, else steps. */
  done: number;
  total: number;
}

export interface ImportResult {
  experimentIds: string[];
  runs: number;
  metricPoints: number;
  artifacts: number;
  preservedFiles: number;
  /** Paths that are not part of any experiment nor of the registry (stray files). */
  ignored: string[];
  warnings: string[];
  /** Registered models imported from `models/`. */
  registeredModels: string[];
  modelVersions: number;
}

export interface ExportOptions {
  experimentIds: string[];
  /** Only these runs (default: every run of the experiments). */
  runIds?: string[];
  /**
   * Artifact root written into meta.yaml for experiments created in the browser (their
   * `mlflow-artifacts:` location means nothing to a file store). Default `mlruns`, a path relative
   * to the folder the zip is extracted into.
   */
  artifactRoot?: string;
  /** Registered models to write under `models/` (the registry FileStore): names, or 'all'. */
  registeredModels?: string[] | 'all';
}

/**
 * Unzips with the guards applied to the central directory before anything is inflated: entry
 * names (traversal, absolute, backslash, drive letters), entry count, sizes and ratios. On the
 * calling thread; importMlruns uses the worker version (src/lib/archive/zip-off-thread.ts).
 */
export function unzipGuarded(
  zip: Uint8Array,
  limits: Partial<ZipLimits> = {},
): Map<string, Uint8Array> {
  return unzipGuardedSync(zip, limits);
}

function randomId(): string {
  const b = new Uint8Array(8);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

function latestOf(history: Record<string, Metric[]>): Record<string, Metric> {
  const out: Record<string, Metric> = {};
  for (const [k, points] of Object.entries(history)) {
    let best: Metric | undefined;
    for (const p of points) if (repo.isNewer(p, best)) best = p;
    if (best) out[k] = { ...best };
  }
  return out;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

function aborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new DOMException('The import was cancelled.', 'AbortError');
}

/**
 * Gives the event loop a turn (input, painting) between slices of work on the page:
 * `scheduler.yield()` where there is one, else a MessageChannel message (not throttled in a
 * background tab the way timers are).
 */
function yieldToEventLoop(): Promise<void> {
  const sched = (globalThis as { scheduler?: { yield?: () => Promise<void> } }).scheduler;
  if (typeof sched?.yield === 'function') return sched.yield();
  if (typeof MessageChannel === 'undefined') return new Promise((r) => setTimeout(r, 0));
  return new Promise((resolve) => {
    const ch = new MessageChannel();
    ch.port1.onmessage = () => {
      ch.port1.close();
      resolve();
    };
    ch.port2.postMessage(null);
  });
}

/** Milliseconds of synchronous work between two turns of the event loop (a long task is 50). */
const SLICE_MS = 5;

/** `await pacer()` in a loop yields once a slice's time is used up, else returns at once. */
function makePacer(): () => Promise<void> | undefined {
  let sliceStart = performance.now();
  return () => {
    if (performance.now() - sliceStart < SLICE_MS) return undefined;
    return yieldToEventLoop().then(() => {
      sliceStart = performance.now();
    });
  };
}

/** A registry version's files, found among what the import holds. */
interface ResolvedFiles {
  files: Map<string, Uint8Array>;
  origin: registryStore.ModelOrigin;
  where: string;
}

/**
 * Finds the files of registry versions in the imported tree: `runs:/<run>/<path>` in the run's
 * artifacts (2.x) or the run's logged model of that name (3.x), `models:/m-…` and `model_id` in
 * the MLflow 3 logged models, `models:/<name>/<version>` through that version, and file URIs that
 * end in `<experiment>/<run>/artifacts/<path>` or `models/<m-…>/artifacts`.
 */
function fileResolver(tree: MlrunsTree, models: MlrunsRegisteredModel[], fileName: string) {
  const runs = new Map(tree.experiments.flatMap((x) => x.runs.map((r) => [r.info.runId, r])));
  const logged = new Map<
    string,
    { runId: string | null; name: string; files: Map<string, Uint8Array> }
  >();
  for (const x of tree.experiments) {
    for (const [rel, bytes] of x.preserved) {
      const m = /^models\/([^/]+)\/(.+)$/.exec(rel);
      if (!m) continue;
      const id = m[1]!;
      let lm = logged.get(id);
      if (!lm) logged.set(id, (lm = { runId: null, name: '', files: new Map() }));
      if (m[2] === 'meta.yaml') {
        try {
          const meta = parseLoggedModelMeta(`${x.experiment.experimentId}/${rel}`, bytes);
          lm.runId = meta.sourceRunId;
          lm.name = meta.name;
        } catch {
          // A logged model we cannot read is kept as files; it just cannot back a version.
        }
      } else if (m[2]!.startsWith('artifacts/'))
        lm.files.set(m[2]!.slice('artifacts/'.length), bytes);
    }
  }
  const archive: registryStore.ModelOrigin = { kind: 'registry-archive', fileName };

  function fromLogged(id: string): ResolvedFiles | null {
    const lm = logged.get(id);
    if (!lm || !lm.files.has('MLmodel')) return null;
    return {
      files: lm.files,
      origin: lm.runId ? { kind: 'run', runId: lm.runId, artifactPath: lm.name } : archive,
      where: `logged model ${id}`,
    };
  }
  function fromRun(runId: string, rawPath: string): ResolvedFiles | null {
    const run = runs.get(runId);
    if (!run) return null;
    const path = rawPath.replace(/^\/+|\/+$/g, '');
    const files = new Map<string, Uint8Array>();
    for (const [p, bytes] of run.artifacts) {
      if (path === '') files.set(p, bytes);
      else if (p.startsWith(`${path}/`)) files.set(p.slice(path.length + 1), bytes);
    }
    if (files.has('MLmodel')) {
      return {
        files,
        origin: { kind: 'run', runId, artifactPath: path },
        where: `run ${runId} artifacts${path ? `/${path}` : ''}`,
      };
    }
    // MLflow 3: runs:/<run>/<name> means the logged model the run produced under that name.
    for (const [id, lm] of logged) {
      if (lm.runId === runId && lm.name === path) return fromLogged(id);
    }
    return null;
  }
  function fromUri(uri: string | null, depth: number): ResolvedFiles | null {
    if (!uri) return null;
    let m = /^runs:\/([^/]+)(?:\/(.*))?$/.exec(uri);
    if (m) return fromRun(m[1]!, m[2] ?? '');
    m = /^models:\/(m-[0-9a-f]+)\/?$/.exec(uri);
    if (m) return fromLogged(m[1]!);
    m = /^models:\/([^/]+)\/(\d+)$/.exec(uri);
    if (m && depth < 2) {
      const target = models
        .find((x) => x.name === m![1])
        ?.versions.find((v) => v.version === Number(m![2]));
      return target ? resolve(target, depth + 1) : null;
    }
    m = /\/models\/(m-[0-9a-f]+)\/artifacts\/?$/.exec(uri);
    if (m) return fromLogged(m[1]!);
    m = /\/([^/]+)\/([^/]+)\/artifacts(?:\/(.*))?$/.exec(uri);
    if (m && runs.get(m[2]!)?.info.experimentId === m[1]) return fromRun(m[2]!, m[3] ?? '');
    return null;
  }
  function resolve(v: MlrunsModelVersion, depth = 0): ResolvedFiles | null {
    return (
      fromUri(v.source, depth) ??
      (v.modelId ? fromLogged(v.modelId) : null) ??
      fromUri(v.storageLocation, depth)
    );
  }
  return resolve;
}

function servableOf(
  files: Map<string, Uint8Array>,
  where: string,
  warnings: string[],
): ServableDescriptor | null {
  try {
    return detectServable(parseMLmodel(dec.decode(files.get('MLmodel')!), `${where}/MLmodel`), [
      ...files.keys(),
    ]);
  } catch (e) {
    warnings.push(
      `${where}/MLmodel could not be read (${(e as Error).message}); the version is not servable.`,
    );
    return null;
  }
}

/** Imports an mlruns folder or zip, with its model registry. All or nothing. */
export async function importMlruns(
  db: AnyDB,
  source: Map<string, Uint8Array> | Blob | Uint8Array,
  options: ImportOptions = {},
): Promise<ImportResult> {
  const { signal, onProgress } = options;
  const report = (phase: ImportProgress['phase'], done: number, total: number) =>
    onProgress?.({ phase, done, total });
  aborted(signal);
  const size =
    source instanceof Map
      ? source.size
      : source instanceof Uint8Array
        ? source.length
        : source.size;
  report(source instanceof Map ? 'parsing' : 'unzipping', 0, size);
  await yieldToEventLoop();
  aborted(signal);
  // Unzip, parse and hash off the main thread: for 2,000 runs this is about a second of work
  // that would otherwise block the page.
  const prepared = await prepareMlrunsOffThread(source, {
    limits: options.limits,
    registry: options.registry !== false,
  });
  if (!(source instanceof Map)) report('unzipping', size, size);
  report('parsing', 0, prepared.fileCount);
  const { tree } = prepared;
  const reg = options.registry === false ? null : prepared.registry;
  report('parsing', prepared.fileCount, prepared.fileCount);
  aborted(signal);
  const pace = makePacer();
  const inlineLimit = options.inlineLimit ?? 1024 * 1024;
  const warnings = [...tree.warnings];
  const ignored = tree.ignored;
  if (reg && reg.models.length + reg.ignored.length > 0) {
    const registryFiles = new Set(
      ignored.filter((p) => /(^|\/)models\//.test(p) && !reg.ignored.includes(p)),
    );
    ignored.splice(0, ignored.length, ...ignored.filter((p) => !registryFiles.has(p)));
    const i = warnings.findIndex((w) => w.includes('(models/)'));
    if (i >= 0) warnings.splice(i, 1);
    const versions = reg.models.reduce((n, m) => n + m.versions.length, 0);
    warnings.push(
      `The model registry folder (models/) went into the Model Registry: ${reg.models.length} registered model${reg.models.length === 1 ? '' : 's'}, ${versions} version${versions === 1 ? '' : 's'}.`,
    );
  }

  // Conflicts with what is already stored, checked before any write.
  report('checking', 0, tree.experiments.length + (reg?.models.length ?? 0));
  const replace: string[] = [];
  for (const x of tree.experiments) {
    aborted(signal);
    const { experimentId, name } = x.experiment;
    const byId = await repo.getExperiment(db, experimentId);
    const byName = await repo.getExperimentByName(db, name);
    if (byName && byName.experimentId !== experimentId) {
      throw new MlflowError(
        'RESOURCE_ALREADY_EXISTS',
        `Experiment '${name}' already exists with id ${byName.experimentId}; the import has it as id ${experimentId}. Rename or delete the stored one first.`,
      );
    }
    if (byId) {
      // An empty experiment of the same name (typically "Default", id 0, made by a first run
      // attempt) is simply taken over.
      const empty = (await repo.getExperimentRuns(db, experimentId)).length === 0;
      if (options.onConflict !== 'replace' && !(empty && byId.name === name)) {
        throw new MlflowError(
          'RESOURCE_ALREADY_EXISTS',
          `Experiment id ${experimentId} ('${byId.name}') already exists. Import with replace to overwrite it.`,
        );
      }
      replace.push(experimentId);
    }
    // In batches: one transaction per run is slow, one request per run in one go a long task.
    const existingRuns: repo.RunRecord[] = [];
    for (let i = 0; i < x.runs.length; i += 200) {
      const ids = x.runs.slice(i, i + 200).map((r) => r.info.runId);
      existingRuns.push(...(await repo.getRunRecords(db, ids)));
    }
    for (const existing of existingRuns) {
      if (
        existing &&
        !(replace.includes(existing.experimentId) && existing.experimentId === experimentId)
      ) {
        throw new MlflowError(
          'RESOURCE_ALREADY_EXISTS',
          `Run ${existing.runId} already exists in experiment ${existing.experimentId}.`,
        );
      }
    }
  }
  const replaceModels: string[] = [];
  if (reg && reg.models.length > 0) {
    const stored = new Set((await registryStore.listRegisteredModelRecords(db)).map((m) => m.name));
    for (const m of reg.models) {
      if (!stored.has(m.name)) continue;
      if (options.onConflict !== 'replace') {
        throw new MlflowError(
          'RESOURCE_ALREADY_EXISTS',
          `Registered Model (name=${m.name}) already exists. Import with replace to overwrite it, or rename or delete the stored one first.`,
        );
      }
      replaceModels.push(m.name);
    }
  }

  const bundle: repo.ImportBundle = {
    experiments: [],
    runs: [],
    history: [],
    artifacts: [],
    files: [],
    replaceExperimentIds: replace,
  };
  const registryImport: registryStore.RegistryImport = {
    models: [],
    versions: [],
    files: [],
    replaceNames: replaceModels,
  };
  const resolve = reg ? fileResolver(tree, reg.models, options.fileName ?? 'mlruns') : null;
  const plannedVersions =
    reg?.models.flatMap((m) =>
      m.versions
        .filter((v) => v.currentStage !== 'Deleted_Internal')
        .map((v) => ({ m, v, found: resolve!(v) })),
    ) ?? [];

  // Bytes the blob store receives, for the progress bar.
  let totalBytes = 0;
  for (const x of tree.experiments) {
    for (const b of x.preserved.values()) if (b.length > inlineLimit) totalBytes += b.length;
    for (const r of x.runs) for (const b of r.artifacts.values()) totalBytes += b.length;
  }
  for (const p of plannedVersions)
    for (const b of p.found?.files.values() ?? []) totalBytes += b.length;
  const written: string[] = [];
  let doneBytes = 0;
  report('writing', 0, totalBytes);
  const store = async (blobId: string, bytes: Uint8Array) => {
    aborted(signal);
    await writeBlob(db, blobId, bytes);
    written.push(blobId);
    doneBytes += bytes.length;
    report('writing', doneBytes, totalBytes);
  };

  let metricPoints = 0;
  let preservedFiles = 0;
  let freedModelBlobs: string[] = [];
  try {
    for (const x of tree.experiments) {
      const exp: Experiment = { ...x.experiment, tags: { ...x.experiment.tags } };
      if (x.trashed) exp.lifecycleStage = 'deleted';
      bundle.experiments.push(exp);
      const expId = exp.experimentId;

      // What our writer makes of each entity as imported (hashed with the parse): unchanged
      // entities give the same bytes at export time, and then the original file is re-emitted.
      const canonical = prepared.canonicalHashes.get(x.experiment.experimentId);
      for (const [rel, bytes] of x.originals) {
        await pace();
        bundle.files.push({
          path: `${expId}/${rel}`,
          experimentId: expId,
          runId: null,
          preserved: false,
          canonicalHash: canonical?.get(rel) ?? '',
          bytes,
          size: bytes.length,
        });
      }
      for (const [rel, bytes] of x.preserved) {
        preservedFiles++;
        const rec: repo.MlrunsFileRecord = {
          path: `${expId}/${rel}`,
          experimentId: expId,
          runId: null,
          preserved: true,
          canonicalHash: '',
          size: bytes.length,
        };
        if (bytes.length > inlineLimit) {
          const blobId = `mlruns-${expId}-${randomId()}`;
          await store(blobId, bytes);
          rec.blobId = blobId;
        } else rec.bytes = bytes;
        bundle.files.push(rec);
      }
      for (const r of x.runs) {
        await pace();
        const rec = repo.newRunRecord(r.info, r.tags);
        rec.deletedTime = r.deletedTime;
        rec.params = { ...r.params };
        rec.metrics = latestOf(r.metrics);
        rec.inputs = r.inputs;
        bundle.runs.push(rec);
        for (const [key, points] of Object.entries(r.metrics)) {
          bundle.history.push(...repo.packChunks(r.info.runId, key, points));
          metricPoints += points.length;
        }
        for (const [path, bytes] of r.artifacts) {
          const blobId = `artifact-${r.info.runId}-${randomId()}`;
          await store(blobId, bytes);
          bundle.artifacts.push({
            runId: r.info.runId,
            path,
            blobId,
            size: bytes.length,
            createdAt: Date.now(),
          });
        }
      }
    }

    // The registry: versions get copies of their files, so deleting a run never breaks them.
    for (const m of reg?.models ?? []) {
      const original = reg!.originals.get(`models/${m.name}/meta.yaml`);
      registryImport.models.push({
        name: m.name,
        description: m.description ?? '',
        creationTimestamp: m.creationTimestamp,
        lastUpdatedTimestamp: m.lastUpdatedTimestamp,
        tags: { ...m.tags },
        aliases: { ...m.aliases },
        ...(original ? { mlrunsMeta: dec.decode(original) } : {}),
      });
    }
    for (const { m, v, found } of plannedVersions) {
      const id = crypto.randomUUID();
      const files: ModelFileRecord[] = [];
      for (const [path, bytes] of found?.files ?? []) {
        const blobId = newModelBlobId();
        await store(blobId, bytes);
        files.push({ versionId: id, path, blobId, size: bytes.length });
      }
      if (!found && v.status === 'READY') {
        warnings.push(
          `Model '${m.name}' version ${v.version}: its files (${v.storageLocation ?? v.source}) are not in this import; the version is registered without them.`,
        );
      }
      const original = reg!.originals.get(`models/${m.name}/version-${v.version}/meta.yaml`);
      registryImport.versions.push({
        id,
        name: m.name,
        version: v.version,
        description: v.description ?? '',
        creationTimestamp: v.creationTimestamp,
        lastUpdatedTimestamp: v.lastUpdatedTimestamp,
        currentStage: v.currentStage as registryStore.ModelVersionRecord['currentStage'],
        source: v.source,
        runId: v.runId ?? '',
        runLink: v.runLink ?? '',
        status: v.status,
        statusMessage: v.statusMessage ?? '',
        tags: { ...v.tags },
        userId: v.userId ?? '',
        origin: found?.origin ?? {
          kind: 'registry-archive',
          fileName: options.fileName ?? 'mlruns',
        },
        servable: found ? servableOf(found.files, found.where, warnings) : null,
        size: files.reduce((n, f) => n + f.size, 0),
        ...(original ? { mlrunsMeta: dec.decode(original) } : {}),
      });
      registryImport.files.push(...files);
    }
    if (reg && (registryImport.models.length > 0 || replaceModels.length > 0)) {
      bundle.also = {
        stores: registryStore.REGISTRY_STORES,
        write: async (tx) => {
          freedModelBlobs = await registryStore.writeRegistryImport(tx, registryImport);
        },
      };
    }
    // Blobs of a replaced experiment become garbage only once the new data is in.
    const oldBlobs: string[] = [];
    for (const id of replace) {
      for (const r of await repo.getExperimentRuns(db, id)) {
        for (const a of await repo.getRunArtifacts(db, r.runId)) oldBlobs.push(a.blobId);
      }
      for (const f of await repo.getMlrunsFiles(db, id)) if (f.blobId) oldBlobs.push(f.blobId);
    }
    // Last chance to cancel: from here on the import either lands whole or not at all.
    aborted(signal);
    report('committing', 0, 1);
    await repo.writeImport(db, bundle);
    for (const id of [...oldBlobs, ...freedModelBlobs])
      await deleteBlob(db, id).catch(() => undefined);
  } catch (e) {
    for (const id of written) await deleteBlob(db, id).catch(() => undefined);
    throw e;
  }
  report('done', 1, 1);
  for (const x of tree.experiments)
    emitStoreChange({ kind: 'import', id: x.experiment.experimentId });
  for (const m of registryImport.models) emitStoreChange({ kind: 'registry', id: m.name });
  return {
    experimentIds: tree.experiments.map((x) => x.experiment.experimentId),
    runs: bundle.runs.length,
    metricPoints,
    artifacts: bundle.artifacts.length,
    preservedFiles,
    ignored,
    warnings,
    registeredModels: registryImport.models.map((m) => m.name),
    modelVersions: registryImport.versions.length,
  };
}

/**
 * What an export writes, read from the store: each experiment's entities, original files and
 * artifacts. Reading is asynchronous and paced, so a big export does not block the page; the
 * writing (buildMlrunsFiles) is done by the caller, in the zip worker for exportMlruns.
 */
async function exportInput(db: AnyDB, options: ExportOptions): Promise<MlrunsExportInput> {
  const pace = makePacer();
  const root = (options.artifactRoot ?? 'mlruns').replace(/\/+$/, '');
  const only = options.runIds ? new Set(options.runIds) : null;
  const experiments: ExportExperimentInput[] = [];
  for (const expId of options.experimentIds) {
    const stored = await repo.getExperiment(db, expId);
    if (!stored)
      throw new MlflowError('RESOURCE_DOES_NOT_EXIST', `No Experiment with id=${expId} exists`);
    // In batches: one request for all of them is one long task to deserialize.
    const originals = new Map(
      (await repo.getMlrunsFilesInBatches(db, expId)).map((f) => [
        f.path.slice(expId.length + 1),
        f,
      ]),
    );
    const exp: Experiment = { ...stored };
    const browserMade =
      !originals.has('meta.yaml') && !/^(file:|\/|[A-Za-z]:)/.test(stored.artifactLocation);
    if (browserMade) exp.artifactLocation = `${root}/${expId}`;
    const ids = (await repo.getExperimentRunIds(db, expId)).filter((id) => !only || only.has(id));
    const records: repo.RunRecord[] = [];
    for (let i = 0; i < ids.length; i += 200)
      records.push(...(await repo.getRunRecords(db, ids.slice(i, i + 200))));
    const runs: RunForWriting[] = [];
    for (const rec of records) {
      await pace();
      const info = repo.runInfoOf(rec);
      if (browserMade && info.artifactUri === `${stored.artifactLocation}/${rec.runId}/artifacts`) {
        info.artifactUri = `${exp.artifactLocation}/${rec.runId}/artifacts`;
      }
      const history = await repo.getRunHistoriesInLogOrder(db, rec.runId);
      runs.push({
        info,
        deletedTime: rec.deletedTime,
        params: rec.params,
        tags: rec.tags,
        metrics: Object.fromEntries(history),
        inputs: rec.inputs,
      });
    }
    const x: ExportExperimentInput = {
      dir: exp.lifecycleStage === 'deleted' ? `.trash/${expId}` : expId,
      experiment: exp,
      runs,
      originals: new Map(),
      preserved: new Map(),
      artifacts: new Map(),
    };
    const exportedRuns = new Set(records.map((r) => r.runId));
    for (const [rel, f] of originals) {
      await pace();
      if (!f.preserved) {
        x.originals.set(rel, {
          ...(f.bytes ? { bytes: f.bytes } : {}),
          canonicalHash: f.canonicalHash,
        });
        continue;
      }
      // A preserved file inside a run folder goes only with its run.
      const top = rel.split('/')[0]!;
      if (only && /^[0-9a-f]{32}$/.test(top) && !exportedRuns.has(top)) continue;
      x.preserved.set(
        rel,
        f.bytes ?? (f.blobId ? await readBlobBytes(db, f.blobId) : new Uint8Array()),
      );
    }
    for (const rec of records) {
      for (const a of await repo.getRunArtifacts(db, rec.runId)) {
        x.artifacts.set(`${rec.runId}/artifacts/${a.path}`, await readBlobBytes(db, a.blobId));
      }
    }
    experiments.push(x);
  }
  const extra = options.registeredModels
    ? await exportRegistryFiles(db, options.registeredModels)
    : new Map<string, Uint8Array | null>();
  return { experiments, extra };
}

/** The files of an mlruns tree for the given experiments, by path under `mlruns/`. */
export async function exportMlrunsFiles(
  db: AnyDB,
  options: ExportOptions,
): Promise<Map<string, Uint8Array | null>> {
  return buildMlrunsFiles(await exportInput(db, options));
}

/**
 * The registry FileStore folder (`models/…`) for the given registered models: metadata, tags and
 * aliases. A version's files are not copied here (MLflow's file registry keeps none either): its
 * `source` points at them, e.g. `runs:/<run>/model` among the exported run artifacts.
 */
async function exportRegistryFiles(
  db: AnyDB,
  names: string[] | 'all',
): Promise<Map<string, Uint8Array | null>> {
  const records =
    names === 'all'
      ? await registryStore.listRegisteredModelRecords(db)
      : await Promise.all(names.map((n) => registryStore.getRegisteredModelRecord(db, n)));
  const models: MlrunsRegisteredModel[] = [];
  const originals = new Map<string, Uint8Array>();
  for (const rec of records.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const base = `models/${rec.name}`;
    if (rec.mlrunsMeta !== undefined)
      originals.set(`${base}/meta.yaml`, enc.encode(rec.mlrunsMeta));
    const versions: MlrunsModelVersion[] = [];
    for (const v of (await registryStore.listModelVersionRecords(db, rec.name)).reverse()) {
      if (v.mlrunsMeta !== undefined) {
        originals.set(`${base}/version-${v.version}/meta.yaml`, enc.encode(v.mlrunsMeta));
      }
      versions.push({
        name: v.name,
        version: v.version,
        creationTimestamp: v.creationTimestamp,
        lastUpdatedTimestamp: v.lastUpdatedTimestamp,
        currentStage: v.currentStage,
        description: v.description,
        source: v.source,
        runId: v.runId,
        runLink: v.runLink,
        status: v.status,
        statusMessage: v.statusMessage,
        // Imported versions keep theirs; MLflow's file store records the source for the others.
        storageLocation: v.mlrunsMeta !== undefined ? null : v.source,
        userId: v.userId,
        modelId: null,
        tags: { ...v.tags },
      });
    }
    models.push({
      name: rec.name,
      creationTimestamp: rec.creationTimestamp,
      lastUpdatedTimestamp: rec.lastUpdatedTimestamp,
      description: rec.description,
      tags: { ...rec.tags },
      aliases: { ...rec.aliases },
      versions,
    });
  }
  const out = new Map<string, Uint8Array | null>([['models/', null]]);
  for (const [path, bytes] of writeMlrunsRegistry(models, {
    originals: (rel) => originals.get(rel),
  }))
    out.set(path, bytes);
  return out;
}

/**
 * An `mlruns/` zip of the given experiments (and optionally only some of their runs). The files
 * are written and zipped in the zip worker: on the page this is only reading the store.
 */
export async function exportMlruns(db: AnyDB, options: ExportOptions): Promise<Uint8Array> {
  return exportMlrunsOffThread(await exportInput(db, options));
}

// ---------------- MLflow 3 logged models kept from an import ----------------

async function preservedBytes(db: AnyDB, f: repo.MlrunsFileRecord): Promise<Uint8Array> {
  return f.bytes ?? (f.blobId ? await readBlobBytes(db, f.blobId) : new Uint8Array());
}

/**
 * The MLflow 3 logged models imported with an experiment (`models/<model_id>/`), optionally only
 * those a given run produced. Their files are kept byte for byte; read them with
 * readLoggedModelFiles.
 */
export async function listLoggedModels(
  db: AnyDB,
  experimentId: string,
  options: { runId?: string } = {},
): Promise<(LoggedModelMeta & { files: string[] })[]> {
  const files = await repo.getMlrunsFiles(db, experimentId);
  const prefix = `${experimentId}/models/`;
  const byModel = new Map<string, { meta?: repo.MlrunsFileRecord; files: string[] }>();
  for (const f of files) {
    if (!f.preserved || !f.path.startsWith(prefix)) continue;
    const rest = f.path.slice(prefix.length);
    const slash = rest.indexOf('/');
    if (slash < 0) continue;
    const id = rest.slice(0, slash);
    const sub = rest.slice(slash + 1);
    let m = byModel.get(id);
    if (!m) byModel.set(id, (m = { files: [] }));
    if (sub === 'meta.yaml') m.meta = f;
    else if (sub.startsWith('artifacts/')) m.files.push(sub.slice('artifacts/'.length));
  }
  const out: (LoggedModelMeta & { files: string[] })[] = [];
  for (const [, m] of byModel) {
    if (!m.meta) continue;
    const meta = parseLoggedModelMeta(m.meta.path, await preservedBytes(db, m.meta));
    if (options.runId && meta.sourceRunId !== options.runId) continue;
    out.push({ ...meta, files: m.files.sort() });
  }
  return out.sort((a, b) => (a.creationTimestamp ?? 0) - (b.creationTimestamp ?? 0));
}

/** The files of a logged model's `artifacts/` folder (MLmodel, weights...), by relative path. */
export async function readLoggedModelFiles(
  db: AnyDB,
  experimentId: string,
  modelId: string,
): Promise<Map<string, Uint8Array>> {
  const prefix = `${experimentId}/models/${modelId}/artifacts/`;
  const out = new Map<string, Uint8Array>();
  for (const f of await repo.getMlrunsFiles(db, experimentId)) {
    if (f.preserved && f.path.startsWith(prefix))
      out.set(f.path.slice(prefix.length), await preservedBytes(db, f));
  }
  if (out.size === 0) {
    throw new MlflowError(
      'RESOURCE_DOES_NOT_EXIST',
      `No logged model '${modelId}' with files in experiment ${experimentId}`,
    );
  }
  return out;
}
