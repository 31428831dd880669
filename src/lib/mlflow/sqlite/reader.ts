/**
 * Reading MLflow's own database (`mlflow.db`, the SQLAlchemy store) into MLflow entities.
 * Pure: the caller opens the SQLite file (sql.js in the browser) and hands over a query runner.
 */
import type {
  Experiment,
  LifecycleStage,
  Metric,
  ModelVersion,
  ModelVersionStage,
  ModelVersionStatus,
  RegisteredModel,
  RunInfo,
  RunStatus,
} from '../entities.ts';
import { readLoggedModels, type LoggedModel, type LoggedModelLink } from './logged-models.ts';

/** Runs one SQL statement and returns its rows as column -> value objects. */
export interface SqlRunner {
  rows(sql: string, params?: Array<string | number | null>): Array<Record<string, unknown>>;
}

/**
 * MLflow's schema migrations (alembic revisions, oldest first) up to the newest MLflow the
 * interop tests run (3.17.2, head `dc11669786a5`; 2.22.x stops at `0584bdc529eb`). A database
 * at any of these revisions has the tables and columns this reader knows, or lacks ones it
 * treats as empty (aliases before 2.3, workspaces before 3.x).
 */
export const KNOWN_ALEMBIC_REVISIONS = [
  '451aebb31d03',
  '90e64c465722',
  '181f10493468',
  'df50e92ffc5e',
  '7ac759974ad8',
  '89d4b8295536',
  '2b4d017a5e9b',
  'cfd24bdc0731',
  '0a8213491aaa',
  '728d730b5ebd',
  '27a6a02d2cf1',
  '84291f40a231',
  'a8c4a736bde6',
  '39d1c3be5f05',
  'c48cb773bb87',
  'bd07f7e963c5',
  '0c779009ac13',
  'cc1f77228345',
  '97727af70f4d',
  '3500859a5d39',
  '7f2a7d5fae7d',
  '2d6e25af4d3e',
  'acf3f17fdcc7',
  '867495a8f9d4',
  '5b0e9adcef9c',
  '4465047574b1',
  'f5a4f2784254',
  '0584bdc529eb',
  '400f98739977',
  '6953534de441',
  'bda7b8c39065',
  'cbc13b556ace',
  '770bee3ae1dd',
  'a1b2c3d4e5f6',
  'de4033877273',
  '1a0cddfcaa16',
  '534353b11cbc',
  '71994744cf8e',
  '3da73c924c2f',
  'bf29a5ff90ea',
  '1bd49d398cd23',
  'b7c8d9e0f1a2',
  '5d2d30f0abce',
  'c9d4e5f6a7b8',
  '2c33131f4dae',
  'd3e4f5a6b7c8',
  'd0e1f2a3b4c5',
  'c8d9e0f1a2b3',
  '1b5f0d9ad7c1',
  'e1f2a3b4c5d6',
  '76601a5f987d',
  'c3d6457b6d8a',
  'a5b4c3d2e1f0',
  'ae8bbe7743c9',
  '7d34483879f0',
  'da6fb0208061',
  '89d3d66ed43f',
  'b7e4c1a90f23',
  'a8b9c0d1e2f3',
  'c1d2e3f4a5b6',
  'c3d9e7f1a2b4',
  '6f8d9c3b2a1e',
  '1971f2d9a75b',
  '17e22815139b',
  'b7e2c1a4d9f3',
  '75868b020152',
  'dc11669786a5',
] as const;

export class MlflowDbError extends Error {
  override name = 'MlflowDbError';
}

export interface MlflowDbRun {
  info: RunInfo;
  deletedTime: number | null;
  params: Record<string, string>;
  tags: Record<string, string>;
  /** Every logged point per metric key, in the database's row order. */
  metrics: Record<string, Metric[]>;
}

export interface MlflowDbModelVersion extends ModelVersion {
  runLink: string;
  aliases: string[];
  storageLocation: string | null;
}

