/**
 * A client for a real MLflow tracking server's REST API 2.0 (tracking, model registry, and the
 * artifact proxy of `mlflow server --serve-artifacts`). Speaks MLflow's JSON (proto field names,
 * NaN/Infinity as strings) and returns the app's MLflow entities. Every failure is an
 * MlflowRestError carrying MLflow's error code and message as the server sent them.
 */
import type {
  Experiment,
  FileInfo,
  LifecycleStage,
  Metric,
  ModelVersion,
  ModelVersionStage,
  ModelVersionStatus,
  Param,
  RegisteredModel,
  Run,
  RunInfo,
  RunStatus,
  RunTag,
} from '../mlflow/entities.ts';

/** What MLflow's REST API allows in one runs/log-batch call (mlflow/utils/validation.py). */
export const LOG_BATCH_LIMITS = {
  metrics: 1000,
  params: 100,
  tags: 100,
  total: 1000,
  /** The request body cap is 1,000,000 bytes; leave room for the envelope. */
  bodyBytes: 900_000,
} as const;

export class MlflowRestError extends Error {
  override name = 'MlflowRestError';
  constructor(
    /** MLflow's error code (RESOURCE_DOES_NOT_EXIST, ...), or NETWORK_ERROR / HTTP_<status>. */
    readonly errorCode: string,
    /** The server's own message. */
    readonly serverMessage: string,
    readonly httpStatus: number,
    readonly endpoint: string,
  ) {
    super(`${errorCode}: ${serverMessage}`);
  }
}

export interface MlflowRestOptions {
  /** Sent as `Authorization: Bearer <token>` (mlflow server with an auth proxy, Databricks). */
  token?: string;
  fetch?: typeof fetch;
}

type Json = Record<string, unknown>;

// ---------------------------------------------------------------- JSON <-> entities

function num(v: unknown): number {
  if (typeof v === 'number') return v;
  if (v === 'NaN') return NaN;
  if (v === 'Infinity') return Infinity;
  if (v === '-Infinity') return -Infinity;
  const n = Number(v);
  return Number.isNaN(n) ? 0 : n;
}

function optNum(v: unknown): number | null {
  return v === undefined || v === null ? null : num(v);
}

/** Doubles as MLflow's JSON spells them: NaN and the infinities are strings. */
export function jsonDouble(v: number): number | string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return 'Infinity';
  if (v === -Infinity) return '-Infinity';
  return v;
}

function kv(list: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (Array.isArray(list)) {
    for (const t of list as Array<{ key?: string; value?: string }>) {
      if (t.key !== undefined) out[t.key] = t.value ?? '';
    }
  }
  return out;
}

function kvList(rec: Record<string, string>): Array<{ key: string; value: string }> {
  return Object.entries(rec).map(([key, value]) => ({ key, value }));
}

export function experimentFromJson(j: Json): Experiment {
  return {
    experimentId: String(j.experiment_id ?? ''),
    name: String(j.name ?? ''),
    artifactLocation: String(j.artifact_location ?? ''),
    lifecycleStage: (j.lifecycle_stage ?? 'active') as LifecycleStage,
    creationTime: num(j.creation_time ?? 0),
    lastUpdateTime: num(j.last_update_time ?? j.creation_time ?? 0),
    tags: kv(j.tags),
  };
}

export function runInfoFromJson(j: Json): RunInfo {
  return {
    runId: String(j.run_id ?? j.run_uuid ?? ''),
    experimentId: String(j.experiment_id ?? ''),
    runName: String(j.run_name ?? ''),
    userId: String(j.user_id ?? ''),
    status: (j.status ?? 'RUNNING') as RunStatus,
    startTime: num(j.start_time ?? 0),
    endTime: optNum(j.end_time),
    artifactUri: String(j.artifact_uri ?? ''),
    lifecycleStage: (j.lifecycle_stage ?? 'active') as LifecycleStage,
  };
}

function metricFromJson(j: Json): Metric {
  return {
    key: String(j.key ?? ''),
    value: num(j.value),
    timestamp: num(j.timestamp ?? 0),
    step: num(j.step ?? 0),
  };
}

