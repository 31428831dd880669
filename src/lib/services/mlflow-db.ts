/**
 * MLflow's own database (`mlflow.db`, written by `mlflow server` or the Python client with a
 * `sqlite:///` tracking URI), in and out: experiments, runs, params, tags, metric histories,
 * registered models, versions and aliases. SQLite runs in the browser as WASM (sql.js).
 * - Import: the file is read and checked whole first; tracking data lands in one transaction.
 *   Artifacts are not in the database (they live under each experiment's artifact location)
 *   and are not imported.
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
  writeMlflowDb,
  type MlflowDbWriteInput,
} from '../mlflow/sqlite/writer.ts';
import * as repo from '../store/tracking.ts';
import * as registry from '../store/registry.ts';
import { readBlobBytes } from '../store/blobs.ts';
import { emitStoreChange } from './events.ts';

export { MlflowDbError, SCHEMAS, SCHEMA_MLFLOW_VERSION, SCHEMA_REVISION };

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
  };
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

/** A run artifact the export carries, at `path` under the server's artifacts destination. */
export interface MlflowDbExportArtifact {
  path: string;
  runId: string;
  artifactPath: string;
  blobId: string;
  size: number;
}

export interface MlflowDbExport {
  database: Uint8Array;
  artifacts: MlflowDbExportArtifact[];
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
      artifacts,
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
    const bytes = await readBlobBytes(db, a.blobId);
    tree[`mlartifacts/${a.path}`] = [bytes, { level: bytes.length > 8 * 1024 * 1024 ? 0 : 6 }];
  }
  return zipSync(tree);
}