export interface MlflowDbContents {
  alembicRevision: string;
  experiments: Experiment[];
  runs: MlflowDbRun[];
  registeredModels: RegisteredModel[];
  modelVersions: MlflowDbModelVersion[];
  /** MLflow 3 logged models (none in a 2.x database), with their params, tags and metrics. */
  loggedModels: LoggedModel[];
  /** Which runs produced (output) or used (input) which logged model. */
  loggedModelLinks: LoggedModelLink[];
}

const RUN_STATUSES = new Set<RunStatus>(['RUNNING', 'SCHEDULED', 'FINISHED', 'FAILED', 'KILLED']);
const STAGES = new Set<string>(['None', 'Staging', 'Production', 'Archived']);

function str(v: unknown): string {
  return v === null || v === undefined ? '' : String(v);
}

function num(v: unknown): number | null {
  if (v === null || v === undefined) return null;
  const n = typeof v === 'number' ? v : Number(v);
  return Number.isFinite(n) ? n : null;
}

function tableNames(sql: SqlRunner): Set<string> {
  return new Set(
    sql.rows("SELECT name FROM sqlite_master WHERE type = 'table'").map((r) => str(r.name)),
  );
}

/** Reads the alembic revision and refuses a database this reader does not know. */
export function checkAlembicRevision(sql: SqlRunner, file = 'mlflow.db'): string {
  const tables = tableNames(sql);
  if (!tables.has('alembic_version') || !tables.has('experiments') || !tables.has('runs')) {
    throw new MlflowDbError(
      `${file}: not an MLflow tracking database (expected the tables alembic_version, experiments and runs).`,
    );
  }
  const rows = sql.rows('SELECT version_num FROM alembic_version');
  const revision = str(rows[0]?.version_num);
  if (rows.length !== 1 || !(KNOWN_ALEMBIC_REVISIONS as readonly string[]).includes(revision)) {
    throw new MlflowDbError(
      `${file}: alembic_version is '${revision || '(empty)'}', a schema this app does not know. ` +
        `It reads MLflow databases up to MLflow 3.17 (revision ${KNOWN_ALEMBIC_REVISIONS.at(-1)}); ` +
        'open it with that MLflow version or newer app.',
    );
  }
  return revision;
}

function tagsBy(
  sql: SqlRunner,
  tables: Set<string>,
  table: string,
  keyCols: string[],
): Map<string, Record<string, string>> {
  const out = new Map<string, Record<string, string>>();
  if (!tables.has(table)) return out;
  // Experiment ids are 64-bit integers: read as text so ids past 2^53 keep every digit.
  const select = keyCols.includes('experiment_id')
    ? `SELECT *, CAST(experiment_id AS TEXT) AS experiment_id FROM ${table}`
    : `SELECT * FROM ${table}`;
  for (const r of sql.rows(select)) {
    const id = keyCols.map((c) => str(r[c])).join('\u0000');
    const tags = out.get(id) ?? {};
    tags[str(r.key)] = str(r.value);
    out.set(id, tags);
  }
  return out;
}

