/**
 * The tracking client: MLflow's tracking verbs over the browser store. Every write validates as
 * MLflow does, throws MlflowError with MLflow's error codes, and emits a store change event.
 */
import type { AnyDB } from '../store/db.ts';
import type {
  DatasetInput,
  Experiment,
  FileInfo,
  Metric,
  Param,
  Run,
  RunInfo,
  RunStatus,
  RunTag,
} from '../mlflow/entities.ts';
import { MlflowError } from '../mlflow/errors.ts';
import {
  LIMITS,
  validateBatch,
  validateExperimentName,
  validateExperimentTag,
  validateMaxResults,
  validateMetric,
  validateRunTag,
} from '../mlflow/validation.ts';
import {
  matchesFilter,
  parseFilter,
  parseOrderByList,
  runComparator,
  type Comparison,
  type OrderByClause,
} from '../mlflow/search/index.ts';
import * as repo from '../store/tracking.ts';
import { deleteBlob, readBlob, writeBlob } from '../store/blobs.ts';
import { emitStoreChange } from './events.ts';

export const DEFAULT_EXPERIMENT_ID = '0';
export const DEFAULT_EXPERIMENT_NAME = 'Default';

export type ViewType = 'ACTIVE_ONLY' | 'DELETED_ONLY' | 'ALL';

export interface StartRunOptions {
  experimentId?: string;
  runName?: string;
  tags?: Record<string, string>;
  parentRunId?: string;
  startTime?: number;
  userId?: string;
  /** mlflow.source.name; defaults to "tabflow". */
  sourceName?: string;
}

export interface SearchRunsOptions {
  experimentIds: string[];
  filter?: string;
  orderBy?: string[];
  maxResults?: number;
  pageToken?: string | null;
  runViewType?: ViewType;
}

export interface SearchRunsResult {
  runs: Run[];
  nextPageToken: string | null;
}

export interface LogBatchInput {
  metrics?: Metric[];
  params?: Param[];
  tags?: RunTag[];
}

export type ParamValue = string | number | boolean | null;

const ADJECTIVES = [
  'amazing',
  'bold',
  'brave',
  'bright',
  'calm',
  'clever',
  'crisp',
  'dapper',
  'eager',
  'fearless',
  'gentle',
  'honest',
  'jolly',
  'keen',
  'lively',
  'merry',
  'nimble',
  'polite',
  'quiet',
  'rare',
  'shy',
  'smooth',
  'sunny',
  'tidy',
  'upbeat',
  'vivid',
  'wise',
  'zealous',
];
const NOUNS = [
  'ant',
  'bat',
  'bear',
  'bird',
  'cat',
  'colt',
  'crab',
  'deer',
  'dove',
  'eel',
  'finch',
  'fox',
  'goat',
  'hare',
  'hawk',
  'koi',
  'lark',
  'lynx',
  'mole',
  'newt',
  'owl',
  'panda',
  'ram',
  'seal',
  'slug',
  'swan',
  'toad',
  'wolf',
  'yak',
];

function pick<T>(list: readonly T[]): T {
  return list[Math.floor(Math.random() * list.length)]!;
}

export function randomRunName(): string {
  return `${pick(ADJECTIVES)}-${pick(NOUNS)}-${Math.floor(Math.random() * 1000)}`;
}

function randomHex(bytes: number): string {
  const b = new Uint8Array(bytes);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

/** 32 lowercase hex characters, like uuid4().hex. */
export function newRunId(): string {
  return randomHex(16);
}

/** An 18-digit decimal id, as MLflow's file and SQL stores generate for new experiments. */
export function newExperimentId(): string {
  const b = new Uint8Array(8);
  crypto.getRandomValues(b);
  let n = 0n;
  for (const x of b) n = (n << 8n) | BigInt(x);
  return (100000000000000000n + (n % 900000000000000000n)).toString();
}

/** Python's str() of a param value: MLflow stores every param as a string. */
export function paramToString(v: ParamValue): string {
  if (v === null) return 'None';
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  return String(v);
}

function notFound(msg: string): MlflowError {
  return new MlflowError('RESOURCE_DOES_NOT_EXIST', msg);
}

function invalid(msg: string): MlflowError {
  return new MlflowError('INVALID_PARAMETER_VALUE', msg);
}

/** Artifact paths are relative, '/'-separated and never leave the run's artifact root. */
export function normalizeArtifactPath(path: string): string {
  if (typeof path !== 'string' || path === '')
    throw invalid('Artifact path must be a non-empty string.');
  if (path.includes('\\') || path.includes('\0')) {
    throw invalid(`Invalid artifact path: '${path}'. Use '/' as the separator.`);
  }
  if (path.startsWith('/') || /^[A-Za-z]:/.test(path)) {
    throw invalid(`Invalid artifact path: '${path}'. Artifact paths must be relative.`);
  }
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.some((p) => p === '..')) {
    throw invalid(`Invalid artifact path: '${path}'. Artifact paths must not contain '..'.`);
  }
  if (parts.length === 0) throw invalid(`Invalid artifact path: '${path}'.`);
  return parts.join('/');
}

