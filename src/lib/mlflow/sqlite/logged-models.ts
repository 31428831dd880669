/**
 * MLflow 3 logged models in MLflow's own database, and the same models as the file store's
 * `<experiment>/models/<model_id>/` folders, which is how the app keeps them (as files imported
 * from `mlruns`, exported again byte for byte). Pure: SQL goes through the runner/executor the
 * caller hands over.
 *
 * Tables (MLflow 3.x; 2.x databases have none): `logged_models`, `logged_model_params`,
 * `logged_model_tags`, `logged_model_metrics`, and the run links in `inputs`: a model a run
 * produced is a RUN_OUTPUT -> MODEL_OUTPUT edge (with the step), a model a run used is a
 * RUN_INPUT -> MODEL_INPUT edge.
 */
import { parse as parseYaml } from 'yaml';
import type { LifecycleStage } from '../entities.ts';
import { parseLoggedModelMeta, type LoggedModelMeta } from '../mlruns/reader.ts';
import { dumpFlatYaml, dumpNestedMap, parsePyFloat, pyFloatRepr } from '../mlruns/pyformat.ts';
import { md5Hex } from '../mlruns/md5.ts';

export type LoggedModelStatus = LoggedModelMeta['status'];

/** LoggedModelStatus.to_int(): the number both stores keep. */
export const LOGGED_MODEL_STATUS_NUMBER: Record<LoggedModelStatus, number> = {
  LOGGED_MODEL_STATUS_UNSPECIFIED: 0,
  LOGGED_MODEL_PENDING: 1,
  LOGGED_MODEL_READY: 2,
  LOGGED_MODEL_UPLOAD_FAILED: 3,
};
const STATUS_BY_NUMBER = Object.fromEntries(
  Object.entries(LOGGED_MODEL_STATUS_NUMBER).map(([k, v]) => [v, k as LoggedModelStatus]),
) as Record<number, LoggedModelStatus>;

/** A metric point logged against a model (from the run `runId`, optionally on a dataset). */
export interface LoggedModelMetric {
  key: string;
  value: number;
  timestamp: number;
  step: number;
  runId: string;
  datasetName: string | null;
  datasetDigest: string | null;
}

/** A logged model as MlflowClient.get_logged_model reports it. */
export interface LoggedModel {
  modelId: string;
  experimentId: string;
  name: string;
  artifactLocation: string;
  creationTimestamp: number;
  lastUpdatedTimestamp: number;
  status: LoggedModelStatus;
  statusMessage: string | null;
  modelType: string | null;
  sourceRunId: string | null;
  lifecycleStage: LifecycleStage;
  tags: Record<string, string>;
  params: Record<string, string>;
  /** Every stored point, in the store's order. */
  metrics: LoggedModelMetric[];
}

/** A run's link to a logged model: a model it produced (output) or one it used (input). */
export interface LoggedModelLink {
  runId: string;
  modelId: string;
  direction: 'output' | 'input';
  step: number;
}

export class LoggedModelFileError extends Error {
  override name = 'LoggedModelFileError';
  constructor(
    readonly file: string,
    detail: string,
  ) {
    super(`${file}: ${detail}`);
  }
}

interface SqlRows {
  rows(sql: string, params?: Array<string | number | null>): Array<Record<string, unknown>>;
}
interface SqlRun {
  run(sql: string, params?: Array<string | number | null>): void;
}

const s = (v: unknown): string => (v === null || v === undefined ? '' : String(v));
const optS = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));
const n = (v: unknown): number => {
  const x = typeof v === 'number' ? v : Number(v);
  return Number.isFinite(x) ? x : 0;
};