export function runFromJson(j: Json): Run {
  const data = (j.data ?? {}) as Json;
  const metrics: Record<string, Metric> = {};
  for (const m of (data.metrics ?? []) as Json[]) {
    const metric = metricFromJson(m);
    metrics[metric.key] = metric;
  }
  return {
    info: runInfoFromJson((j.info ?? {}) as Json),
    params: kv(data.params),
    metrics,
    tags: kv(data.tags),
  };
}

function aliasesOf(j: Json): Record<string, string> {
  const out: Record<string, string> = {};
  for (const a of (j.aliases ?? []) as Array<{ alias?: string; version?: string }>) {
    if (a.alias !== undefined) out[a.alias] = String(a.version ?? '');
  }
  return out;
}

export interface RemoteModelVersion extends ModelVersion {
  aliases: string[];
  runLink: string;
}

export interface RemoteRegisteredModel extends RegisteredModel {
  latestVersions: RemoteModelVersion[];
}

export function modelVersionFromJson(j: Json): RemoteModelVersion {
  return {
    name: String(j.name ?? ''),
    version: String(j.version ?? ''),
    description: String(j.description ?? ''),
    creationTimestamp: num(j.creation_timestamp ?? 0),
    lastUpdatedTimestamp: num(j.last_updated_timestamp ?? 0),
    currentStage: (j.current_stage ?? 'None') as ModelVersionStage,
    source: String(j.source ?? ''),
    runId: String(j.run_id ?? ''),
    status: (j.status ?? 'READY') as ModelVersionStatus,
    statusMessage: String(j.status_message ?? ''),
    tags: kv(j.tags),
    userId: String(j.user_id ?? ''),
    aliases: ((j.aliases ?? []) as unknown[]).map(String),
    runLink: String(j.run_link ?? ''),
  };
}

export function registeredModelFromJson(j: Json): RemoteRegisteredModel {
  return {
    name: String(j.name ?? ''),
    description: String(j.description ?? ''),
    creationTimestamp: num(j.creation_timestamp ?? 0),
    lastUpdatedTimestamp: num(j.last_updated_timestamp ?? 0),
    tags: kv(j.tags),
    aliases: aliasesOf(j),
    latestVersions: ((j.latest_versions ?? []) as Json[]).map(modelVersionFromJson),
  };
}

// ---------------------------------------------------------------- log-batch splitting

export interface LogBatch {
  metrics: Metric[];
  params: Param[];
  tags: RunTag[];
}

function entitySize(e: { key: string; value: unknown }): number {
  // Key, value and JSON punctuation; strings may grow when escaped, so count UTF-16 units x 2.
  return 2 * (e.key.length + String(e.value).length) + 64;
}

/**
 * Splits metrics, params and tags into log-batch calls within MLflow's limits (1000 metrics,
 * 100 params, 100 tags, 1000 entities and about a megabyte per call), keeping their order.
 */
export function splitLogBatch(input: Partial<LogBatch>): LogBatch[] {
  const out: LogBatch[] = [];
  let cur: LogBatch = { metrics: [], params: [], tags: [] };
  let bytes = 0;
  const flush = () => {
    if (cur.metrics.length || cur.params.length || cur.tags.length) out.push(cur);
    cur = { metrics: [], params: [], tags: [] };
    bytes = 0;
  };
  const add = <K extends keyof LogBatch>(kind: K, item: LogBatch[K][number], cap: number) => {
    const size = entitySize(item);
    const total = cur.metrics.length + cur.params.length + cur.tags.length;
    if (
      cur[kind].length >= cap ||
      total >= LOG_BATCH_LIMITS.total ||
      bytes + size > LOG_BATCH_LIMITS.bodyBytes
    ) {
      flush();
    }
    (cur[kind] as Array<LogBatch[K][number]>).push(item);
    bytes += size;
  };
  // Params and tags first: a run's params are usually few, and MLflow checks them before metrics.
  for (const p of input.params ?? []) add('params', p, LOG_BATCH_LIMITS.params);
  for (const t of input.tags ?? []) add('tags', t, LOG_BATCH_LIMITS.tags);
  for (const m of input.metrics ?? []) add('metrics', m, LOG_BATCH_LIMITS.metrics);
  flush();
  return out;
}

// ---------------------------------------------------------------- the client

export type ViewType = 'ACTIVE_ONLY' | 'DELETED_ONLY' | 'ALL';