function encodePageToken(offset: number): string {
  return btoa(JSON.stringify({ offset }));
}

function decodePageToken(token: string | null | undefined): number {
  if (!token) return 0;
  try {
    const v = JSON.parse(atob(token)) as { offset?: unknown };
    if (typeof v.offset === 'number' && Number.isInteger(v.offset) && v.offset >= 0)
      return v.offset;
  } catch {
    // fall through
  }
  throw invalid(`Invalid page token, could not base64-decode: '${token}'`);
}

function viewMatches(stage: string, view: ViewType): boolean {
  return view === 'ALL' || (view === 'ACTIVE_ONLY' ? stage === 'active' : stage === 'deleted');
}

/** See TrackingClient.metricBuffer. */
export class MetricBuffer {
  private pending: Metric[] = [];
  private timer: ReturnType<typeof setTimeout> | null = null;
  private writing: Promise<void> = Promise.resolve();
  private failure: unknown = null;
  private readonly validKeys = new Set<string>();

  constructor(
    private readonly client: TrackingClient,
    readonly runId: string,
    private readonly maxPoints: number,
    private readonly flushMs: number,
  ) {}

  /** Queues one point; throws at once on an invalid key or value, or if an earlier write failed. */
  log(key: string, value: number, options: { step?: number; timestamp?: number } = {}): void {
    if (this.failure) throw this.failure;
    const m: Metric = {
      key,
      value,
      step: options.step ?? 0,
      timestamp: options.timestamp ?? Date.now(),
    };
    if (
      !this.validKeys.has(key) ||
      typeof value !== 'number' ||
      !Number.isSafeInteger(m.step) ||
      !Number.isSafeInteger(m.timestamp)
    ) {
      validateMetric(m.key, m.value, m.timestamp, m.step);
      this.validKeys.add(key);
    }
    this.pending.push(m);
    if (this.pending.length >= this.maxPoints) void this.flush().catch(() => undefined);
    else this.timer ??= setTimeout(() => void this.flush().catch(() => undefined), this.flushMs);
  }

  /** Writes everything queued so far; resolves once it is stored. */
  flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const batch = this.pending;
    this.pending = [];
    if (batch.length > 0) {
      this.writing = this.writing.then(() =>
        this.client.writeValidatedMetrics(this.runId, batch).catch((e: unknown) => {
          this.failure = e;
          throw e;
        }),
      );
    }
    return this.writing;
  }
}

const STATUSES: readonly RunStatus[] = ['RUNNING', 'SCHEDULED', 'FINISHED', 'FAILED', 'KILLED'];

export class TrackingClient {
  constructor(
    readonly db: AnyDB,
    private readonly opts: { userId?: string } = {},
  ) {}

  get userId(): string {
    return this.opts.userId ?? 'browser';
  }

  // ---------------- experiments ----------------

  async createExperiment(
    name: string,
    options: {
      artifactLocation?: string;
      tags?: Record<string, string>;
      experimentId?: string;
    } = {},
  ): Promise<string> {
    validateExperimentName(name);
    for (const [k, v] of Object.entries(options.tags ?? {})) validateExperimentTag(k, v);
    const id = options.experimentId ?? newExperimentId();
    const now = Date.now();
    await repo.addExperiment(this.db, {
      experimentId: id,
      name,
      artifactLocation: options.artifactLocation ?? `mlflow-artifacts:/${id}`,
      lifecycleStage: 'active',
      creationTime: now,
      lastUpdateTime: now,
      tags: { ...(options.tags ?? {}) },
    });
    emitStoreChange({ kind: 'experiment', id });
    return id;
  }

  /** The "Default" experiment (id 0), created on first use as MLflow's stores do. */
  async getOrCreateDefaultExperiment(): Promise<Experiment> {
    const existing = await repo.getExperiment(this.db, DEFAULT_EXPERIMENT_ID);
    if (existing) return existing;
    try {
      await this.createExperiment(DEFAULT_EXPERIMENT_NAME, { experimentId: DEFAULT_EXPERIMENT_ID });
    } catch (e) {
      if (!(e instanceof MlflowError && e.errorCode === 'RESOURCE_ALREADY_EXISTS')) throw e;
    }
    return this.getExperiment(DEFAULT_EXPERIMENT_ID);
  }

