/**
 * Writing MLflow's own database (`mlflow.db`) from MLflow entities: the schema MLflow itself
 * created (shipped as text, see schema-*.sql.ts), then one row per entity as MLflow's SQLAlchemy
 * store would have written it. Pure: the caller opens an empty SQLite database (sql.js in the
 * browser) and hands over a statement runner.
 */
import type { Metric } from '../entities.ts';
import { MlflowDbError, type MlflowDbContents } from './reader.ts';
import { writeLoggedModels } from './logged-models.ts';
import * as latest from './schema-dc11669786a5.sql.ts';
import * as mlflow2 from './schema-0584bdc529eb.sql.ts';

/** A schema MLflow created, shipped as text (scripts/interop/make_sqlite_schema.py). */
export interface MlflowDbSchema {
  mlflowVersion: string;
  revision: string;
  sql: readonly string[];
}

const schemaOf = (m: {
  SCHEMA_MLFLOW_VERSION: string;
  SCHEMA_REVISION: string;
  SCHEMA_SQL: readonly string[];
}): MlflowDbSchema => ({
  mlflowVersion: m.SCHEMA_MLFLOW_VERSION,
  revision: m.SCHEMA_REVISION,
  sql: m.SCHEMA_SQL,
});

/** The schemas an export can have: the newest MLflow the interop tests run, and one late 2.x. */
export const SCHEMAS: readonly MlflowDbSchema[] = [schemaOf(latest), schemaOf(mlflow2)];
export const LATEST_SCHEMA: MlflowDbSchema = SCHEMAS[0]!;
export const SCHEMA_MLFLOW_VERSION = LATEST_SCHEMA.mlflowVersion;
export const SCHEMA_REVISION = LATEST_SCHEMA.revision;

export type SqlValue = string | number | null;

/** Runs one statement with positional parameters. */
export interface SqlExecutor {
  run(sql: string, params?: SqlValue[]): void;
}

/** What an export writes; the same shape the reader returns, less the revision. */
export type MlflowDbWriteInput = Omit<
  MlflowDbContents,
  'alembicRevision' | 'loggedModels' | 'loggedModelLinks'
> &
  Partial<Pick<MlflowDbContents, 'loggedModels' | 'loggedModelLinks'>>;

/** Whether a schema has MLflow 3's logged-model tables (2.x schemas do not). */
export function hasLoggedModelTables(schema: MlflowDbSchema): boolean {
  return schema.sql.some((s) => /^CREATE TABLE "?logged_models"? /.test(s));
}

// MLflow's SQL store clamps infinities to the largest double before it writes them
// (sqlalchemy_store._log_metrics), and reads them back clamped.
const MAX_DOUBLE = 1.7976931348623157e308;

// experiment_id is an INTEGER column; a 64-bit signed integer holds up to 19 digits.
const INT64_MAX = 9223372036854775807n;

function experimentIdValue(id: string, what: string): string {
  if (!/^\d{1,19}$/.test(id) || BigInt(id) > INT64_MAX) {
    throw new MlflowDbError(
      `${what}: experiment id '${id}' is not a number; mlflow.db keeps experiment ids as 64-bit integers.`,
    );
  }
  // Bound as text: SQLite's INTEGER affinity stores it as an exact integer (a JS number would
  // round ids longer than 15 digits).
  return id;
}

function orNull(s: string | null | undefined): string | null {
  return s === undefined || s === null || s === '' ? null : s;
}

function storedValue(v: number): { value: number; isNan: number } {
  if (Number.isNaN(v)) return { value: 0, isNan: 1 };
  if (v === Infinity) return { value: MAX_DOUBLE, isNan: 0 };
  if (v === -Infinity) return { value: -MAX_DOUBLE, isNan: 0 };
  return { value: v, isNan: 0 };
}

/**
 * The point MLflow's latest_metrics keeps for a key: each logged point replaces the kept one when
 * (step, timestamp, value) is at least as large (sqlalchemy_store._update_latest_metrics_if_necessary),
 * comparing the stored value (NaN stored as 0).
 */
export function latestMetric(points: readonly Metric[]): Metric | undefined {
  let best: Metric | undefined;
  for (const p of points) {
    if (!best) {
      best = p;
      continue;
    }
    const a = storedValue(p.value).value;
    const b = storedValue(best.value).value;
    if (
      p.step > best.step ||
      (p.step === best.step &&
        (p.timestamp > best.timestamp || (p.timestamp === best.timestamp && a >= b)))
    ) {
      best = p;
    }
  }
  return best;
}

/** Creates MLflow's schema (tables, indexes, the alembic revision) in an empty database. */
export function createSchema(sql: SqlExecutor, schema: MlflowDbSchema = LATEST_SCHEMA): void {
  for (const statement of schema.sql) sql.run(statement);
}

/**
 * Writes the schema and every entity. The columns written exist in every schema of SCHEMAS
 * (3.x adds a `workspace` column, left at its default). Throws MlflowDbError naming what cannot
 * be stored.
 */