export interface Page<T> {
  items: T[];
  nextPageToken: string | null;
}

/** `mlflow-artifacts:/a/b` (or `mlflow-artifacts://host/a/b`) -> `a/b`; null for other schemes. */
export function artifactProxyPath(uri: string): string | null {
  const m = /^mlflow-artifacts:(?:\/\/[^/]*)?\/*(.*)$/.exec(uri);
  return m ? m[1]!.replace(/\/+$/, '') : null;
}

function encodePath(path: string): string {
  return path
    .split('/')
    .filter((p) => p !== '')
    .map(encodeURIComponent)
    .join('/');
}

export class MlflowRestClient {
  readonly baseUrl: string;
  private readonly token: string | undefined;
  private readonly fetchFn: typeof fetch;

  constructor(baseUrl: string, options: MlflowRestOptions = {}) {
    let url: URL;
    try {
      url = new URL(baseUrl);
    } catch {
      throw new MlflowRestError('INVALID_PARAMETER_VALUE', `Not a URL: '${baseUrl}'`, 0, '');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new MlflowRestError(
        'INVALID_PARAMETER_VALUE',
        `A tracking server URL starts with http:// or https:// (got '${baseUrl}')`,
        0,
        '',
      );
    }
    this.baseUrl = url.href.replace(/\/+$/, '');
    this.token = options.token || undefined;
    this.fetchFn = options.fetch ?? ((...args) => globalThis.fetch(...args));
  }

  private headers(json: boolean): Record<string, string> {
    const h: Record<string, string> = {};
    if (json) h['Content-Type'] = 'application/json';
    if (this.token) h.Authorization = `Bearer ${this.token}`;
    return h;
  }

  private async send(
    method: string,
    path: string,
    init: { query?: Record<string, string | number | string[] | undefined>; body?: unknown } = {},
    signal?: AbortSignal,
  ): Promise<Response> {
    let url = `${this.baseUrl}${path}`;
    if (init.query) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(init.query)) {
        if (v === undefined) continue;
        for (const x of Array.isArray(v) ? v : [v]) q.append(k, String(x));
      }
      const s = q.toString();
      if (s) url += `?${s}`;
    }
    const isRaw = init.body instanceof Blob || init.body instanceof Uint8Array;
    let response: Response;
    try {
      response = await this.fetchFn(url, {
        method,
        headers: isRaw
          ? { ...this.headers(false), 'Content-Type': 'application/octet-stream' }
          : this.headers(init.body !== undefined),
        body: isRaw
          ? (init.body as BodyInit)
          : init.body !== undefined
            ? JSON.stringify(init.body)
            : null,
        ...(signal ? { signal } : {}),
      });
    } catch (e) {
      if ((e as Error).name === 'AbortError') throw e;
      throw new MlflowRestError(
        'NETWORK_ERROR',
        `Could not reach ${this.baseUrl} (${(e as Error).message}). Is the server running, and does it allow this page's origin (--cors-allowed-origins)?`,
        0,
        path,
      );
    }
    if (!response.ok) throw await this.errorOf(response, path);
    return response;
  }

  private async errorOf(response: Response, path: string): Promise<MlflowRestError> {
    const text = await response.text().catch(() => '');
    try {
      const j = JSON.parse(text) as { error_code?: string; message?: string };
      if (j.error_code) {
        return new MlflowRestError(j.error_code, j.message ?? '', response.status, path);
      }
    } catch {
      // not JSON: the security middleware answers 403 in plain text
    }
    return new MlflowRestError(
      `HTTP_${response.status}`,
      text.trim().slice(0, 500) || response.statusText || 'request failed',
      response.status,
      path,
    );
  }

  private async call<T = Json>(
    method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
    endpoint: string,
    payload: Json = {},
    signal?: AbortSignal,
  ): Promise<T> {
    const path = `/api/2.0/mlflow/${endpoint}`;
    const r =
      method === 'GET'
        ? await this.send(
            method,
            path,
            { query: payload as Record<string, string | number | string[] | undefined> },
            signal,
          )
        : await this.send(method, path, { body: payload }, signal);
    const text = await r.text();
    return (text ? JSON.parse(text) : {}) as T;
  }

  // ---------------- experiments

  async createExperiment(
    name: string,
    opts: { artifactLocation?: string; tags?: Record<string, string> } = {},
  ): Promise<string> {
    const body: Json = { name };
    if (opts.artifactLocation) body.artifact_location = opts.artifactLocation;
    if (opts.tags) body.tags = kvList(opts.tags);
    const r = await this.call<{ experiment_id: string }>('POST', 'experiments/create', body);
    return String(r.experiment_id);
  }

  async getExperiment(experimentId: string): Promise<Experiment> {
    const r = await this.call<{ experiment: Json }>('GET', 'experiments/get', {
      experiment_id: experimentId,
    });
    return experimentFromJson(r.experiment);
  }

  /** null when the server has no experiment of that name. */
  async getExperimentByName(name: string): Promise<Experiment | null> {
    try {
      const r = await this.call<{ experiment: Json }>('GET', 'experiments/get-by-name', {
        experiment_name: name,
      });
      return experimentFromJson(r.experiment);
    } catch (e) {
      if (e instanceof MlflowRestError && e.errorCode === 'RESOURCE_DOES_NOT_EXIST') return null;
      throw e;
    }
  }

  async searchExperiments(
    opts: {
      maxResults?: number;
      pageToken?: string | null;
      filter?: string;
      viewType?: ViewType;
    } = {},
  ): Promise<Page<Experiment>> {
    const body: Json = { max_results: opts.maxResults ?? 1000 };
    if (opts.pageToken) body.page_token = opts.pageToken;
    if (opts.filter) body.filter = opts.filter;
    if (opts.viewType) body.view_type = opts.viewType;
    const r = await this.call<{ experiments?: Json[]; next_page_token?: string }>(
      'POST',
      'experiments/search',
      body,
    );
    return {
      items: (r.experiments ?? []).map(experimentFromJson),
      nextPageToken: r.next_page_token || null,
    };
  }

  async setExperimentTag(experimentId: string, key: string, value: string): Promise<void> {
    await this.call('POST', 'experiments/set-experiment-tag', {
      experiment_id: experimentId,
      key,
      value,
    });
  }

  // ---------------- runs

  async createRun(opts: {
    experimentId: string;
    runName?: string;
    startTime?: number;
    userId?: string;
    tags?: Record<string, string>;
  }): Promise<Run> {
    const body: Json = { experiment_id: opts.experimentId };
    if (opts.runName) body.run_name = opts.runName;
    if (opts.startTime !== undefined) body.start_time = opts.startTime;
    if (opts.userId) body.user_id = opts.userId;
    if (opts.tags) body.tags = kvList(opts.tags);
    const r = await this.call<{ run: Json }>('POST', 'runs/create', body);
    return runFromJson(r.run);
  }

  async updateRun(
    runId: string,
    opts: { status?: RunStatus; endTime?: number | null; runName?: string },
  ): Promise<RunInfo> {
    const body: Json = { run_id: runId, run_uuid: runId };
    if (opts.status) body.status = opts.status;
    if (opts.endTime !== undefined && opts.endTime !== null) body.end_time = opts.endTime;
    if (opts.runName) body.run_name = opts.runName;
    const r = await this.call<{ run_info: Json }>('POST', 'runs/update', body);
    return runInfoFromJson(r.run_info);
  }

  async getRun(runId: string): Promise<Run> {
    const r = await this.call<{ run: Json }>('GET', 'runs/get', { run_id: runId });
    return runFromJson(r.run);
  }

  async deleteRun(runId: string): Promise<void> {
    await this.call('POST', 'runs/delete', { run_id: runId });
  }

  async searchRuns(opts: {
    experimentIds: string[];
    filter?: string;
    orderBy?: string[];
    maxResults?: number;
    pageToken?: string | null;
    runViewType?: ViewType;
  }): Promise<Page<Run>> {
    const body: Json = {
      experiment_ids: opts.experimentIds,
      max_results: opts.maxResults ?? 1000,
    };
    if (opts.filter) body.filter = opts.filter;
    if (opts.orderBy) body.order_by = opts.orderBy;
    if (opts.pageToken) body.page_token = opts.pageToken;
    if (opts.runViewType) body.run_view_type = opts.runViewType;
    const r = await this.call<{ runs?: Json[]; next_page_token?: string }>(
      'POST',
      'runs/search',
      body,
    );
    return { items: (r.runs ?? []).map(runFromJson), nextPageToken: r.next_page_token || null };
  }

  /** One log-batch call; use splitLogBatch for more than MLflow takes at once. */
  async logBatch(runId: string, batch: Partial<LogBatch>, signal?: AbortSignal): Promise<void> {
    await this.call(
      'POST',
      'runs/log-batch',
      {
        run_id: runId,
        metrics: (batch.metrics ?? []).map((m) => ({
          key: m.key,
          value: jsonDouble(m.value),
          timestamp: m.timestamp,
          step: m.step,
        })),
        params: batch.params ?? [],
        tags: batch.tags ?? [],
      },
      signal,
    );
  }

  async setTag(runId: string, key: string, value: string): Promise<void> {
    await this.call('POST', 'runs/set-tag', { run_id: runId, run_uuid: runId, key, value });
  }

  /** Every point of a metric's history (all pages). */
  async getMetricHistory(runId: string, key: string): Promise<Metric[]> {
    const out: Metric[] = [];
    let pageToken: string | undefined;
    do {
      const r = await this.call<{ metrics?: Json[]; next_page_token?: string }>(
        'GET',
        'metrics/get-history',
        { run_id: runId, metric_key: key, max_results: 25000, page_token: pageToken },
      );
      out.push(...(r.metrics ?? []).map(metricFromJson));
      pageToken = r.next_page_token || undefined;
    } while (pageToken);
    return out;
  }

  /** The direct children of `path` in a run's artifacts (MlflowClient.list_artifacts). */
  async listArtifacts(runId: string, path?: string): Promise<FileInfo[]> {
    const out: FileInfo[] = [];
    let pageToken: string | undefined;
    do {
      const r = await this.call<{
        files?: Array<{ path: string; is_dir?: boolean; file_size?: number | string }>;
        next_page_token?: string;
      }>('GET', 'artifacts/list', { run_id: runId, path, page_token: pageToken });
      for (const f of r.files ?? []) {
        const info: FileInfo = { path: f.path, isDir: Boolean(f.is_dir) };
        if (f.file_size !== undefined) info.fileSize = Number(f.file_size);
        out.push(info);
      }
      pageToken = r.next_page_token || undefined;
    } while (pageToken);
    return out;
  }

  /** Every file under a run's artifacts, recursively, by path. */
  async listAllArtifacts(runId: string, path?: string): Promise<FileInfo[]> {
    const out: FileInfo[] = [];
    for (const f of await this.listArtifacts(runId, path)) {
      if (f.isDir) out.push(...(await this.listAllArtifacts(runId, f.path)));
      else out.push(f);
    }
    return out;
  }

  // ---------------- artifact proxy (/api/2.0/mlflow-artifacts)

  /** Uploads one file to `path` (relative to the server's artifacts destination). */
  async uploadArtifact(path: string, data: Blob | Uint8Array, signal?: AbortSignal): Promise<void> {
    await this.send(
      'PUT',
      `/api/2.0/mlflow-artifacts/artifacts/${encodePath(path)}`,
      { body: data },
      signal,
    );
  }

  async downloadArtifact(path: string, signal?: AbortSignal): Promise<Blob> {
    const r = await this.send(
      'GET',
      `/api/2.0/mlflow-artifacts/artifacts/${encodePath(path)}`,
      {},
      signal,
    );
    return r.blob();
  }

  /**
   * Opens a file on the artifact proxy as a stream of the pieces the network delivers: nothing
   * is buffered here beyond the piece being handed on, so a multi-GB file needs no more memory
   * than its consumer keeps. `size` is the Content-Length when the server sent one. A body that
   * ends early (a dropped connection, or fewer bytes than announced) fails with NETWORK_ERROR
   * naming the file and the bytes received; cancelling `signal` fails with its AbortError.
   */
  async openArtifact(
    path: string,
    signal?: AbortSignal,
  ): Promise<{ size: number | null; chunks: AsyncIterable<Uint8Array> }> {
    const endpoint = `/api/2.0/mlflow-artifacts/artifacts/${encodePath(path)}`;
    const r = await this.send('GET', endpoint, {}, signal);
    const header = r.headers.get('Content-Length');
    const size = header !== null && /^\d+$/.test(header) ? Number(header) : null;
    const body = r.body;
    const baseUrl = this.baseUrl;
    async function* chunks(): AsyncGenerator<Uint8Array> {
      if (!body) return;
      const reader = body.getReader();
      let received = 0;
      const cut = (why: string) =>
        new MlflowRestError(
          'NETWORK_ERROR',
          `The download of '${path}' from ${baseUrl} stopped after ${received}${size !== null ? ` of ${size}` : ''} bytes (${why}).`,
          r.status,
          endpoint,
        );
      try {
        for (;;) {
          let step: ReadableStreamReadResult<Uint8Array>;
          try {
            step = await reader.read();
          } catch (e) {
            if ((e as Error).name === 'AbortError' || signal?.aborted) throw e;
            throw cut((e as Error).message || 'connection lost');
          }
          if (step.done) break;
          received += step.value.byteLength;
          yield step.value;
        }
        if (size !== null && received !== size) throw cut('the connection closed early');
      } finally {
        // Stops the transfer when the consumer gives up early (an error while storing).
        await reader.cancel().catch(() => undefined);
        reader.releaseLock();
      }
    }
    return { size, chunks: chunks() };
  }

  /** Files directly under `path` on the proxy; returned paths are relative to `path`. */
  async listProxyArtifacts(path: string): Promise<FileInfo[]> {
    const r = await this.send('GET', '/api/2.0/mlflow-artifacts/artifacts', {
      query: { path: path || undefined },
    });
    const j = (await r.json()) as {
      files?: Array<{ path: string; is_dir?: boolean; file_size?: number | string }>;
    };
    return (j.files ?? []).map((f) => {
      const info: FileInfo = { path: f.path, isDir: Boolean(f.is_dir) };
      if (f.file_size !== undefined) info.fileSize = Number(f.file_size);
      return info;
    });
  }

  /** Every file under `path` on the proxy, recursively; paths relative to `path`. */
  async listAllProxyArtifacts(path: string, prefix = ''): Promise<FileInfo[]> {
    const out: FileInfo[] = [];
    for (const f of await this.listProxyArtifacts(path)) {
      // The proxy lists basenames.
      const name = f.path.split('/').pop()!;
      const rel = prefix ? `${prefix}/${name}` : name;
      if (f.isDir) out.push(...(await this.listAllProxyArtifacts(`${path}/${name}`, rel)));
      else out.push({ ...f, path: rel });
    }
    return out;
  }

  // ---------------- registered models

  async createRegisteredModel(
    name: string,
    opts: { description?: string; tags?: Record<string, string> } = {},
  ): Promise<RemoteRegisteredModel> {
    const body: Json = { name };
    if (opts.description) body.description = opts.description;
    if (opts.tags) body.tags = kvList(opts.tags);
    const r = await this.call<{ registered_model: Json }>('POST', 'registered-models/create', body);
    return registeredModelFromJson(r.registered_model);
  }

  /** null when the server has no registered model of that name. */
  async getRegisteredModel(name: string): Promise<RemoteRegisteredModel | null> {
    try {
      const r = await this.call<{ registered_model: Json }>('GET', 'registered-models/get', {
        name,
      });
      return registeredModelFromJson(r.registered_model);
    } catch (e) {
      if (e instanceof MlflowRestError && e.errorCode === 'RESOURCE_DOES_NOT_EXIST') return null;
      throw e;
    }
  }

  async searchRegisteredModels(
    opts: { filter?: string; maxResults?: number; pageToken?: string | null } = {},
  ): Promise<Page<RemoteRegisteredModel>> {
    const r = await this.call<{ registered_models?: Json[]; next_page_token?: string }>(
      'GET',
      'registered-models/search',
      {
        filter: opts.filter,
        max_results: opts.maxResults ?? 100,
        page_token: opts.pageToken ?? undefined,
      },
    );
    return {
      items: (r.registered_models ?? []).map(registeredModelFromJson),
      nextPageToken: r.next_page_token || null,
    };
  }

  async updateRegisteredModel(name: string, description: string): Promise<void> {
    await this.call('PATCH', 'registered-models/update', { name, description });
  }

  async setRegisteredModelTag(name: string, key: string, value: string): Promise<void> {
    await this.call('POST', 'registered-models/set-tag', { name, key, value });
  }

  async setRegisteredModelAlias(name: string, alias: string, version: string): Promise<void> {
    await this.call('POST', 'registered-models/alias', { name, alias, version });
  }

  // ---------------- model versions

  async createModelVersion(opts: {
    name: string;
    source: string;
    runId?: string;
    runLink?: string;
    description?: string;
    tags?: Record<string, string>;
  }): Promise<RemoteModelVersion> {
    const body: Json = { name: opts.name, source: opts.source };
    if (opts.runId) body.run_id = opts.runId;
    if (opts.runLink) body.run_link = opts.runLink;
    if (opts.description) body.description = opts.description;
    if (opts.tags) body.tags = kvList(opts.tags);
    const r = await this.call<{ model_version: Json }>('POST', 'model-versions/create', body);
    return modelVersionFromJson(r.model_version);
  }

  async getModelVersion(name: string, version: string): Promise<RemoteModelVersion> {
    const r = await this.call<{ model_version: Json }>('GET', 'model-versions/get', {
      name,
      version,
    });
    return modelVersionFromJson(r.model_version);
  }

  async searchModelVersions(
    opts: { filter?: string; maxResults?: number; pageToken?: string | null } = {},
  ): Promise<Page<RemoteModelVersion>> {
    const r = await this.call<{ model_versions?: Json[]; next_page_token?: string }>(
      'GET',
      'model-versions/search',
      {
        filter: opts.filter,
        max_results: opts.maxResults ?? 1000,
        page_token: opts.pageToken ?? undefined,
      },
    );
    return {
      items: (r.model_versions ?? []).map(modelVersionFromJson),
      nextPageToken: r.next_page_token || null,
    };
  }

  async setModelVersionTag(name: string, version: string, key: string, value: string) {
    await this.call('POST', 'model-versions/set-tag', { name, version, key, value });
  }

  async transitionModelVersionStage(name: string, version: string, stage: ModelVersionStage) {
    await this.call('POST', 'model-versions/transition-stage', {
      name,
      version,
      stage,
      archive_existing_versions: false,
    });
  }

  async updateModelVersion(name: string, version: string, description: string): Promise<void> {
    await this.call('PATCH', 'model-versions/update', { name, version, description });
  }

  async getModelVersionDownloadUri(name: string, version: string): Promise<string> {
    const r = await this.call<{ artifact_uri: string }>('GET', 'model-versions/get-download-uri', {
      name,
      version,
    });
    return r.artifact_uri;
  }

  // ---------------- logged models (MLflow 3)

  /** A logged model's artifact location (`models:/m-...` sources of 3.x model versions). */
  async getLoggedModelArtifactUri(modelId: string): Promise<string> {
    const r = await this.call<{ model?: { info?: { artifact_uri?: string } } }>(
      'GET',
      `logged-models/${encodeURIComponent(modelId)}`,
    );
    return r.model?.info?.artifact_uri ?? '';
  }

  /**
   * Where the artifact proxy holds the files of a `mlflow-artifacts:`, `runs:/` or
   * `models:/m-...` URI, as a proxy path; null when the server does not serve them.
   */
  async resolveProxyPath(uri: string): Promise<string | null> {
    const direct = artifactProxyPath(uri);
    if (direct !== null) return direct;
    const join = (base: string | null, rest: string) =>
      base === null ? null : rest ? `${base}/${rest.replace(/^\/+|\/+$/g, '')}` : base;
    const run = /^runs:\/([^/]+)\/?(.*)$/.exec(uri);
    if (run) {
      const r = await this.getRun(run[1]!);
      return join(artifactProxyPath(r.info.artifactUri), run[2]!);
    }
    const model = /^models:\/(m-[^/]+)\/?(.*)$/.exec(uri);
    if (model) {
      return join(artifactProxyPath(await this.getLoggedModelArtifactUri(model[1]!)), model[2]!);
    }
    return null;
  }

  // ---------------- server

  async health(): Promise<boolean> {
    try {
      const r = await this.fetchFn(`${this.baseUrl}/health`);
      return r.ok;
    } catch {
      return false;
    }
  }
}