  async getExperiment(experimentId: string): Promise<Experiment> {
    const e = await repo.getExperiment(this.db, experimentId);
    if (!e) throw notFound(`No Experiment with id=${experimentId} exists`);
    return e;
  }

  /** null when there is none, as MlflowClient.get_experiment_by_name returns None. */
  async getExperimentByName(name: string): Promise<Experiment | null> {
    return (await repo.getExperimentByName(this.db, name)) ?? null;
  }

  /** Experiments, newest first (MLflow's default order: creation_time DESC, experiment_id ASC). */
  async listExperiments(
    options: { includeDeleted?: boolean; viewType?: ViewType } = {},
  ): Promise<Experiment[]> {
    const view: ViewType = options.viewType ?? (options.includeDeleted ? 'ALL' : 'ACTIVE_ONLY');
    const all = await repo.listExperiments(this.db);
    return all
      .filter((e) => viewMatches(e.lifecycleStage, view))
      .sort((a, b) =>
        b.creationTime !== a.creationTime
          ? b.creationTime - a.creationTime
          : a.experimentId < b.experimentId
            ? -1
            : 1,
      );
  }

  async renameExperiment(experimentId: string, newName: string): Promise<void> {
    validateExperimentName(newName);
    const other = await repo.getExperimentByName(this.db, newName);
    if (other && other.experimentId !== experimentId) {
      throw new MlflowError('RESOURCE_ALREADY_EXISTS', `Experiment '${newName}' already exists.`);
    }
    await repo.updateExperiment(this.db, experimentId, (e) => {
      if (e.lifecycleStage !== 'active') {
        throw invalid(`Cannot rename a non-active experiment.`);
      }
      e.name = newName;
      e.lastUpdateTime = Date.now();
    });
    emitStoreChange({ kind: 'experiment', id: experimentId });
  }

  async deleteExperiment(experimentId: string): Promise<void> {
    if (experimentId === DEFAULT_EXPERIMENT_ID) {
      throw invalid(
        "Cannot delete the default experiment '0'. This is an internally reserved experiment.",
      );
    }
    await repo.updateExperiment(this.db, experimentId, (e) => {
      if (e.lifecycleStage === 'deleted')
        throw invalid(`Could not delete experiment '${experimentId}': it is already deleted.`);
      e.lifecycleStage = 'deleted';
      e.lastUpdateTime = Date.now();
    });
    emitStoreChange({ kind: 'experiment', id: experimentId });
  }

  async restoreExperiment(experimentId: string): Promise<void> {
    await repo.updateExperiment(this.db, experimentId, (e) => {
      if (e.lifecycleStage === 'active') throw invalid(`Cannot restore an active experiment.`);
      e.lifecycleStage = 'active';
      e.lastUpdateTime = Date.now();
    });
    emitStoreChange({ kind: 'experiment', id: experimentId });
  }

  async setExperimentTag(experimentId: string, key: string, value: string): Promise<void> {
    validateExperimentTag(key, value);
    await repo.updateExperiment(this.db, experimentId, (e) => {
      if (e.lifecycleStage !== 'active') {
        throw invalid(
          `The experiment ${experimentId} must be in the 'active' state. Current state is ${e.lifecycleStage}.`,
        );
      }
      e.tags[key] = value;
      e.lastUpdateTime = Date.now();
    });
    emitStoreChange({ kind: 'experiment', id: experimentId });
  }

  async deleteExperimentTag(experimentId: string, key: string): Promise<void> {
    await repo.updateExperiment(this.db, experimentId, (e) => {
      if (!(key in e.tags))
        throw notFound(`No tag with name: ${key} in experiment with id ${experimentId}`);
      delete e.tags[key];
      e.lastUpdateTime = Date.now();
    });
    emitStoreChange({ kind: 'experiment', id: experimentId });
  }

  // ---------------- runs ----------------