/** Reads the logged models and their run links; empty for databases without those tables. */
export function readLoggedModels(
  sql: SqlRows,
  tables: ReadonlySet<string>,
): { loggedModels: LoggedModel[]; links: LoggedModelLink[] } {
  if (!tables.has('logged_models')) return { loggedModels: [], links: [] };
  const byId = new Map<string, LoggedModel>();
  const loggedModels: LoggedModel[] = [];
  for (const r of sql.rows(
    'SELECT *, CAST(experiment_id AS TEXT) AS experiment_id FROM logged_models ORDER BY creation_timestamp_ms, model_id',
  )) {
    const m: LoggedModel = {
      modelId: s(r.model_id),
      experimentId: s(r.experiment_id),
      name: s(r.name),
      artifactLocation: s(r.artifact_location),
      creationTimestamp: n(r.creation_timestamp_ms),
      lastUpdatedTimestamp: n(r.last_updated_timestamp_ms),
      status: STATUS_BY_NUMBER[n(r.status)] ?? 'LOGGED_MODEL_STATUS_UNSPECIFIED',
      statusMessage: optS(r.status_message),
      modelType: optS(r.model_type),
      sourceRunId: optS(r.source_run_id),
      lifecycleStage: s(r.lifecycle_stage) === 'deleted' ? 'deleted' : 'active',
      tags: {},
      params: {},
      metrics: [],
    };
    byId.set(m.modelId, m);
    loggedModels.push(m);
  }
  if (tables.has('logged_model_params')) {
    for (const r of sql.rows('SELECT * FROM logged_model_params ORDER BY rowid')) {
      const m = byId.get(s(r.model_id));
      if (m) m.params[s(r.param_key)] = s(r.param_value);
    }
  }
  if (tables.has('logged_model_tags')) {
    for (const r of sql.rows('SELECT * FROM logged_model_tags ORDER BY rowid')) {
      const m = byId.get(s(r.model_id));
      if (m) m.tags[s(r.tag_key)] = s(r.tag_value);
    }
  }
  if (tables.has('logged_model_metrics')) {
    for (const r of sql.rows('SELECT * FROM logged_model_metrics ORDER BY rowid')) {
      const m = byId.get(s(r.model_id));
      if (!m) continue;
      m.metrics.push({
        key: s(r.metric_name),
        // A NULL value is how the column keeps a NaN.
        value:
          r.metric_value === null || r.metric_value === undefined ? NaN : Number(r.metric_value),
        timestamp: n(r.metric_timestamp_ms),
        step: n(r.metric_step),
        runId: s(r.run_id),
        datasetName: optS(r.dataset_name),
        datasetDigest: optS(r.dataset_digest),
      });
    }
  }
  const links: LoggedModelLink[] = [];
  if (tables.has('inputs')) {
    const hasStep = sql.rows("SELECT name FROM pragma_table_info('inputs') WHERE name = 'step'");
    for (const r of sql.rows(
      `SELECT source_type, source_id, destination_type, destination_id${hasStep.length ? ', step' : ''} FROM inputs ` +
        "WHERE (source_type = 'RUN_OUTPUT' AND destination_type = 'MODEL_OUTPUT') " +
        "OR (source_type = 'RUN_INPUT' AND destination_type = 'MODEL_INPUT') ORDER BY rowid",
    )) {
      links.push({
        runId: s(r.source_id),
        modelId: s(r.destination_id),
        direction: s(r.source_type) === 'RUN_OUTPUT' ? 'output' : 'input',
        step: n(r.step),
      });
    }
  }
  return { loggedModels, links };
}

/** 32 hex digits from a model id and a run id, stable, in uuid4().hex's shape. */
function edgeUuid(a: string, b: string): string {
  return md5Hex(`${a}|${b}`);
}

// MLflow's SQL store keeps a model metric's NaN as 0 (it has no is_nan column there) and clamps
// infinities to the largest double (sqlalchemy_store.sanitize_metric_value).
function sqlMetricValue(v: number): number {
  if (Number.isNaN(v)) return 0;
  if (v === Infinity) return 1.7976931348623157e308;
  if (v === -Infinity) return -1.7976931348623157e308;
  return v;
}

/** Writes logged models and run links into a 3.x schema (the caller checked the tables exist). */
export function writeLoggedModels(
  sql: SqlRun,
  models: readonly LoggedModel[],
  links: readonly LoggedModelLink[],
): void {
  for (const m of models) {
    sql.run(
      'INSERT INTO logged_models (model_id, experiment_id, name, artifact_location, creation_timestamp_ms, last_updated_timestamp_ms, status, lifecycle_stage, model_type, source_run_id, status_message) ' +
        'VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      [
        m.modelId,
        m.experimentId,
        m.name,
        m.artifactLocation,
        m.creationTimestamp,
        m.lastUpdatedTimestamp,
        LOGGED_MODEL_STATUS_NUMBER[m.status],
        m.lifecycleStage,
        m.modelType,
        m.sourceRunId,
        m.statusMessage,
      ],
    );
    for (const [key, value] of Object.entries(m.params)) {
      sql.run(
        'INSERT INTO logged_model_params (model_id, experiment_id, param_key, param_value) VALUES (?, ?, ?, ?)',
        [m.modelId, m.experimentId, key, value],
      );
    }
    for (const [key, value] of Object.entries(m.tags)) {
      sql.run(
        'INSERT INTO logged_model_tags (model_id, experiment_id, tag_key, tag_value) VALUES (?, ?, ?, ?)',
        [m.modelId, m.experimentId, key, value],
      );
    }
    for (const p of m.metrics) {
      // The primary key leaves out the value: a repeated (key, timestamp, step, run) keeps the first.
      sql.run(
        'INSERT OR IGNORE INTO logged_model_metrics (model_id, metric_name, metric_timestamp_ms, metric_step, metric_value, experiment_id, run_id, dataset_uuid, dataset_name, dataset_digest) ' +
          'VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)',
        [
          m.modelId,
          p.key,
          p.timestamp,
          p.step,
          sqlMetricValue(p.value),
          m.experimentId,
          p.runId,
          p.datasetName,
          p.datasetDigest,
        ],
      );
    }
  }
  for (const l of links) {
    const output = l.direction === 'output';
    sql.run(
      'INSERT OR IGNORE INTO inputs (input_uuid, source_type, source_id, destination_type, destination_id, step) VALUES (?, ?, ?, ?, ?, ?)',
      [
        edgeUuid(l.modelId, l.runId),
        output ? 'RUN_OUTPUT' : 'RUN_INPUT',
        l.runId,
        output ? 'MODEL_OUTPUT' : 'MODEL_INPUT',
        l.modelId,
        l.step,
      ],
    );
  }
}

