/**
 * MLflow's own database (`mlflow.db`, written by `mlflow server` or the Python client with a
 * `sqlite:///` tracking URI), in and out: experiments, runs, params, tags, metric histories,
 * MLflow 3 logged models (params, tags, metrics, and which runs produced or used them),
 * registered models, versions and aliases. SQLite runs in the browser as WASM (sql.js).
 * - Import: the file is read and checked whole first; tracking data lands in one transaction.
 *   Artifacts are not in the database (they live under each experiment's artifact location,
 *   and a logged model's under its own artifact_location) and are not imported: the imported
 *   entities keep pointing at them. Logged models are kept the way an `mlruns` import keeps them
 *   (the file store's `<experiment>/models/<model_id>/` files), so both exports carry them.
 * - Export: a database with the schema of the MLflow the interop tests run (its DDL is shipped,
 *   see mlflow/sqlite/schema-*.sql.ts), plus the run artifacts the app holds under an
 *   `mlartifacts/` folder, which is where `mlflow server --serve-artifacts` keeps them.
 */
import { zipSync, type Zippable } from 'fflate';
import initSqlJs, { type Database, type SqlJsStatic } from 'sql.js';
import type { AnyDB } from '../store/db.ts';
import type { Metric } from '../mlflow/entities.ts';
import { MlflowError } from '../mlflow/errors.ts';
import {
  MlflowDbError,
  readMlflowDb,
  type MlflowDbContents,
  type SqlRunner,
} from '../mlflow/sqlite/reader.ts';
import {
  LATEST_SCHEMA,
  SCHEMAS,
  SCHEMA_MLFLOW_VERSION,
  SCHEMA_REVISION,
  hasLoggedModelTables,
  writeMlflowDb,
  type MlflowDbWriteInput,
} from '../mlflow/sqlite/writer.ts';
import {
  loggedModelFiles,
  loggedModelLinkFile,
  loggedModelsFromFiles,
  type LoggedModel,
  type LoggedModelLink,
} from '../mlflow/sqlite/logged-models.ts';
import * as repo from '../store/tracking.ts';
import * as registry from '../store/registry.ts';
import { readBlobBytes } from '../store/blobs.ts';
import { emitStoreChange } from './events.ts';

export { MlflowDbError, SCHEMAS, SCHEMA_MLFLOW_VERSION, SCHEMA_REVISION };
export type { LoggedModel, LoggedModelLink };

let sqlJs: Promise<SqlJsStatic> | undefined;

/**
 * Loads sql.js once. In the browser pass the URL of `sql.js/dist/sql-wasm.wasm` (a Vite
 * `?url` import); in Node the module finds its WASM file itself.
 */
export function loadSqlJs(wasmUrl?: string): Promise<SqlJsStatic> {
  sqlJs ??= initSqlJs(wasmUrl ? { locateFile: () => wasmUrl } : undefined);
  return sqlJs;
}

function runner(database: Database): SqlRunner {
  return {
    rows(sql, params) {
      const stmt = database.prepare(sql);
      try {
        if (params) stmt.bind(params);
        const out: Array<Record<string, unknown>> = [];
        while (stmt.step()) out.push(stmt.getAsObject());
        return out;
      } finally {
        stmt.free();
      }
    },
  };
}

/** Opens and reads an mlflow.db without touching the app's store. */
export async function readMlflowDbFile(
  bytes: Uint8Array,
  options: { fileName?: string; wasmUrl?: string } = {},
): Promise<MlflowDbContents> {
  const file = options.fileName ?? 'mlflow.db';
  const SQL = await loadSqlJs(options.wasmUrl);
  let database: Database;
  try {
    database = new SQL.Database(bytes);
  } catch (e) {
    throw new MlflowDbError(`${file}: not a SQLite database (${(e as Error).message}).`);
  }
  try {
    return readMlflowDb(runner(database), file);
  } catch (e) {
    if (e instanceof MlflowDbError) throw e;
    throw new MlflowDbError(
      `${file}: could not be read as an MLflow database: ${(e as Error).message}`,
    );
  } finally {
    database.close();
  }
}

export interface MlflowDbImportOptions {
  fileName?: string;
  wasmUrl?: string;
}