  async startRun(options: StartRunOptions = {}): Promise<RunInfo> {
    const experiment = options.experimentId
      ? await this.getExperiment(options.experimentId)
      : await this.getOrCreateDefaultExperiment();
    if (experiment.lifecycleStage !== 'active') {
      throw invalid(
        `The experiment ${experiment.experimentId} must be in the 'active' state. Current state is ${experiment.lifecycleStage}.`,
      );
    }
    const userTags = options.tags ?? {};
    for (const [k, v] of Object.entries(userTags)) validateRunTag(k, v);
    if (options.parentRunId !== undefined) {
      const parent = await repo.getRunRecord(this.db, options.parentRunId);
      if (!parent) throw notFound(`Run '${options.parentRunId}' not found`);
    }
    const runId = newRunId();
    const runName = options.runName ?? userTags['mlflow.runName'] ?? randomRunName();
    validateRunTag('mlflow.runName', runName);
    const userId = options.userId ?? this.userId;
    const tags: Record<string, string> = {
      'mlflow.user': userId,
      'mlflow.source.name': options.sourceName ?? 'tabflow',
      'mlflow.source.type': 'LOCAL',
      ...userTags,
      'mlflow.runName': runName,
    };
    if (options.parentRunId !== undefined) tags['mlflow.parentRunId'] = options.parentRunId;
    const info: RunInfo = {
      runId,
      experimentId: experiment.experimentId,
      runName,
      userId,
      status: 'RUNNING',
      startTime: options.startTime ?? Date.now(),
      endTime: null,
      artifactUri: `${experiment.artifactLocation}/${runId}/artifacts`,
      lifecycleStage: 'active',
    };
    await repo.addRun(this.db, repo.newRunRecord(info, tags));
    emitStoreChange({ kind: 'run', id: runId });
    return info;
  }

  async endRun(runId: string, status: RunStatus = 'FINISHED', endTime?: number): Promise<RunInfo> {
    return this.updateRun(runId, { status, endTime: endTime ?? Date.now() });
  }

  async updateRun(
    runId: string,
    change: { runName?: string; status?: RunStatus; endTime?: number | null },
  ): Promise<RunInfo> {
    if (change.status !== undefined && !STATUSES.includes(change.status)) {
      throw invalid(
        `Invalid run status '${String(change.status)}'. Valid values are ${STATUSES.join(', ')}.`,
      );
    }
    if (change.runName !== undefined) validateRunTag('mlflow.runName', change.runName);
    const rec = await repo.updateRun(this.db, runId, (r) => {
      if (r.lifecycleStage !== 'active') {
        throw invalid(
          `The run ${runId} must be in the 'active' state. Current state is ${r.lifecycleStage}.`,
        );
      }
      if (change.status !== undefined) r.status = change.status;
      if (change.endTime !== undefined) r.endTime = change.endTime;
      if (change.runName !== undefined) {
        r.runName = change.runName;
        r.tags['mlflow.runName'] = change.runName;
      }
    });
    emitStoreChange({ kind: 'run', id: runId });
    return repo.runInfoOf(rec);
  }

  async getRun(runId: string): Promise<Run> {
    const rec = await repo.getRunRecord(this.db, runId);
    if (!rec) throw notFound(`Run '${runId}' not found`);
    return repo.runOf(rec);
  }

  async deleteRun(runId: string): Promise<void> {
    await repo.updateRun(this.db, runId, (r) => {
      r.lifecycleStage = 'deleted';
      r.deletedTime = Date.now();
    });
    emitStoreChange({ kind: 'run', id: runId });
  }

  async restoreRun(runId: string): Promise<void> {
    await repo.updateRun(this.db, runId, (r) => {
      r.lifecycleStage = 'active';
      r.deletedTime = null;
    });
    emitStoreChange({ kind: 'run', id: runId });
  }

  /** The child runs of a run (tag mlflow.parentRunId), in the parent's experiment. */
  async getChildRuns(runId: string): Promise<Run[]> {
    const parent = await this.getRun(runId);
    const ids = await repo.runIdsByKeyValue(
      this.db,
      'tag',
      parent.info.experimentId,
      'mlflow.parentRunId',
      runId,
    );
    return (await repo.getRunRecords(this.db, ids)).map(repo.runOf);
  }

  // ---------------- params, metrics, tags ----------------

  async logBatch(runId: string, batch: LogBatchInput): Promise<void> {
    const metrics = batch.metrics ?? [];
    const params = batch.params ?? [];
    const tags = batch.tags ?? [];
    validateBatch(metrics, params, tags);
    await repo.writeBatch(this.db, runId, { metrics, params, tags });
    emitStoreChange({
      kind: metrics.length > 0 ? 'metric' : params.length > 0 ? 'param' : 'tag',
      id: runId,
    });
  }

  /**
   * A metric logger for training loops: points are validated as they come and written in large
   * transactions (every `maxPoints` points or `flushMs` milliseconds), like MLflow's asynchronous
   * logging. One transaction per point is ~100x slower in IndexedDB.
   */
  metricBuffer(
    runId: string,
    options: { maxPoints?: number; flushMs?: number } = {},
  ): MetricBuffer {
    return new MetricBuffer(this, runId, options.maxPoints ?? 10_000, options.flushMs ?? 250);
  }

  /** @internal Writes points already validated by a MetricBuffer, past log-batch's limit. */
  async writeValidatedMetrics(runId: string, metrics: Metric[]): Promise<void> {
    await repo.writeBatch(this.db, runId, { metrics, params: [], tags: [] });
    emitStoreChange({ kind: 'metric', id: runId });
  }