// ---------------------------------------------------------------- file-store form

const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: true });

function safeKeyPath(what: string, key: string): string {
  // File-store keys with '/' are nested folders; anything that is not a clean relative path
  // could not have come from MLflow and must not become one.
  if (
    key === '' ||
    key.startsWith('/') ||
    key.endsWith('/') ||
    key.split('/').some((p) => p === '' || p === '.' || p === '..')
  ) {
    throw new LoggedModelFileError(what, `key '${key}' cannot be a file-store path`);
  }
  return key;
}

/**
 * The files of a logged model's folder as MLflow's file store writes them, by path relative to
 * the experiment folder: `models/<id>/meta.yaml`, `params/<key>`, `tags/<key>`, `metrics/<key>`.
 */
export function loggedModelFiles(m: LoggedModel): Map<string, Uint8Array> {
  const base = `models/${m.modelId}`;
  const out = new Map<string, Uint8Array>();
  out.set(
    `${base}/meta.yaml`,
    enc.encode(
      dumpFlatYaml({
        artifact_location: m.artifactLocation,
        creation_timestamp: m.creationTimestamp,
        experiment_id: m.experimentId,
        last_updated_timestamp: m.lastUpdatedTimestamp,
        lifecycle_stage: m.lifecycleStage,
        model_id: m.modelId,
        model_type: m.modelType,
        name: m.name,
        source_run_id: m.sourceRunId,
        status: LOGGED_MODEL_STATUS_NUMBER[m.status],
        status_message: m.statusMessage,
      }),
    ),
  );
  for (const [k, v] of Object.entries(m.params))
    out.set(`${base}/params/${safeKeyPath(`${base}/params`, k)}`, enc.encode(v));
  for (const [k, v] of Object.entries(m.tags))
    out.set(`${base}/tags/${safeKeyPath(`${base}/tags`, k)}`, enc.encode(v));
  const lines = new Map<string, string>();
  for (const p of m.metrics) {
    const ds =
      p.datasetName !== null && p.datasetDigest !== null
        ? ` ${p.datasetName} ${p.datasetDigest}`
        : '';
    const line = `${p.timestamp} ${pyFloatRepr(p.value)} ${p.step} ${p.runId}${ds}\n`;
    lines.set(p.key, (lines.get(p.key) ?? '') + line);
  }
  for (const [k, text] of lines)
    out.set(`${base}/metrics/${safeKeyPath(`${base}/metrics`, k)}`, enc.encode(text));
  return out;
}

/** The run-folder file that records a link, by path relative to the experiment folder. */
export function loggedModelLinkFile(l: LoggedModelLink): [string, Uint8Array] {
  if (l.direction === 'output') {
    // Quirk reproduced: the file store writes the model id as destination_id too.
    const text =
      dumpFlatYaml({
        destination_id: l.modelId,
        destination_type: 'MODEL_OUTPUT',
        source_id: l.modelId,
        source_type: 'RUN_OUTPUT',
        step: l.step,
      }) + dumpNestedMap('tags', {});
    return [`${l.runId}/outputs/${l.modelId}/meta.yaml`, enc.encode(text)];
  }
  const text =
    dumpFlatYaml({
      destination_id: l.modelId,
      destination_type: 'RUN',
      source_id: l.modelId,
      source_type: 'MODEL',
    }) + dumpNestedMap('tags', {});
  return [`${l.runId}/inputs/${md5Hex(l.modelId + l.runId)}/meta.yaml`, enc.encode(text)];
}