export function writeMlflowDb(
  sql: SqlExecutor,
  input: MlflowDbWriteInput,
  schema: MlflowDbSchema = LATEST_SCHEMA,
): void {
  createSchema(sql, schema);

  const experimentIds = new Set<string>();
  for (const e of input.experiments) {
    const id = experimentIdValue(e.experimentId, `Experiment '${e.name}'`);
    experimentIds.add(e.experimentId);
    sql.run(
      'INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time) VALUES (?, ?, ?, ?, ?, ?)',
      [id, e.name, e.artifactLocation, e.lifecycleStage, e.creationTime, e.lastUpdateTime],
    );
    for (const [key, value] of Object.entries(e.tags)) {
      sql.run('INSERT INTO experiment_tags (key, value, experiment_id) VALUES (?, ?, ?)', [
        key,
        value,
        id,
      ]);
    }
  }

  for (const r of input.runs) {
    const i = r.info;
    if (!experimentIds.has(i.experimentId)) {
      throw new MlflowDbError(
        `Run ${i.runId}: its experiment ${i.experimentId} is not part of the export.`,
      );
    }
    sql.run(
      'INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status, start_time, end_time, source_version, lifecycle_stage, artifact_uri, experiment_id, deleted_time) ' +
        "VALUES (?, ?, 'UNKNOWN', '', '', ?, ?, ?, ?, '', ?, ?, ?, ?)",
      [
        i.runId,
        i.runName,
        i.userId,
        i.status,
        i.startTime,
        i.endTime,
        i.lifecycleStage,
        i.artifactUri,
        i.experimentId,
        r.deletedTime,
      ],
    );
    for (const [key, value] of Object.entries(r.params)) {
      sql.run('INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)', [key, value, i.runId]);
    }
    for (const [key, value] of Object.entries(r.tags)) {
      sql.run('INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)', [key, value, i.runId]);
    }
    for (const [key, points] of Object.entries(r.metrics)) {
      for (const p of points) {
        const { value, isNan } = storedValue(p.value);
        // The primary key spans every column: MLflow keeps one row for identical points too.
        sql.run(
          'INSERT OR IGNORE INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (?, ?, ?, ?, ?, ?)',
          [key, value, p.timestamp, i.runId, p.step, isNan],
        );
      }
      const latest = latestMetric(points);
      if (latest) {
        const { value, isNan } = storedValue(latest.value);
        sql.run(
          'INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) VALUES (?, ?, ?, ?, ?, ?)',
          [key, value, latest.timestamp, latest.step, isNan, i.runId],
        );
      }
    }
  }

  const models = new Set<string>();
  for (const m of input.registeredModels) {
    models.add(m.name);
    sql.run(
      'INSERT INTO registered_models (name, creation_time, last_updated_time, description) VALUES (?, ?, ?, ?)',
      [m.name, m.creationTimestamp, m.lastUpdatedTimestamp, orNull(m.description)],
    );
    for (const [key, value] of Object.entries(m.tags)) {
      sql.run('INSERT INTO registered_model_tags (key, value, name) VALUES (?, ?, ?)', [
        key,
        value,
        m.name,
      ]);
    }
  }
  for (const v of input.modelVersions) {
    if (!models.has(v.name)) {
      throw new MlflowDbError(
        `Model version ${v.name} v${v.version}: its registered model is not part of the export.`,
      );
    }
    sql.run(
      'INSERT INTO model_versions (name, version, creation_time, last_updated_time, description, user_id, current_stage, source, run_id, status, status_message, run_link, storage_location) ' +
        'VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      [
        v.name,
        Number(v.version),
        v.creationTimestamp,
        v.lastUpdatedTimestamp,
        orNull(v.description),
        orNull(v.userId),
        v.currentStage,
        v.source,
        orNull(v.runId),
        v.status,
        orNull(v.statusMessage),
        orNull(v.runLink),
        orNull(v.storageLocation),
      ],
    );
    for (const [key, value] of Object.entries(v.tags)) {
      sql.run('INSERT INTO model_version_tags (key, value, name, version) VALUES (?, ?, ?, ?)', [
        key,
        value,
        v.name,
        Number(v.version),
      ]);
    }
  }
  const loggedModels = input.loggedModels ?? [];
  const links = input.loggedModelLinks ?? [];
  if ((loggedModels.length > 0 || links.length > 0) && !hasLoggedModelTables(schema)) {
    throw new MlflowDbError(
      `MLflow ${schema.mlflowVersion}'s mlflow.db has no logged models; ${loggedModels.length} logged model(s) cannot be written (export with the MLflow 3 schema, or leave them out).`,
    );
  }
  const runIds = new Set(input.runs.map((r) => r.info.runId));
  for (const m of loggedModels) {
    if (!experimentIds.has(m.experimentId)) {
      throw new MlflowDbError(
        `Logged model ${m.modelId}: its experiment ${m.experimentId} is not part of the export.`,
      );
    }
    experimentIdValue(m.experimentId, `Logged model ${m.modelId}`);
    for (const p of m.metrics) {
      if (!runIds.has(p.runId)) {
        throw new MlflowDbError(
          `Logged model ${m.modelId}: its metric '${p.key}' was logged by run ${p.runId}, which is not part of the export.`,
        );
      }
    }
  }
  writeLoggedModels(
    sql,
    loggedModels,
    links.filter((l) => runIds.has(l.runId)),
  );

  for (const m of input.registeredModels) {
    for (const [alias, version] of Object.entries(m.aliases)) {
      sql.run('INSERT INTO registered_model_aliases (alias, version, name) VALUES (?, ?, ?)', [
        alias,
        Number(version),
        m.name,
      ]);
    }
  }
}