  async logParam(runId: string, key: string, value: ParamValue): Promise<void> {
    await this.logBatch(runId, { params: [{ key, value: paramToString(value) }] });
  }

  async logParams(runId: string, params: Record<string, ParamValue>): Promise<void> {
    const list = Object.entries(params).map(([key, v]) => ({ key, value: paramToString(v) }));
    for (let i = 0; i < list.length || i === 0; i += LIMITS.batchParams) {
      await this.logBatch(runId, { params: list.slice(i, i + LIMITS.batchParams) });
    }
  }

  async logMetric(
    runId: string,
    key: string,
    value: number,
    options: { step?: number; timestamp?: number } = {},
  ): Promise<void> {
    await this.logBatch(runId, {
      metrics: [
        { key, value, step: options.step ?? 0, timestamp: options.timestamp ?? Date.now() },
      ],
    });
  }

  /** Logs several metrics at one step (mlflow.log_metrics); splits batches at MLflow's limit. */
  async logMetrics(
    runId: string,
    metrics: Record<string, number> | Metric[],
    options: { step?: number; timestamp?: number } = {},
  ): Promise<void> {
    const ts = options.timestamp ?? Date.now();
    const list: Metric[] = Array.isArray(metrics)
      ? metrics
      : Object.entries(metrics).map(([key, value]) => ({
          key,
          value,
          step: options.step ?? 0,
          timestamp: ts,
        }));
    for (let i = 0; i < list.length; i += LIMITS.batchMetrics) {
      await this.logBatch(runId, { metrics: list.slice(i, i + LIMITS.batchMetrics) });
    }
  }

  async setTag(runId: string, key: string, value: string): Promise<void> {
    await this.logBatch(runId, { tags: [{ key, value: String(value) }] });
  }

  async setTags(runId: string, tags: Record<string, string>): Promise<void> {
    const list = Object.entries(tags).map(([key, value]) => ({ key, value: String(value) }));
    for (let i = 0; i < list.length; i += LIMITS.batchTags) {
      await this.logBatch(runId, { tags: list.slice(i, i + LIMITS.batchTags) });
    }
  }

  async deleteTag(runId: string, key: string): Promise<void> {
    await repo.updateRun(this.db, runId, (r) => {
      if (r.lifecycleStage !== 'active') {
        throw invalid(
          `The run ${runId} must be in the 'active' state. Current state is ${r.lifecycleStage}.`,
        );
      }
      if (!(key in r.tags)) throw notFound(`No tag with name: ${key} in run with id ${runId}`);
      delete r.tags[key];
    });
    emitStoreChange({ kind: 'tag', id: runId });
  }

  /** Every logged point of one metric, in (step, timestamp) order. */
  async getMetricHistory(runId: string, key: string): Promise<Metric[]> {
    if (!(await repo.getRunRecord(this.db, runId))) throw notFound(`Run '${runId}' not found`);
    return repo.getMetricHistory(this.db, runId, key);
  }

  /**
   * One metric's history as parallel Float64Arrays (steps, timestamps, values) in (step,
   * timestamp) order: what a chart needs for 100k points without making 100k objects.
   */
  async getMetricSeries(runId: string, key: string): Promise<repo.MetricSeries> {
    if (!(await repo.getRunRecord(this.db, runId))) throw notFound(`Run '${runId}' not found`);
    return repo.getMetricSeries(this.db, runId, key);
  }

  /** getMetricSeries for several runs at once (overlaid charts on the compare page). */
  async getMetricSeriesForRuns(
    runIds: readonly string[],
    key: string,
  ): Promise<Map<string, repo.MetricSeries>> {
    return repo.getMetricSeriesForRuns(this.db, runIds, key);
  }

  /** One metric's history for several runs at once (compare view, overlaid charts). */
  async getMetricHistories(runIds: readonly string[], key: string): Promise<Map<string, Metric[]>> {
    return repo.getMetricHistories(this.db, runIds, key);
  }

  /**
   * The metric, param and tag keys used by an experiment's runs, sorted (the runs table's column
   * chooser). Reads the run records of the experiment in one go.
   */
  async getExperimentKeys(
    experimentId: string,
    options: { runViewType?: ViewType } = {},
  ): Promise<{ metrics: string[]; params: string[]; tags: string[] }> {
    const view = options.runViewType ?? 'ACTIVE_ONLY';
    const metrics = new Set<string>();
    const params = new Set<string>();
    const tags = new Set<string>();
    for (const r of await repo.getExperimentRuns(this.db, experimentId)) {
      if (!viewMatches(r.lifecycleStage, view)) continue;
      for (const k in r.metrics) metrics.add(k);
      for (const k in r.params) params.add(k);
      for (const k in r.tags) tags.add(k);
    }
    const sorted = (s: Set<string>) => [...s].sort();
    return { metrics: sorted(metrics), params: sorted(params), tags: sorted(tags) };
  }