function yamlMap(file: string, bytes: Uint8Array): Record<string, unknown> {
  let v: unknown;
  try {
    v = parseYaml(dec.decode(bytes), { maxAliasCount: 100 });
  } catch (e) {
    throw new LoggedModelFileError(file, `is not readable YAML (${(e as Error).message})`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v))
    throw new LoggedModelFileError(file, 'expected a mapping');
  return v as Record<string, unknown>;
}

function metricLines(file: string, key: string, bytes: Uint8Array): LoggedModelMetric[] {
  const out: LoggedModelMetric[] = [];
  const lines = dec.decode(bytes).split('\n');
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim();
    if (!line) continue;
    const parts = line.split(' ');
    const value = parts.length === 4 || parts.length === 6 ? parsePyFloat(parts[1]!) : undefined;
    const ts = Number(parts[0]);
    const step = Number(parts[2]);
    if (value === undefined || !Number.isInteger(ts) || !Number.isInteger(step)) {
      throw new LoggedModelFileError(
        `${file}:${i + 1}`,
        'expected "<timestamp> <value> <step> <run_id>[ <dataset_name> <dataset_digest>]"',
      );
    }
    out.push({
      key,
      value,
      timestamp: ts,
      step,
      runId: parts[3]!,
      datasetName: parts.length === 6 ? parts[4]! : null,
      datasetDigest: parts.length === 6 ? parts[5]! : null,
    });
  }
  return out;
}

/**
 * Rebuilds logged models and run links from file-store files (paths relative to the experiment
 * folder; other files are skipped). A model folder without meta.yaml is skipped too: the file
 * store cannot read it either.
 */
export function loggedModelsFromFiles(
  experimentId: string,
  files: ReadonlyMap<string, Uint8Array>,
): { loggedModels: LoggedModel[]; links: LoggedModelLink[] } {
  const parts = new Map<string, Map<string, Uint8Array>>();
  const links: LoggedModelLink[] = [];
  for (const [rel, bytes] of files) {
    let m = /^models\/(m-[0-9a-zA-Z]+)\/(.+)$/.exec(rel);
    if (m) {
      let p = parts.get(m[1]!);
      if (!p) parts.set(m[1]!, (p = new Map()));
      p.set(m[2]!, bytes);
      continue;
    }
    m = /^([0-9a-f]{32})\/(outputs|inputs)\/[^/]+\/meta\.yaml$/.exec(rel);
    if (!m) continue;
    const file = `${experimentId}/${rel}`;
    const y = yamlMap(file, bytes);
    if (m[2] === 'outputs' && y.destination_type === 'MODEL_OUTPUT') {
      links.push({
        runId: m[1]!,
        modelId: s(y.source_id),
        direction: 'output',
        step: n(y.step),
      });
    } else if (m[2] === 'inputs' && y.source_type === 'MODEL') {
      links.push({ runId: m[1]!, modelId: s(y.source_id), direction: 'input', step: 0 });
    }
  }
  const loggedModels: LoggedModel[] = [];
  for (const [id, p] of parts) {
    const metaBytes = p.get('meta.yaml');
    if (!metaBytes) continue;
    const base = `${experimentId}/models/${id}`;
    const meta = parseLoggedModelMeta(`${base}/meta.yaml`, metaBytes);
    const model: LoggedModel = {
      modelId: meta.modelId,
      experimentId: meta.experimentId || experimentId,
      name: meta.name,
      artifactLocation: meta.artifactLocation,
      creationTimestamp: meta.creationTimestamp ?? 0,
      lastUpdatedTimestamp: meta.lastUpdatedTimestamp ?? meta.creationTimestamp ?? 0,
      status: meta.status,
      statusMessage: meta.statusMessage,
      modelType: meta.modelType,
      sourceRunId: meta.sourceRunId,
      lifecycleStage: meta.lifecycleStage === 'deleted' ? 'deleted' : 'active',
      tags: {},
      params: {},
      metrics: [],
    };
    for (const [sub, bytes] of [...p].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      const k = /^(params|tags|metrics)\/(.+)$/.exec(sub);
      if (!k) continue;
      const file = `${base}/${sub}`;
      let text: string;
      try {
        text = dec.decode(bytes);
      } catch {
        throw new LoggedModelFileError(file, 'is not valid UTF-8 text');
      }
      if (k[1] === 'params') model.params[k[2]!] = text;
      else if (k[1] === 'tags') model.tags[k[2]!] = text;
      else model.metrics.push(...metricLines(file, k[2]!, bytes));
    }
    loggedModels.push(model);
  }
  loggedModels.sort(
    (a, b) => a.creationTimestamp - b.creationTimestamp || (a.modelId < b.modelId ? -1 : 1),
  );
  return { loggedModels, links };
}
