/**
 * Moving tracking data in and out as Python MLflow's `mlruns/` file store.
 * - importMlruns: a folder (path -> bytes) or a zip; everything is parsed and validated before
 *   anything is written, then all records land in one transaction (a failure leaves the store as
 *   it was).
 * - exportMlruns: experiments/runs -> an `mlruns/` zip. Files imported earlier whose entity has not
 *   changed since are re-emitted byte for byte.
 */
import { unzipSync, zipSync, type Zippable } from 'fflate';
import type { AnyDB } from '../store/db.ts';
import type { Experiment, Metric } from '../mlflow/entities.ts';
import { MlflowError } from '../mlflow/errors.ts';
import {
  readMlruns,
  metaExtras,
  parseLoggedModelMeta,
  type LoggedModelMeta,
  writeExperimentFolder,
  EXPERIMENT_META_KEYS,
  RUN_META_KEYS,
  type MetaExtras,
  MlrunsParseError,
  type MlrunsExperiment,
  type RunForWriting,
} from '../mlflow/mlruns/index.ts';
import * as repo from '../store/tracking.ts';
import { deleteBlob, readBlobBytes, writeBlob } from '../store/blobs.ts';
import { emitStoreChange } from './events.ts';

export { MlrunsParseError, type LoggedModelMeta };

export interface ZipLimits {
  /** Most entries a zip may have. */
  maxEntries: number;
  /** Most uncompressed bytes in all. */
  maxTotalBytes: number;
  /** Most uncompressed bytes of one entry. */
  maxEntryBytes: number;
  /** Highest uncompressed/compressed ratio of an entry bigger than 1 MiB (zip bombs). */
  maxRatio: number;
}

export const DEFAULT_ZIP_LIMITS: ZipLimits = {
  maxEntries: 200_000,
  maxTotalBytes: 2 * 1024 ** 3,
  maxEntryBytes: 1024 ** 3,
  maxRatio: 1000,
};

export interface ImportOptions {
  /** What to do when an experiment with the same id or name exists: fail (default) or replace it. */
  onConflict?: 'error' | 'replace';
  limits?: Partial<ZipLimits>;
  /** Files kept inline in their record up to this size; bigger ones go to the blob store. */
  inlineLimit?: number;
}

export interface ImportResult {
  experimentIds: string[];
  runs: number;
  metricPoints: number;
  artifacts: number;
  preservedFiles: number;
  /** Paths that are not part of any experiment (registry, stray files). */
  ignored: string[];
  warnings: string[];
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
}

function unsafeEntry(name: string): string | null {
  if (name.includes('\\')) return 'contains a backslash';
  if (name.startsWith('/')) return 'is an absolute path';
  if (/^[A-Za-z]:/.test(name)) return 'starts with a drive letter';
  if (name.includes('\0')) return 'contains a NUL character';
  if (name.split('/').some((p) => p === '..')) return "contains a '..' segment";
  return null;
}

function zipError(message: string): MlflowError {
  return new MlflowError('INVALID_PARAMETER_VALUE', message);
}

/**
 * Unzips with the guards applied to the central directory before anything is inflated: entry
 * names (traversal, absolute, backslash, drive letters), entry count, sizes and ratios.
 */