  /** Dataset inputs (mlflow.log_input); a dataset already logged with the same name and digest is replaced. */
  async logInputs(runId: string, inputs: DatasetInput[]): Promise<void> {
    for (const input of inputs) {
      const d = input.dataset;
      if (!d.name || d.name.length > LIMITS.datasetName)
        throw invalid(`Dataset name '${d.name}' is empty or longer than ${LIMITS.datasetName}.`);
      if (!d.digest || d.digest.length > LIMITS.datasetDigest)
        throw invalid(
          `Dataset digest '${d.digest}' is empty or longer than ${LIMITS.datasetDigest}.`,
        );
      if (d.source.length > LIMITS.datasetSource)
        throw invalid(`Dataset source exceeds ${LIMITS.datasetSource} characters.`);
      if ((d.schema?.length ?? 0) > LIMITS.datasetSchema)
        throw invalid(`Dataset schema exceeds ${LIMITS.datasetSchema} characters.`);
      if ((d.profile?.length ?? 0) > LIMITS.datasetProfile)
        throw invalid(`Dataset profile exceeds ${LIMITS.datasetProfile} characters.`);
      for (const [k, v] of Object.entries(input.tags)) {
        if (k.length > LIMITS.inputTagKey || v.length > LIMITS.inputTagValue) {
          throw invalid(
            `Input tag '${k.slice(0, 40)}' exceeds the key (${LIMITS.inputTagKey}) or value (${LIMITS.inputTagValue}) limit.`,
          );
        }
      }
    }
    await repo.updateRun(this.db, runId, (r) => {
      if (r.lifecycleStage !== 'active') {
        throw invalid(
          `The run ${runId} must be in the 'active' state. Current state is ${r.lifecycleStage}.`,
        );
      }
      for (const input of inputs) {
        const i = r.inputs.findIndex(
          (x) => x.dataset.name === input.dataset.name && x.dataset.digest === input.dataset.digest,
        );
        const copy: DatasetInput = { dataset: { ...input.dataset }, tags: { ...input.tags } };
        if (i >= 0) r.inputs[i] = copy;
        else r.inputs.push(copy);
      }
    });
    emitStoreChange({ kind: 'run', id: runId });
  }

  // ---------------- artifacts ----------------

  /** Stores a file at `path` under the run's artifact root (replacing one already there). */
  async logArtifact(
    runId: string,
    path: string,
    data: Blob | Uint8Array | string,
  ): Promise<FileInfo> {
    const rel = normalizeArtifactPath(path);
    const rec = await repo.getRunRecord(this.db, runId);
    if (!rec) throw notFound(`Run '${runId}' not found`);
    if (rec.lifecycleStage !== 'active') {
      throw invalid(
        `The run ${runId} must be in the 'active' state. Current state is ${rec.lifecycleStage}.`,
      );
    }
    const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
    const blobId = `artifact-${runId}-${randomHex(8)}`;
    const stored = await writeBlob(this.db, blobId, bytes, { type: guessMimeType(rel) });
    const old = await repo.putArtifact(this.db, {
      runId,
      path: rel,
      blobId,
      size: stored.size,
      createdAt: Date.now(),
    });
    if (old) await deleteBlob(this.db, old.blobId);
    emitStoreChange({ kind: 'artifact', id: runId });
    return { path: rel, isDir: false, fileSize: stored.size };
  }

  /** Several files under `dir` (mlflow.log_artifacts). Keys are paths relative to `dir`. */
  async logArtifacts(
    runId: string,
    files: Record<string, Blob | Uint8Array | string>,
    dir = '',
  ): Promise<void> {
    for (const [p, data] of Object.entries(files)) {
      await this.logArtifact(runId, dir ? `${dir.replace(/\/+$/, '')}/${p}` : p, data);
    }
  }

  async logText(runId: string, text: string, artifactFile: string): Promise<void> {
    await this.logArtifact(runId, artifactFile, text);
  }

  /** JSON (indent 2, like mlflow.log_dict) unless the file name ends in .yaml/.yml. */
  async logDict(runId: string, dict: unknown, artifactFile: string): Promise<void> {
    let text: string;
    if (/\.ya?ml$/i.test(artifactFile)) {
      const { stringify } = await import('yaml');
      text = stringify(dict, { indent: 2 });
    } else {
      text = JSON.stringify(dict, null, 2);
    }
    await this.logArtifact(runId, artifactFile, text);
  }