/** Everything a tracking and registry import needs, read in a handful of queries. */
export function readMlflowDb(sql: SqlRunner, file = 'mlflow.db'): MlflowDbContents {
  const alembicRevision = checkAlembicRevision(sql, file);
  const tables = tableNames(sql);

  const expTags = tagsBy(sql, tables, 'experiment_tags', ['experiment_id']);
  const experiments: Experiment[] = sql
    .rows(
      'SELECT *, CAST(experiment_id AS TEXT) AS experiment_id FROM experiments ORDER BY experiments.experiment_id',
    )
    .map((r) => {
      const id = str(r.experiment_id);
      return {
        experimentId: id,
        name: str(r.name),
        artifactLocation: str(r.artifact_location),
        lifecycleStage: (str(r.lifecycle_stage) || 'active') as LifecycleStage,
        creationTime: num(r.creation_time) ?? 0,
        lastUpdateTime: num(r.last_update_time) ?? num(r.creation_time) ?? 0,
        tags: expTags.get(id) ?? {},
      };
    });

  const params = tagsBy(sql, tables, 'params', ['run_uuid']);
  const tags = tagsBy(sql, tables, 'tags', ['run_uuid']);
  const metrics = new Map<string, Record<string, Metric[]>>();
  for (const r of sql.rows('SELECT * FROM metrics ORDER BY rowid')) {
    const runId = str(r.run_uuid);
    const key = str(r.key);
    // NaN is stored as is_nan = 1 with value 0. Infinities were clamped to +-1.7976931348623157e308
    // when logged, and MlflowClient reports them clamped: so do we.
    let value = num(r.value) ?? 0;
    if (Number(r.is_nan) === 1) value = NaN;
    const byKey = metrics.get(runId) ?? {};
    (byKey[key] ??= []).push({
      key,
      value,
      timestamp: num(r.timestamp) ?? 0,
      step: num(r.step) ?? 0,
    });
    metrics.set(runId, byKey);
  }
  const runs: MlflowDbRun[] = sql
    .rows(
      'SELECT *, CAST(experiment_id AS TEXT) AS experiment_id FROM runs ORDER BY start_time, run_uuid',
    )
    .map((r) => {
      const runId = str(r.run_uuid);
      const status = str(r.status) as RunStatus;
      const runTags = tags.get(runId) ?? {};
      return {
        info: {
          runId,
          experimentId: str(r.experiment_id),
          runName: str(r.name) || runTags['mlflow.runName'] || '',
          userId: str(r.user_id),
          status: RUN_STATUSES.has(status) ? status : 'RUNNING',
          startTime: num(r.start_time) ?? 0,
          endTime: num(r.end_time),
          artifactUri: str(r.artifact_uri),
          lifecycleStage: (str(r.lifecycle_stage) || 'active') as LifecycleStage,
        },
        deletedTime: num(r.deleted_time),
        params: params.get(runId) ?? {},
        tags: runTags,
        metrics: metrics.get(runId) ?? {},
      };
    });

  const registeredModels: RegisteredModel[] = [];
  const modelVersions: MlflowDbModelVersion[] = [];
  if (tables.has('registered_models')) {
    const rmTags = tagsBy(sql, tables, 'registered_model_tags', ['name']);
    const mvTags = tagsBy(sql, tables, 'model_version_tags', ['name', 'version']);
    const aliases = new Map<string, Record<string, string>>();
    if (tables.has('registered_model_aliases')) {
      for (const r of sql.rows('SELECT * FROM registered_model_aliases')) {
        const m = aliases.get(str(r.name)) ?? {};
        m[str(r.alias)] = str(r.version);
        aliases.set(str(r.name), m);
      }
    }
    for (const r of sql.rows('SELECT * FROM registered_models ORDER BY name')) {
      const name = str(r.name);
      registeredModels.push({
        name,
        description: str(r.description),
        creationTimestamp: num(r.creation_time) ?? 0,
        lastUpdatedTimestamp: num(r.last_updated_time) ?? 0,
        tags: rmTags.get(name) ?? {},
        aliases: aliases.get(name) ?? {},
      });
    }
    for (const r of sql.rows(
      "SELECT * FROM model_versions WHERE current_stage != 'Deleted_Internal' ORDER BY name, version",
    )) {
      const name = str(r.name);
      const version = str(r.version);
      const stage = str(r.current_stage);
      const modelAliases = aliases.get(name) ?? {};
      modelVersions.push({
        name,
        version,
        description: str(r.description),
        creationTimestamp: num(r.creation_time) ?? 0,
        lastUpdatedTimestamp: num(r.last_updated_time) ?? 0,
        currentStage: (STAGES.has(stage) ? stage : 'None') as ModelVersionStage,
        source: str(r.source),
        runId: str(r.run_id),
        status: (str(r.status) || 'READY') as ModelVersionStatus,
        statusMessage: str(r.status_message),
        tags: mvTags.get(`${name}\u0000${version}`) ?? {},
        userId: str(r.user_id),
        runLink: str(r.run_link),
        aliases: Object.keys(modelAliases).filter((a) => modelAliases[a] === version),
        storageLocation:
          r.storage_location === undefined ? null : (r.storage_location as string | null),
      });
    }
  }
  const logged = readLoggedModels(sql, tables);
  return {
    alembicRevision,
    experiments,
    runs,
    registeredModels,
    modelVersions,
    loggedModels: logged.loggedModels,
    loggedModelLinks: logged.links,
  };
}