export function unzipGuarded(
  zip: Uint8Array,
  limits: Partial<ZipLimits> = {},
): Map<string, Uint8Array> {
  const lim = { ...DEFAULT_ZIP_LIMITS, ...limits };
  let entries = 0;
  let total = 0;
  const declared = new Map<string, number>();
  let raw: Record<string, Uint8Array>;
  try {
    raw = unzipSync(zip, {
      filter(file) {
        const why = unsafeEntry(file.name);
        if (why) throw zipError(`Zip entry '${file.name}' ${why}; refusing to import.`);
        if (file.name.endsWith('/') || file.name.startsWith('__MACOSX/')) return false;
        entries++;
        if (entries > lim.maxEntries)
          throw zipError(`The zip has more than ${lim.maxEntries} files.`);
        if (file.originalSize > lim.maxEntryBytes) {
          throw zipError(
            `Zip entry '${file.name}' is ${file.originalSize} bytes, over the ${lim.maxEntryBytes}-byte limit.`,
          );
        }
        total += file.originalSize;
        if (total > lim.maxTotalBytes)
          throw zipError(`The zip unpacks to more than ${lim.maxTotalBytes} bytes.`);
        if (
          file.originalSize > 1024 ** 2 &&
          file.originalSize > lim.maxRatio * Math.max(1, file.size)
        ) {
          throw zipError(
            `Zip entry '${file.name}' expands more than ${lim.maxRatio}x; refusing a likely zip bomb.`,
          );
        }
        declared.set(file.name, file.originalSize);
        return true;
      },
    });
  } catch (e) {
    if (e instanceof MlflowError) throw e;
    throw zipError(`Not a readable zip file: ${e instanceof Error ? e.message : String(e)}`);
  }
  const out = new Map<string, Uint8Array>();
  for (const [name, bytes] of Object.entries(raw)) {
    if (bytes.length !== declared.get(name)) {
      throw zipError(`Zip entry '${name}' is not the size its header declares.`);
    }
    out.set(name, bytes);
  }
  return out;
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const d = await crypto.subtle.digest('SHA-256', bytes as BufferSource);
  return Array.from(new Uint8Array(d), (x) => x.toString(16).padStart(2, '0')).join('');
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

function extrasFrom(
  originals: Map<string, Uint8Array | undefined>,
): (rel: string) => MetaExtras | undefined {
  return (rel) => {
    const bytes = originals.get(rel);
    if (!bytes) return undefined;
    return metaExtras(bytes, rel === 'meta.yaml' ? EXPERIMENT_META_KEYS : RUN_META_KEYS);
  };
}

function forWriting(x: MlrunsExperiment): { experiment: Experiment; runs: RunForWriting[] } {
  return {
    experiment: x.experiment,
    runs: x.runs.map((r) => ({
      info: r.info,
      deletedTime: r.deletedTime,
      params: r.params,
      tags: r.tags,
      metrics: r.metrics,
      inputs: r.inputs,
    })),
  };
}

/** Imports an mlruns folder or zip. All or nothing. */
export async function importMlruns(
  db: AnyDB,
  source: Map<string, Uint8Array> | Blob | Uint8Array,
  options: ImportOptions = {},
): Promise<ImportResult> {
  const files =
    source instanceof Map
      ? source
      : unzipGuarded(
          source instanceof Uint8Array ? source : new Uint8Array(await source.arrayBuffer()),
          options.limits,
        );
  const tree = readMlruns(files);
  const inlineLimit = options.inlineLimit ?? 1024 * 1024;

  // Conflicts with what is already stored, checked before any write.
  const replace: string[] = [];
  for (const x of tree.experiments) {
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
    for (const r of x.runs) {
      const existing = await repo.getRunRecord(db, r.info.runId);
      if (
        existing &&
        !(replace.includes(existing.experimentId) && existing.experimentId === experimentId)
      ) {
        throw new MlflowError(
          'RESOURCE_ALREADY_EXISTS',
          `Run ${r.info.runId} already exists in experiment ${existing.experimentId}.`,
        );
      }
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
  const written: string[] = [];
  let metricPoints = 0;
  let preservedFiles = 0;
  try {
    for (const x of tree.experiments) {
      const exp: Experiment = { ...x.experiment, tags: { ...x.experiment.tags } };
      if (x.trashed) exp.lifecycleStage = 'deleted';
      bundle.experiments.push(exp);
      const expId = exp.experimentId;

      // What our writer makes of each entity as imported: unchanged entities give the same bytes
      // at export time, and then the original file is re-emitted.
      const canonical = writeExperimentFolder(
        x.experiment,
        forWriting(x).runs,
        extrasFrom(x.originals),
      ).files;
      for (const [rel, bytes] of x.originals) {
        const mine = canonical.get(rel);
        bundle.files.push({
          path: `${expId}/${rel}`,
          experimentId: expId,
          runId: null,
          preserved: false,
          canonicalHash: mine ? await sha256Hex(mine) : '',
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
          await writeBlob(db, blobId, bytes);
          written.push(blobId);
          rec.blobId = blobId;
        } else rec.bytes = bytes;
        bundle.files.push(rec);
      }
      for (const r of x.runs) {
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
          await writeBlob(db, blobId, bytes);
          written.push(blobId);
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
    // Blobs of a replaced experiment become garbage only once the new data is in.
    const oldBlobs: string[] = [];
    for (const id of replace) {
      for (const r of await repo.getExperimentRuns(db, id)) {
        for (const a of await repo.getRunArtifacts(db, r.runId)) oldBlobs.push(a.blobId);
      }
      for (const f of await repo.getMlrunsFiles(db, id)) if (f.blobId) oldBlobs.push(f.blobId);
    }
    await repo.writeImport(db, bundle);
    for (const id of oldBlobs) await deleteBlob(db, id).catch(() => undefined);
  } catch (e) {
    for (const id of written) await deleteBlob(db, id).catch(() => undefined);
    throw e;
  }
  for (const x of tree.experiments)
    emitStoreChange({ kind: 'import', id: x.experiment.experimentId });
  return {
    experimentIds: tree.experiments.map((x) => x.experiment.experimentId),
    runs: bundle.runs.length,
    metricPoints,
    artifacts: bundle.artifacts.length,
    preservedFiles,
    ignored: tree.ignored,
    warnings: tree.warnings,
  };
}

/** The files of an mlruns tree for the given experiments, by path under `mlruns/`. */
export async function exportMlrunsFiles(
  db: AnyDB,
  options: ExportOptions,
): Promise<Map<string, Uint8Array | null>> {
  const out = new Map<string, Uint8Array | null>();
  out.set('.trash/', null);
  const root = (options.artifactRoot ?? 'mlruns').replace(/\/+$/, '');
  const only = options.runIds ? new Set(options.runIds) : null;
  for (const expId of options.experimentIds) {
    const stored = await repo.getExperiment(db, expId);
    if (!stored)
      throw new MlflowError('RESOURCE_DOES_NOT_EXIST', `No Experiment with id=${expId} exists`);
    const originals = new Map(
      (await repo.getMlrunsFiles(db, expId)).map((f) => [f.path.slice(expId.length + 1), f]),
    );
    const exp: Experiment = { ...stored };
    const browserMade =
      !originals.has('meta.yaml') && !/^(file:|\/|[A-Za-z]:)/.test(stored.artifactLocation);
    if (browserMade) exp.artifactLocation = `${root}/${expId}`;
    const records = (await repo.getExperimentRuns(db, expId)).filter(
      (r) => !only || only.has(r.runId),
    );
    const runs: RunForWriting[] = [];
    for (const rec of records) {
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
    const dir = exp.lifecycleStage === 'deleted' ? `.trash/${expId}` : expId;
    const originalBytes = new Map(
      [...originals].filter(([, f]) => !f.preserved).map(([rel, f]) => [rel, f.bytes]),
    );
    const { files, dirs } = writeExperimentFolder(exp, runs, extrasFrom(originalBytes));
    for (const d of dirs) out.set(`${dir}/${d}`, null);
    const exportedRuns = new Set(records.map((r) => r.runId));
    for (const [rel, f] of originals) {
      if (!f.preserved) continue;
      // A preserved file inside a run folder goes only with its run.
      const top = rel.split('/')[0]!;
      if (only && /^[0-9a-f]{32}$/.test(top) && !exportedRuns.has(top)) continue;
      out.set(
        `${dir}/${rel}`,
        f.bytes ?? (f.blobId ? await readBlobBytes(db, f.blobId) : new Uint8Array()),
      );
    }
    for (const [rel, bytes] of files) {
      const orig = originals.get(rel);
      const same =
        orig && !orig.preserved && orig.bytes && orig.canonicalHash === (await sha256Hex(bytes));
      out.set(`${dir}/${rel}`, same ? orig.bytes! : bytes);
    }
    for (const rec of records) {
      for (const a of await repo.getRunArtifacts(db, rec.runId)) {
        out.set(`${dir}/${rec.runId}/artifacts/${a.path}`, await readBlobBytes(db, a.blobId));
      }
    }
  }
  return out;
}

/** An `mlruns/` zip of the given experiments (and optionally only some of their runs). */
export async function exportMlruns(db: AnyDB, options: ExportOptions): Promise<Uint8Array> {
  const files = await exportMlrunsFiles(db, options);
  const tree: Zippable = {};
  for (const [path, bytes] of files) {
    const name = `mlruns/${path}`;
    if (bytes === null) tree[name] = [new Uint8Array(0), { level: 0 }];
    else tree[name] = [bytes, { level: bytes.length > 8 * 1024 * 1024 ? 0 : 6 }];
  }
  return zipSync(tree);
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