  /** An encoded image (PNG/JPEG/...) as given. */
  async logImage(runId: string, image: Blob | Uint8Array, artifactFile: string): Promise<void> {
    if (!/\.(png|jpe?g|gif|webp|bmp|svg)$/i.test(artifactFile)) {
      throw invalid(
        `Invalid image file name '${artifactFile}'. Use an image extension such as .png or .jpg.`,
      );
    }
    await this.logArtifact(runId, artifactFile, image);
  }

  /** The direct children of `dir` (files and folders), like MlflowClient.list_artifacts. */
  async listArtifacts(runId: string, dir?: string): Promise<FileInfo[]> {
    if (!(await repo.getRunRecord(this.db, runId))) throw notFound(`Run '${runId}' not found`);
    const prefix = dir ? `${normalizeArtifactPath(dir)}/` : '';
    const all = await repo.getRunArtifacts(this.db, runId);
    const out = new Map<string, FileInfo>();
    for (const a of all) {
      if (!a.path.startsWith(prefix)) continue;
      const rest = a.path.slice(prefix.length);
      const slash = rest.indexOf('/');
      if (slash < 0) out.set(a.path, { path: a.path, isDir: false, fileSize: a.size });
      else {
        const p = prefix + rest.slice(0, slash);
        if (!out.has(p)) out.set(p, { path: p, isDir: true });
      }
    }
    return [...out.values()].sort((a, b) => (a.path < b.path ? -1 : 1));
  }

  async readArtifact(runId: string, path: string): Promise<Blob> {
    const rec = await repo.getArtifact(this.db, runId, normalizeArtifactPath(path));
    if (!rec) throw notFound(`Artifact '${path}' not found in run '${runId}'`);
    return readBlob(this.db, rec.blobId);
  }

  async readArtifactText(runId: string, path: string): Promise<string> {
    return (await this.readArtifact(runId, path)).text();
  }

  // ---------------- search ----------------

  /**
   * MLflow's search_runs: filter grammar, order_by, view type, pages. Comparisons that an index
   * answers (metric ranges, param/tag equality, run ids) narrow the candidates first; the rest is
   * evaluated on the narrowed runs.
   */
  async searchRuns(options: SearchRunsOptions): Promise<SearchRunsResult> {
    const maxResults = validateMaxResults(options.maxResults);
    const filter = parseFilter(options.filter);
    const orderBy = parseOrderByList(options.orderBy);
    const view = options.runViewType ?? 'ACTIVE_ONLY';
    const offset = decodePageToken(options.pageToken);

    if (filter.length === 0 && options.experimentIds.length === 1) {
      const ordered = await this.orderedIdsFromIndex(options.experimentIds[0]!, orderBy);
      if (ordered) return this.pageOverOrderedIds(ordered, view, offset, maxResults, orderBy);
    }
    const runs: Run[] = [];
    for (const experimentId of options.experimentIds) {
      for (const rec of await this.candidates(experimentId, filter)) {
        if (!viewMatches(rec.lifecycleStage, view)) continue;
        const run = repo.runOf(rec);
        if (matchesFilter(run, filter)) runs.push(run);
      }
    }
    runs.sort(runComparator(orderBy));
    const page = runs.slice(offset, offset + maxResults);
    const next = offset + maxResults < runs.length ? encodePageToken(offset + maxResults) : null;
    return { runs: page, nextPageToken: next };
  }

  /**
   * Run ids in the requested order straight from an index, without reading run records, when the
   * order is the default, start_time, or a single metric. null when an index cannot give it.
   * `rest` (metric order) yields the runs without the metric, read only if a page reaches them.
   */
  private async orderedIdsFromIndex(
    experimentId: string,
    orderBy: OrderByClause[],
  ): Promise<{ ids: string[]; rest?: () => Promise<string[]> } | null> {
    if (orderBy.length > 1) return null;
    const o = orderBy[0];
    if (!o) return { ids: await repo.runIdsNewestFirst(this.db, experimentId) };
    const { type, key } = o.identifier;
    if (type === 'attribute' && key === 'start_time') {
      const ids = await repo.runIdsNewestFirst(this.db, experimentId);
      return { ids: o.ascending ? ids.reverse() : ids };
    }
    if (type !== 'metric') return null;
    const values = await repo.latestMetricValues(this.db, experimentId, key);
    const dir = o.ascending ? 1 : -1;
    values.sort((a, b) => (a.value - b.value) * dir);
    // Equal values are ordered like MLflow: start_time DESC, then run_id ASC.
    const tied = new Set<string>();
    for (let i = 1; i < values.length; i++) {
      if (values[i]!.value === values[i - 1]!.value)
        tied.add(values[i]!.runId).add(values[i - 1]!.runId);
    }
    if (tied.size > 0) {
      const start = new Map(
        (await repo.getRunRecords(this.db, tied)).map((r) => [r.runId, r.startTime]),
      );
      values.sort(
        (a, b) =>
          (a.value - b.value) * dir ||
          start.get(b.runId)! - start.get(a.runId)! ||
          (a.runId < b.runId ? -1 : a.runId > b.runId ? 1 : 0),
      );
    }
    const ids = values.map((v) => v.runId);
    // Runs without the metric (or with NaN, which the index cannot hold) come last, newest first.
    const rest = async () => {
      const have = new Set(ids);
      return (await repo.runIdsNewestFirst(this.db, experimentId)).filter((id) => !have.has(id));
    };
    return { ids, rest };
  }

