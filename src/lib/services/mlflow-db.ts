/**
 * Importing MLflow's own database (`mlflow.db`, written by `mlflow server` or the Python client
 * with a `sqlite:///` tracking URI): experiments, runs, params, tags, metric histories, registered
 * models, versions and aliases. SQLite runs in the browser as WASM (sql.js). The file is read
 * and checked whole first; tracking data lands in one transaction. Artifacts are not in the
 * database (they live under each experiment's artifact location) and are not imported.
 */
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
import * as repo from '../store/tracking.ts';
import * as registry from '../store/registry.ts';
import { emitStoreChange } from './events.ts';

export { MlflowDbError };

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

  return {
    alembicRevision: contents.alembicRevision,
    experimentIds: contents.experiments.map((e) => e.experimentId),
    runs: contents.runs.length,
    metricPoints,
    registeredModels: contents.registeredModels.map((m) => m.name),
    modelVersions: contents.modelVersions.length,
  };
}