export interface MlflowDbImportResult {
  alembicRevision: string;
  experimentIds: string[];
  runs: number;
  metricPoints: number;
  registeredModels: string[];
  modelVersions: number;
  loggedModels: number;
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

/**
 * Imports an mlflow.db. Refuses (before writing anything) a database whose schema revision is
 * unknown, and experiments, runs or registered models that already exist here.
 */
export async function importMlflowDb(
  db: AnyDB,
  bytes: Uint8Array,
  options: MlflowDbImportOptions = {},
): Promise<MlflowDbImportResult> {
  const contents = await readMlflowDbFile(bytes, options);

  for (const e of contents.experiments) {
    const byId = await repo.getExperiment(db, e.experimentId);
    const byName = await repo.getExperimentByName(db, e.name);
    if (byId || byName) {
      throw new MlflowError(
        'RESOURCE_ALREADY_EXISTS',
        `Experiment '${e.name}' (id ${e.experimentId}) already exists here; delete it before importing this database.`,
      );
    }
  }
  for (const r of contents.runs) {
    if (await repo.getRunRecord(db, r.info.runId)) {
      throw new MlflowError('RESOURCE_ALREADY_EXISTS', `Run ${r.info.runId} already exists here.`);
    }
  }
  const existingModels = new Set(
    (await registry.listRegisteredModelRecords(db)).map((m) => m.name),
  );
  for (const m of contents.registeredModels) {
    if (existingModels.has(m.name)) {
      throw new MlflowError(
        'RESOURCE_ALREADY_EXISTS',
        `Registered model '${m.name}' already exists here; rename or delete it before importing.`,
      );
    }
  }

  const bundle: repo.ImportBundle = {
    experiments: contents.experiments,
    runs: [],
    history: [],
    artifacts: [],
    files: [],
    replaceExperimentIds: [],
  };
  const runExperiment = new Map(contents.runs.map((r) => [r.info.runId, r.info.experimentId]));
  const preserved = (experimentId: string, rel: string, bytes: Uint8Array) =>
    bundle.files.push({
      path: `${experimentId}/${rel}`,
      experimentId,
      runId: null,
      preserved: true,
      canonicalHash: '',
      bytes,
      size: bytes.length,
    });
  for (const m of contents.loggedModels) {
    for (const [rel, bytes] of loggedModelFiles(m)) preserved(m.experimentId, rel, bytes);
  }
  for (const l of contents.loggedModelLinks) {
    const experimentId = runExperiment.get(l.runId);
    if (experimentId === undefined) continue;
    const [rel, bytes] = loggedModelLinkFile(l);
    preserved(experimentId, rel, bytes);
  }
  let metricPoints = 0;
  for (const r of contents.runs) {
    const rec = repo.newRunRecord(r.info, r.tags);
    rec.deletedTime = r.deletedTime;
    rec.params = { ...r.params };
    rec.metrics = latestOf(r.metrics);
    bundle.runs.push(rec);
    for (const [key, points] of Object.entries(r.metrics)) {
      bundle.history.push(...repo.packChunks(r.info.runId, key, points));
      metricPoints += points.length;
    }
  }
  await repo.writeImport(db, bundle);
  for (const e of contents.experiments) emitStoreChange({ kind: 'import', id: e.experimentId });

  const origin: registry.ModelOrigin = {
    kind: 'registry-archive',
    fileName: options.fileName ?? 'mlflow.db',
  };
  for (const m of contents.registeredModels) {
    const input: { name: string; description?: string; tags?: Record<string, string> } = {
      name: m.name,
      tags: m.tags,
    };
    if (m.description) input.description = m.description;
    await registry.createRegisteredModel(db, input, m.creationTimestamp);
    for (const v of contents.modelVersions.filter((x) => x.name === m.name)) {
      const nv: registry.NewModelVersion = {
        name: v.name,
        version: Number(v.version),
        source: v.source,
        tags: v.tags,
        origin,
        servable: null,
        files: [],
        currentStage: v.currentStage,
        creationTimestamp: v.creationTimestamp,
      };
      if (v.runId) nv.runId = v.runId;
      if (v.runLink) nv.runLink = v.runLink;
      if (v.description) nv.description = v.description;
      if (v.userId) nv.userId = v.userId;
      await registry.createModelVersion(db, nv);
    }
    for (const [alias, version] of Object.entries(m.aliases)) {
      await registry.setAlias(db, m.name, alias, version);
    }
    emitStoreChange({ kind: 'registry', id: m.name });
  }
  await restoreRegistryTimes(db, contents);

  return {
    alembicRevision: contents.alembicRevision,
    experimentIds: contents.experiments.map((e) => e.experimentId),
    runs: contents.runs.length,
    metricPoints,
    registeredModels: contents.registeredModels.map((m) => m.name),
    modelVersions: contents.modelVersions.length,
    loggedModels: contents.loggedModels.length,
  };
}

/** Whether a kept file-store path belongs to a logged model or a run's link to one. */
function isLoggedModelPath(rel: string): boolean {
  return (
    /^models\/m-[^/]+\//.test(rel) ||
    /^[0-9a-f]{32}\/(outputs|inputs)\/[^/]+\/meta\.yaml$/.test(rel)
  );
}

async function keptBytes(db: AnyDB, f: repo.MlrunsFileRecord): Promise<Uint8Array> {
  return f.bytes ?? (f.blobId ? await readBlobBytes(db, f.blobId) : new Uint8Array());
}

/**
 * The MLflow 3 logged models of an experiment, as MlflowClient.get_logged_model reports them
 * (params, tags and every metric point), with the runs that produced or used them. They come
 * from an mlflow.db or an `mlruns` import; their artifact files, when the store holds them, are
 * read with mlruns-io's readLoggedModelFiles.
 */
export async function getLoggedModels(
  db: AnyDB,
  experimentId: string,
): Promise<{
  loggedModels: LoggedModel[];
  links: LoggedModelLink[];
  artifactFiles: Map<string, repo.MlrunsFileRecord[]>;
}> {
  const files = new Map<string, Uint8Array>();
  const artifactFiles = new Map<string, repo.MlrunsFileRecord[]>();
  const prefix = `${experimentId}/`;
  for (const f of await repo.getMlrunsFiles(db, experimentId)) {
    if (!f.preserved || !f.path.startsWith(prefix)) continue;
    const rel = f.path.slice(prefix.length);
    if (!isLoggedModelPath(rel)) continue;
    const art = /^models\/(m-[^/]+)\/artifacts\/./.exec(rel);
    if (art) {
      const list = artifactFiles.get(art[1]!) ?? [];
      list.push(f);
      artifactFiles.set(art[1]!, list);
      continue;
    }
    files.set(rel, await keptBytes(db, f));
  }
  return { ...loggedModelsFromFiles(experimentId, files), artifactFiles };
}

/**
 * The registry verbs stamp "now" as the last update of what they create; an import keeps the
 * times the database had (and the version statuses), so an export gives them back unchanged.
 */
async function restoreRegistryTimes(db: AnyDB, contents: MlflowDbContents): Promise<void> {
  const tx = db.transaction(['registeredModels', 'modelVersions'], 'readwrite');
  const models = tx.objectStore('registeredModels');
  for (const m of contents.registeredModels) {
    const rec = (await models.get(m.name)) as registry.RegisteredModelRecord | undefined;
    if (!rec) continue;
    rec.lastUpdatedTimestamp = m.lastUpdatedTimestamp;
    await models.put(rec);
  }
  const versions = tx.objectStore('modelVersions');
  for (const v of contents.modelVersions) {
    const rec = (await versions.index('nameVersion').get([v.name, Number(v.version)])) as
      registry.ModelVersionRecord | undefined;
    if (!rec) continue;
    rec.lastUpdatedTimestamp = v.lastUpdatedTimestamp;
    rec.status = v.status;
    rec.statusMessage = v.statusMessage;
    await versions.put(rec);
  }
  await tx.done;
}

// ---------------------------------------------------------------- export

export interface MlflowDbExportOptions {
  /** Experiments to export (default: all of them, deleted ones included). */
  experimentIds?: string[];
  /** Registered models to export (default: all). */
  registeredModels?: string[];
  /**
   * Point every experiment and run at the artifact proxy (`mlflow-artifacts:/<experiment id>`)
   * so that `mlflow server --serve-artifacts --artifacts-destination mlartifacts` serves the
   * artifacts the app holds. Default false: locations are kept as they are (a database that
   * came from Python keeps pointing at its artifacts), and only runs already under
   * `mlflow-artifacts:` get their files in `artifacts`.
   */
  useArtifactProxy?: boolean;
  /** The MLflow version whose schema to write (one of SCHEMAS; default the newest). */
  mlflowVersion?: string;
  wasmUrl?: string;
}

/**
 * A file the export carries, at `path` under the server's artifacts destination: a run artifact,
 * or (with `modelId`) a file of a logged model. Read its bytes with exportArtifactBytes.
 */
export interface MlflowDbExportArtifact {
  path: string;
  /** The run it belongs to; for a logged model's file, the run that produced it ('' if none). */
  runId: string;
  /** Path under the run's (or the logged model's) artifact root. */
  artifactPath: string;
  /** The stored file; '' when the bytes are kept inline (small files of a logged model). */
  blobId: string;
  size: number;
  modelId?: string;
  bytes?: Uint8Array;
}

export async function exportArtifactBytes(
  db: AnyDB,
  a: MlflowDbExportArtifact,
): Promise<Uint8Array> {
  return a.bytes ?? readBlobBytes(db, a.blobId);
}

export interface MlflowDbExport {
  database: Uint8Array;
  artifacts: MlflowDbExportArtifact[];
  /** Logged models left out because the chosen schema (MLflow 2.x) cannot hold them. */
  omittedLoggedModels: number;
  /** The MLflow version whose schema the database has, and its alembic revision. */
  mlflowVersion: string;
  alembicRevision: string;
}

const PROXY_SCHEME = 'mlflow-artifacts:';

function proxyPath(uri: string): string | null {
  if (!uri.startsWith(PROXY_SCHEME)) return null;
  // mlflow-artifacts:/1/abc/artifacts and mlflow-artifacts://host:port/1/abc/artifacts
  const rest = uri.slice(PROXY_SCHEME.length);
  const path = rest.startsWith('//') ? rest.replace(/^\/\/[^/]*/, '') : rest;
  return path.replace(/^\/+/, '').replace(/\/+$/, '');
}

/** Gathers what an export writes, from the store. */
async function exportContents(
  db: AnyDB,
  options: MlflowDbExportOptions,
): Promise<{ input: MlflowDbWriteInput; artifacts: MlflowDbExportArtifact[] }> {
  const all = await repo.listExperiments(db);
  const wanted = options.experimentIds ? new Set(options.experimentIds) : null;
  if (wanted) {
    for (const id of wanted) {
      if (!all.some((e) => e.experimentId === id)) {
        throw new MlflowError('RESOURCE_DOES_NOT_EXIST', `No Experiment with id=${id} exists`);
      }
    }
  }
  const input: MlflowDbWriteInput = {
    experiments: [],
    runs: [],
    registeredModels: [],
    modelVersions: [],
    loggedModels: [],
    loggedModelLinks: [],
  };
  const artifacts: MlflowDbExportArtifact[] = [];
  for (const stored of all) {
    if (wanted && !wanted.has(stored.experimentId)) continue;
    const exp = { ...stored, tags: { ...stored.tags } };
    if (options.useArtifactProxy) exp.artifactLocation = `${PROXY_SCHEME}/${exp.experimentId}`;
    input.experiments.push(exp);
    for (const rec of await repo.getExperimentRuns(db, exp.experimentId)) {
      const info = repo.runInfoOf(rec);
      if (options.useArtifactProxy) {
        info.artifactUri = `${exp.artifactLocation}/${info.runId}/artifacts`;
      }
      const history = await repo.getRunHistoriesInLogOrder(db, rec.runId);
      input.runs.push({
        info,
        deletedTime: rec.deletedTime,
        params: { ...rec.params },
        tags: { ...rec.tags },
        metrics: Object.fromEntries(history),
      });
      const base = proxyPath(info.artifactUri);
      if (base === null) continue;
      for (const a of await repo.getRunArtifacts(db, rec.runId)) {
        artifacts.push({
          path: base ? `${base}/${a.path}` : a.path,
          runId: rec.runId,
          artifactPath: a.path,
          blobId: a.blobId,
          size: a.size,
        });
      }
    }

    const logged = await getLoggedModels(db, exp.experimentId);
    for (const m of logged.loggedModels) {
      const files = logged.artifactFiles.get(m.modelId) ?? [];
      // A model whose files the app holds is served from the proxy; one whose files it never
      // had keeps pointing where they are.
      if (options.useArtifactProxy && files.length > 0) {
        m.artifactLocation = `${exp.artifactLocation}/models/${m.modelId}/artifacts`;
      }
      input.loggedModels!.push(m);
      const base = proxyPath(m.artifactLocation);
      if (base === null) continue;
      const prefix = `${exp.experimentId}/models/${m.modelId}/artifacts/`;
      for (const f of files) {
        const rel = f.path.slice(prefix.length);
        const a: MlflowDbExportArtifact = {
          path: base ? `${base}/${rel}` : rel,
          runId: m.sourceRunId ?? '',
          artifactPath: rel,
          blobId: f.blobId ?? '',
          size: f.size,
          modelId: m.modelId,
        };
        if (!f.blobId) a.bytes = f.bytes ?? new Uint8Array();
        artifacts.push(a);
      }
    }
    input.loggedModelLinks!.push(...logged.links);
  }

  const models = await registry.listRegisteredModelRecords(db);
  const wantedModels = options.registeredModels ? new Set(options.registeredModels) : null;
  for (const m of models.sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (wantedModels && !wantedModels.has(m.name)) continue;
    input.registeredModels.push(registry.registeredModelOf(m));
    for (const v of (await registry.listModelVersionRecords(db, m.name)).reverse()) {
      input.modelVersions.push({
        ...registry.modelVersionOf(v),
        runLink: v.runLink,
        aliases: registry.aliasesOf(m, v.version),
        storageLocation: null,
      });
    }
  }
  return { input, artifacts };
}

/** Builds an mlflow.db (SQLite bytes) of the app's experiments, runs and registry. */
export async function exportMlflowDb(
  db: AnyDB,
  options: MlflowDbExportOptions = {},
): Promise<MlflowDbExport> {
  const schema = options.mlflowVersion
    ? SCHEMAS.find((s) => s.mlflowVersion === options.mlflowVersion)
    : LATEST_SCHEMA;
  if (!schema) {
    throw new MlflowDbError(
      `No mlflow.db schema for MLflow ${options.mlflowVersion}; available: ${SCHEMAS.map((s) => s.mlflowVersion).join(', ')}.`,
    );
  }
  const { input, artifacts } = await exportContents(db, options);
  // MLflow 2.x has no logged models: a 2.x export leaves them (and their files) out.
  const omittedLoggedModels = hasLoggedModelTables(schema) ? 0 : (input.loggedModels ?? []).length;
  if (omittedLoggedModels > 0) {
    input.loggedModels = [];
    input.loggedModelLinks = [];
  }
  const carried = omittedLoggedModels > 0 ? artifacts.filter((a) => !a.modelId) : artifacts;
  const SQL = await loadSqlJs(options.wasmUrl);
  const database = new SQL.Database();
  try {
    database.run('BEGIN');
    writeMlflowDb(
      {
        run(sql, params) {
          database.run(sql, params ?? []);
        },
      },
      input,
      schema,
    );
    database.run('COMMIT');
    return {
      database: database.export(),
      artifacts: carried,
      omittedLoggedModels,
      mlflowVersion: schema.mlflowVersion,
      alembicRevision: schema.revision,
    };
  } finally {
    database.close();
  }
}

/**
 * A zip holding `mlflow.db` and the artifacts under `mlartifacts/`: unzip it and run
 * `mlflow server --backend-store-uri sqlite:///mlflow.db --artifacts-destination mlartifacts`.
 */
export async function exportMlflowDbZip(
  db: AnyDB,
  options: MlflowDbExportOptions = {},
): Promise<Uint8Array> {
  const out = await exportMlflowDb(db, { useArtifactProxy: true, ...options });
  const tree: Zippable = { 'mlflow.db': [out.database, { level: 6 }] };
  for (const a of out.artifacts) {
    const bytes = await exportArtifactBytes(db, a);
    tree[`mlartifacts/${a.path}`] = [bytes, { level: bytes.length > 8 * 1024 * 1024 ? 0 : 6 }];
  }
  return zipSync(tree);
}