  /** Reads only the runs of the requested page from ids already in order. */
  private async pageOverOrderedIds(
    ordered: { ids: string[]; rest?: () => Promise<string[]> },
    view: ViewType,
    offset: number,
    maxResults: number,
    orderBy: OrderByClause[],
  ): Promise<SearchRunsResult> {
    const ids = [...ordered.ids];
    let rest = ordered.rest;
    const out: Run[] = [];
    let skipped = 0;
    let more = false;
    const chunk = Math.max(maxResults, 100);
    // `offset` counts runs of the view already returned on earlier pages.
    outer: for (let i = 0; ; i += chunk) {
      if (rest && i + chunk > ids.length) {
        ids.push(...(await rest()));
        rest = undefined;
      }
      if (i >= ids.length) break;
      for (const rec of await repo.getRunRecords(this.db, ids.slice(i, i + chunk))) {
        if (!viewMatches(rec.lifecycleStage, view)) continue;
        if (skipped < offset) {
          skipped++;
          continue;
        }
        if (out.length === maxResults) {
          more = true;
          break outer;
        }
        out.push(repo.runOf(rec));
      }
    }
    // Runs that started in the same millisecond may come from the index in either order.
    out.sort(runComparator(orderBy));
    return { runs: out, nextPageToken: more ? encodePageToken(offset + maxResults) : null };
  }

  private async candidates(experimentId: string, filter: Comparison[]): Promise<repo.RunRecord[]> {
    let ids: Set<string> | null = null;
    const intersect = (found: Iterable<string>) => {
      const next = new Set<string>();
      for (const id of found) if (ids === null || ids.has(id)) next.add(id);
      ids = next;
    };
    for (const c of filter) {
      const { type, key } = c.identifier;
      if (
        type === 'metric' &&
        typeof c.value === 'number' &&
        !Number.isNaN(c.value) &&
        c.comparator !== '!='
      ) {
        const v = c.value;
        const range: repo.NumberRange =
          c.comparator === '='
            ? { lower: v, upper: v }
            : c.comparator === '<'
              ? { upper: v, upperOpen: true }
              : c.comparator === '<='
                ? { upper: v }
                : c.comparator === '>'
                  ? { lower: v, lowerOpen: true }
                  : { lower: v };
        intersect(await repo.runIdsByMetricRange(this.db, experimentId, key, range));
      } else if (
        (type === 'param' || type === 'tag') &&
        c.comparator === '=' &&
        typeof c.value === 'string'
      ) {
        intersect(await repo.runIdsByKeyValue(this.db, type, experimentId, key, c.value));
      } else if (
        type === 'attribute' &&
        key === 'run_id' &&
        (c.comparator === '=' || c.comparator === 'IN')
      ) {
        intersect(Array.isArray(c.value) ? c.value : [String(c.value)]);
      }
      if (ids !== null && (ids as Set<string>).size === 0) return [];
    }
    if (ids === null) return repo.getExperimentRuns(this.db, experimentId);
    const recs = await repo.getRunRecords(this.db, ids as Set<string>);
    return recs.filter((r) => r.experimentId === experimentId);
  }
}

export type { OrderByClause };
export type { MetricSeries } from '../store/tracking.ts';

const MIME: Record<string, string> = {
  txt: 'text/plain',
  log: 'text/plain',
  md: 'text/markdown',
  json: 'application/json',
  yaml: 'application/yaml',
  yml: 'application/yaml',
  csv: 'text/csv',
  html: 'text/html',
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  gif: 'image/gif',
  webp: 'image/webp',
  svg: 'image/svg+xml',
  bmp: 'image/bmp',
};

export function guessMimeType(path: string): string {
  const ext = path.slice(path.lastIndexOf('.') + 1).toLowerCase();
  return MIME[ext] ?? (path.endsWith('MLmodel') ? 'application/yaml' : 'application/octet-stream');
}
