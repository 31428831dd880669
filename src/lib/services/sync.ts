/**
 * Sync with a real MLflow tracking server: push runs, experiments and model versions to it, and
 * browse it and pull runs and model versions back.
 *
 * - Push is idempotent and resumable. The remote run id is remembered on the local run as the tag
 *   `tabflow.remote.<server>.run_id` (and the remote run carries `tabflow.source_run_id`, so it is
 *   found again even without the local tag). Each push compares with what the server already
 *   has: params and tags that are there, metric points already logged (by step, timestamp and
 *   value) and artifacts of the same size are not sent again. Interrupted pushes continue where
 *   they stopped; pushing twice creates nothing new.
 * - Metrics, params and tags go in runs/log-batch calls within MLflow's limits; artifacts through
 *   the artifact proxy (`mlflow server --serve-artifacts`).
 * - A model version goes to the server with its files (uploaded through the proxy, or the pushed
 *   run's artifacts when it was registered from a run), tags, description, stage and aliases;
 *   the local version remembers the remote version number in `tabflow.remote.<server>.version`.
 * - Servers (URL and an optional token) are kept in this browser's localStorage only.
 */
import type { AnyDB } from '../store/db.ts';
import type { Experiment, Metric, Run } from '../mlflow/entities.ts';
import { MlflowError } from '../mlflow/errors.ts';
import * as repo from '../store/tracking.ts';
import { getModelVersionRecord } from '../store/registry.ts';
import { listModelFiles } from '../store/model-files.ts';
import { deleteBlob, readBlob, writeBlob, type BlobFileRecord } from '../store/blobs.ts';
import { validateExperimentName, validateExperimentTag } from '../mlflow/validation.ts';
import { checkEntryPath, type ArchiveEntry, type ArchiveSource } from '../archive/index.ts';
import {
  MlflowRestClient,
  MlflowRestError,
  artifactProxyPath,
  splitLogBatch,
  type RemoteModelVersion,
  type RemoteRegisteredModel,
  type MlflowRestOptions,
} from '../remote/mlflow-rest.ts';
import { TrackingClient, guessMimeType, newExperimentId } from './tracking.ts';
import { RegistryClient } from './registry.ts';
import { checkModelSource, registerCheckedModel } from './model-import.ts';
import { emitStoreChange } from './events.ts';

export { MlflowRestClient, MlflowRestError };

// ---------------------------------------------------------------- remote servers (local only)

export interface RemoteServer {
  id: string;
  /** Shown in menus; defaults to the URL's host. */
  name: string;
  url: string;
  /** Sent as a bearer token; kept in this browser only, never exported or pushed. */
  token?: string;
}

const SERVERS_KEY = 'tabflow.remoteServers';
const memoryServers = new Map<string, string>();

function storage(): Pick<Storage, 'getItem' | 'setItem'> {
  try {
    if (typeof localStorage !== 'undefined') return localStorage;
  } catch {
    // localStorage can throw in sandboxed frames
  }
  return {
    getItem: (k) => memoryServers.get(k) ?? null,
    setItem: (k, v) => void memoryServers.set(k, v),
  };
}

export function listRemoteServers(): RemoteServer[] {
  try {
    const list = JSON.parse(storage().getItem(SERVERS_KEY) ?? '[]') as unknown;
    return Array.isArray(list)
      ? (list as RemoteServer[]).filter((s) => typeof s?.url === 'string')
      : [];
  } catch {
    return [];
  }
}

/** Checks the URL, then adds the server or replaces the one with the same id. */
export function saveRemoteServer(input: {
  id?: string;
  name?: string;
  url: string;
  token?: string;
}): RemoteServer {
  const url = new MlflowRestClient(input.url.trim()).baseUrl;
  const server: RemoteServer = {
    id: input.id ?? crypto.randomUUID(),
    name: input.name?.trim() || new URL(url).host,
    url,
  };
  if (input.token) server.token = input.token;
  const list = listRemoteServers().filter((s) => s.id !== server.id);
  list.push(server);
  storage().setItem(SERVERS_KEY, JSON.stringify(list));
  return server;
}

export function removeRemoteServer(id: string): void {
  storage().setItem(SERVERS_KEY, JSON.stringify(listRemoteServers().filter((s) => s.id !== id)));
}

/** The part of a `tabflow.remote.<key>.*` tag that names a server: its host and port. */
export function remoteKey(url: string): string {
  const u = new URL(url);
  const port = u.port || (u.protocol === 'https:' ? '443' : '80');
  const path = u.pathname.replace(/\/+$/, '');
  return `${u.hostname}_${port}${path}`.replace(/[^\w.-]/g, '_');
}

export const SOURCE_RUN_TAG = 'tabflow.source_run_id';
export const SOURCE_VERSION_TAG = 'tabflow.source_model_version';
const REMOTE_TAG_PREFIX = 'tabflow.remote.';
const PARENT_TAG = 'mlflow.parentRunId';

export function remoteRunTag(url: string): string {
  return `${REMOTE_TAG_PREFIX}${remoteKey(url)}.run_id`;
}

export function remoteVersionTag(url: string): string {
  return `${REMOTE_TAG_PREFIX}${remoteKey(url)}.version`;
}

/** Tags that describe this browser's sync state and never go to a server. */
function pushable(tags: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(tags).filter(([k]) => !k.startsWith(REMOTE_TAG_PREFIX)));
}

// ---------------------------------------------------------------- progress

export interface SyncProgress {
  phase: 'experiment' | 'run' | 'metrics' | 'artifacts' | 'model' | 'files' | 'done';
  /** The local run (or `name/version`) being worked on. */
  subject: string;
  done: number;
  total: number;
  message: string;
}

export interface SyncOptions {
  onProgress?: (p: SyncProgress) => void;
  signal?: AbortSignal;
}

export interface PullOptions extends SyncOptions {
  /** Chunk size of the pulled files in the blob store (default the store's, 64 MiB). */
  chunkSize?: number;
}

/**
 * Streams one file from the server's artifact proxy into the chunked blob store: the response
 * body's pieces are re-cut into chunks and each chunk is written (in its own transaction) before
 * more is read, so memory stays within one chunk plus the piece in flight, whatever the file's
 * size. A failure (a dropped connection, a short body, the quota, a cancel) deletes what was
 * written of the file and rethrows; a dropped connection says which file and how many bytes
 * had arrived.
 */
export async function downloadArtifactToBlob(
  db: AnyDB,
  rest: MlflowRestClient,
  proxyPath: string,
  blobId: string,
  options: {
    type?: string;
    chunkSize?: number;
    signal?: AbortSignal;
    /** Bytes received so far, as they arrive. */
    onBytes?: (received: number) => void;
  } = {},
): Promise<BlobFileRecord> {
  const { size, chunks } = await rest.openArtifact(proxyPath, options.signal);
  let received = 0;
  async function* counted(): AsyncGenerator<Uint8Array> {
    for await (const piece of chunks) {
      received += piece.byteLength;
      options.onBytes?.(received);
      yield piece;
    }
  }
  return writeBlob(db, blobId, counted(), {
    chunksPerTransaction: 1,
    ...(options.type ? { type: options.type } : {}),
    ...(options.chunkSize ? { chunkSize: options.chunkSize } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
    ...(size !== null ? { expectedSize: size } : {}),
  });
}

export interface PushRunResult {
  runId: string;
  remoteRunId: string;
  remoteExperimentId: string;
  /** false when the server already had the run (a repeated or resumed push). */
  created: boolean;
  paramsSent: number;
  tagsSent: number;
  metricPointsSent: number;
  artifactsSent: number;
}

export interface PushModelVersionResult {
  name: string;
  version: string;
  remoteVersion: string;
  created: boolean;
  filesSent: number;
}

export interface PullRunResult {
  runId: string;
  experimentId: string;
  /** false when the run was already here (nothing was written). */
  created: boolean;
  metricPoints: number;
  artifacts: number;
}

const MAX_DOUBLE = 1.7976931348623157e308;

/** A metric point's identity as MLflow's SQL store keeps it (infinities clamped). */
function pointKey(m: Metric): string {
  const v = m.value === Infinity ? MAX_DOUBLE : m.value === -Infinity ? -MAX_DOUBLE : m.value;
  return `${m.step}|${m.timestamp}|${Number.isNaN(v) ? 'NaN' : v}`;
}

function latestOf(points: Metric[]): Metric | undefined {
  let best: Metric | undefined;
  for (const p of points) if (repo.isNewer(p, best)) best = p;
  return best;
}

/** Files of a pulled model, downloaded only when read. */
const PULL_LIMITS = { maxFiles: 10_000 };

export class SyncClient {
  readonly rest: MlflowRestClient;
  readonly tracking: TrackingClient;
  readonly registry: RegistryClient;
  private readonly runTag: string;
  private readonly versionTag: string;

  constructor(
    readonly db: AnyDB,
    readonly serverUrl: string,
    options: MlflowRestOptions = {},
  ) {
    this.rest = new MlflowRestClient(serverUrl, options);
    this.tracking = new TrackingClient(db);
    this.registry = new RegistryClient(db);
    this.runTag = remoteRunTag(this.rest.baseUrl);
    this.versionTag = remoteVersionTag(this.rest.baseUrl);
  }

  // ---------------- push

  /** The server's experiment of the same name, created (with the local tags) when missing. */
  private async remoteExperimentFor(experimentId: string): Promise<string> {
    const local = await this.tracking.getExperiment(experimentId);
    const tags = pushable(local.tags);
    const found = await this.rest.getExperimentByName(local.name);
    if (!found) return this.rest.createExperiment(local.name, { tags });
    if (found.lifecycleStage !== 'active') {
      throw new MlflowRestError(
        'INVALID_STATE',
        `Experiment '${local.name}' is deleted on ${this.rest.baseUrl}; restore it there first.`,
        0,
        'experiments/get-by-name',
      );
    }
    for (const [k, v] of Object.entries(tags)) {
      if (found.tags[k] !== v) await this.rest.setExperimentTag(found.experimentId, k, v);
    }
    return found.experimentId;
  }

  /** The remote run this local run was pushed to before, if the server still has it. */
  private async findRemoteRun(local: Run, remoteExperimentId: string): Promise<Run | null> {
    const remembered = local.tags[this.runTag];
    if (remembered) {
      try {
        const r = await this.rest.getRun(remembered);
        if (r.info.lifecycleStage === 'active') return r;
      } catch (e) {
        if (!(e instanceof MlflowRestError && e.errorCode === 'RESOURCE_DOES_NOT_EXIST')) throw e;
      }
    }
    const page = await this.rest.searchRuns({
      experimentIds: [remoteExperimentId],
      filter: `tags.\`${SOURCE_RUN_TAG}\` = '${local.info.runId}'`,
      maxResults: 1,
    });
    return page.items[0] ?? null;
  }

  /** Pushes one run (params, tags, full metric histories, artifacts, status). */
  async pushRun(runId: string, options: SyncOptions = {}): Promise<PushRunResult> {
    const { signal } = options;
    const progress = (p: Omit<SyncProgress, 'subject'>) =>
      options.onProgress?.({ subject: runId, ...p });
    const local = await this.tracking.getRun(runId);
    progress({ phase: 'experiment', done: 0, total: 1, message: 'Finding the experiment' });
    const remoteExperimentId = await this.remoteExperimentFor(local.info.experimentId);
    signal?.throwIfAborted();

    // The parent must be known on the server for the nesting to survive.
    const tags = pushable(local.tags);
    const parent = tags[PARENT_TAG];
    if (parent) {
      const parentRun = await this.tracking.getRun(parent).catch(() => null);
      const remoteParent = parentRun?.tags[this.runTag];
      if (remoteParent) tags[PARENT_TAG] = remoteParent;
    }
    tags[SOURCE_RUN_TAG] = runId;

    let remote = await this.findRemoteRun(local, remoteExperimentId);
    const created = !remote;
    if (!remote) {
      progress({ phase: 'run', done: 0, total: 1, message: 'Creating the run' });
      remote = await this.rest.createRun({
        experimentId: remoteExperimentId,
        runName: local.info.runName,
        startTime: local.info.startTime,
        userId: local.info.userId,
        tags: { [SOURCE_RUN_TAG]: runId },
      });
    }
    const remoteRunId = remote.info.runId;
    if (local.tags[this.runTag] !== remoteRunId && local.info.lifecycleStage === 'active') {
      // Remembered before the data goes, so that an interrupted push resumes on the same run.
      await this.tracking.setTag(runId, this.runTag, remoteRunId);
    }

    // Params and tags the server does not have yet (a changed param is MLflow's error to give).
    const params = Object.entries(local.params)
      .filter(([k, v]) => remote.params[k] !== v)
      .map(([key, value]) => ({ key, value }));
    const tagList = Object.entries(tags)
      .filter(([k, v]) => remote.tags[k] !== v)
      .map(([key, value]) => ({ key, value }));

    // Metric points the server does not have yet, as a multiset (a point may repeat).
    const history = await repo.getRunHistoriesInLogOrder(this.db, runId);
    const metrics: Metric[] = [];
    for (const [key, points] of history) {
      const have = new Map<string, number>();
      if (key in remote.metrics) {
        for (const p of await this.rest.getMetricHistory(remoteRunId, key)) {
          const k = pointKey(p);
          have.set(k, (have.get(k) ?? 0) + 1);
        }
      }
      for (const p of points) {
        const k = pointKey(p);
        const n = have.get(k) ?? 0;
        if (n > 0) have.set(k, n - 1);
        else metrics.push(p);
      }
    }
    const batches = splitLogBatch({ params, tags: tagList, metrics });
    let sent = 0;
    const total = params.length + tagList.length + metrics.length;
    progress({ phase: 'metrics', done: 0, total, message: 'Sending params, tags and metrics' });
    for (const b of batches) {
      signal?.throwIfAborted();
      await this.rest.logBatch(remoteRunId, b, signal);
      sent += b.params.length + b.tags.length + b.metrics.length;
      progress({
        phase: 'metrics',
        done: sent,
        total,
        message: 'Sending params, tags and metrics',
      });
    }

    // Artifacts the server does not have (or has with another size).
    const artifacts = await repo.getRunArtifacts(this.db, runId);
    let artifactsSent = 0;
    if (artifacts.length) {
      const base = artifactProxyPath(remote.info.artifactUri);
      if (base === null) {
        throw new MlflowRestError(
          'NOT_IMPLEMENTED',
          `The server keeps this run's artifacts at '${remote.info.artifactUri}', which a browser cannot write to. Start it with --serve-artifacts (the default) and an experiment whose artifact location is mlflow-artifacts:/...`,
          0,
          'artifacts',
        );
      }
      const there = new Map(
        (await this.rest.listAllArtifacts(remoteRunId)).map((f) => [f.path, f.fileSize]),
      );
      const todo = artifacts.filter((a) => there.get(a.path) !== a.size);
      const bytesTotal = todo.reduce((n, a) => n + a.size, 0);
      let bytes = 0;
      for (const a of todo) {
        signal?.throwIfAborted();
        progress({ phase: 'artifacts', done: bytes, total: bytesTotal, message: a.path });
        await this.rest.uploadArtifact(
          `${base}/${a.path}`,
          await readBlob(this.db, a.blobId),
          signal,
        );
        bytes += a.size;
        artifactsSent++;
      }
      progress({ phase: 'artifacts', done: bytes, total: bytesTotal, message: 'Artifacts sent' });
    }

    // Status, end time and name last: a FINISHED run on the server means everything arrived.
    const i = local.info;
    if (
      remote.info.status !== i.status ||
      remote.info.endTime !== i.endTime ||
      remote.info.runName !== i.runName
    ) {
      await this.rest.updateRun(remoteRunId, {
        status: i.status,
        endTime: i.endTime,
        runName: i.runName,
      });
    }
    if (i.lifecycleStage === 'deleted' && remote.info.lifecycleStage === 'active') {
      await this.rest.deleteRun(remoteRunId);
    }
    progress({ phase: 'done', done: 1, total: 1, message: `Pushed to ${remoteRunId}` });
    return {
      runId,
      remoteRunId,
      remoteExperimentId,
      created,
      paramsSent: params.length,
      tagsSent: tagList.length,
      metricPointsSent: metrics.length,
      artifactsSent,
    };
  }

  /** Pushes every active run of an experiment, parents before their children. */
  async pushExperiment(
    experimentId: string,
    options: SyncOptions = {},
  ): Promise<{ remoteExperimentId: string; runs: PushRunResult[] }> {
    const remoteExperimentId = await this.remoteExperimentFor(experimentId);
    const records = (await repo.getExperimentRuns(this.db, experimentId)).filter(
      (r) => r.lifecycleStage === 'active',
    );
    const ids = new Set(records.map((r) => r.runId));
    const depth = (r: repo.RunRecord, seen = new Set<string>()): number => {
      const p = r.tags[PARENT_TAG];
      if (!p || !ids.has(p) || seen.has(p)) return 0;
      seen.add(p);
      return (
        1 +
        depth(
          records.find((x) => x.runId === p)!,
          seen,
        )
      );
    };
    const ordered = [...records].sort(
      (a, b) => depth(a) - depth(b) || a.startTime - b.startTime || (a.runId < b.runId ? -1 : 1),
    );
    const runs: PushRunResult[] = [];
    for (const [n, r] of ordered.entries()) {
      options.signal?.throwIfAborted();
      runs.push(
        await this.pushRun(r.runId, {
          ...options,
          onProgress: (p) =>
            options.onProgress?.({
              ...p,
              message: `Run ${n + 1} of ${ordered.length}: ${p.message}`,
            }),
        }),
      );
    }
    return { remoteExperimentId, runs };
  }

  private async remoteModelFor(name: string): Promise<RemoteRegisteredModel> {
    const local = await this.registry.getRegisteredModel(name);
    const tags = pushable(local.tags);
    let remote = await this.rest.getRegisteredModel(name);
    if (!remote) {
      const opts: { description?: string; tags?: Record<string, string> } = { tags };
      if (local.description) opts.description = local.description;
      return this.rest.createRegisteredModel(name, opts);
    }
    if (local.description && remote.description !== local.description) {
      await this.rest.updateRegisteredModel(name, local.description);
    }
    for (const [k, v] of Object.entries(tags)) {
      if (remote.tags[k] !== v) await this.rest.setRegisteredModelTag(name, k, v);
    }
    remote = (await this.rest.getRegisteredModel(name))!;
    return remote;
  }

  private async findRemoteVersion(
    name: string,
    version: string,
    remembered: string | undefined,
  ): Promise<RemoteModelVersion | null> {
    if (remembered) {
      try {
        return await this.rest.getModelVersion(name, remembered);
      } catch (e) {
        if (!(e instanceof MlflowRestError && e.errorCode === 'RESOURCE_DOES_NOT_EXIST')) throw e;
      }
    }
    let pageToken: string | null = null;
    do {
      const page = await this.rest.searchModelVersions({
        filter: `name = '${name.replace(/'/g, "\\'")}'`,
        pageToken,
      });
      const hit = page.items.find((v) => v.tags[SOURCE_VERSION_TAG] === `${name}/${version}`);
      if (hit) return this.rest.getModelVersion(name, hit.version);
      pageToken = page.nextPageToken;
    } while (pageToken);
    return null;
  }

  /**
   * Pushes a model version: its run first when it was registered from one (the files are then
   * the run's artifacts), else its files through the artifact proxy; then tags, description,
   * stage and aliases.
   */
  async pushModelVersion(
    name: string,
    version: number | string,
    options: SyncOptions = {},
  ): Promise<PushModelVersionResult> {
    const subject = `${name}/${version}`;
    const progress = (p: Omit<SyncProgress, 'subject'>) => options.onProgress?.({ subject, ...p });
    const local = await this.registry.getModelVersion(name, version);
    progress({ phase: 'model', done: 0, total: 1, message: 'Finding the registered model' });
    await this.remoteModelFor(name);

    let remote = await this.findRemoteVersion(name, local.version, local.tags[this.versionTag]);
    const created = !remote;
    let filesSent = 0;
    if (!remote) {
      let source: string;
      let remoteRunId: string | undefined;
      const runHere = local.runId ? await repo.getRunRecord(this.db, local.runId) : undefined;
      if (local.origin.kind === 'run' && runHere) {
        const pushed = await this.pushRun(local.runId, options);
        remoteRunId = pushed.remoteRunId;
        source = `runs:/${remoteRunId}/${local.origin.artifactPath}`;
      } else {
        const base = `tabflow-models/${name}/${local.version}`;
        const rec = await getModelVersionRecord(this.db, name, local.version);
        const files = await listModelFiles(this.db, rec.id);
        const total = files.reduce((n, f) => n + f.size, 0);
        let bytes = 0;
        for (const f of files) {
          options.signal?.throwIfAborted();
          progress({ phase: 'files', done: bytes, total, message: f.path });
          await this.rest.uploadArtifact(
            `${base}/${f.path}`,
            await readBlob(this.db, f.blobId),
            options.signal,
          );
          bytes += f.size;
          filesSent++;
        }
        source = `mlflow-artifacts:/${base}`;
        if (runHere) {
          const remembered = runHere.tags[this.runTag];
          if (remembered) remoteRunId = remembered;
        }
      }
      const create: Parameters<MlflowRestClient['createModelVersion']>[0] = {
        name,
        source,
        tags: { ...pushable(local.tags), [SOURCE_VERSION_TAG]: `${name}/${local.version}` },
      };
      if (remoteRunId) create.runId = remoteRunId;
      if (local.description) create.description = local.description;
      remote = await this.rest.createModelVersion(create);
      await this.registry.setModelVersionTag(name, local.version, this.versionTag, remote.version);
    } else {
      for (const [k, v] of Object.entries(pushable(local.tags))) {
        if (remote.tags[k] !== v) await this.rest.setModelVersionTag(name, remote.version, k, v);
      }
      if (local.description && local.description !== remote.description) {
        await this.rest.updateModelVersion(name, remote.version, local.description);
      }
    }
    if (local.currentStage !== remote.currentStage) {
      await this.rest.transitionModelVersionStage(name, remote.version, local.currentStage);
    }
    for (const alias of local.aliases) {
      if (!remote.aliases.includes(alias)) {
        await this.rest.setRegisteredModelAlias(name, alias, remote.version);
      }
    }
    progress({ phase: 'done', done: 1, total: 1, message: `Pushed as version ${remote.version}` });
    return { name, version: local.version, remoteVersion: remote.version, created, filesSent };
  }

  // ---------------- browse

  async listRemoteExperiments(): Promise<import('../mlflow/entities.ts').Experiment[]> {
    const out = [];
    let pageToken: string | null = null;
    do {
      const page = await this.rest.searchExperiments({ pageToken });
      out.push(...page.items);
      pageToken = page.nextPageToken;
    } while (pageToken);
    return out;
  }

  async listRemoteRuns(experimentId: string, maxResults = 1000): Promise<Run[]> {
    const page = await this.rest.searchRuns({
      experimentIds: [experimentId],
      maxResults,
      orderBy: ['attributes.start_time DESC'],
    });
    return page.items;
  }

  async listRemoteModels(): Promise<RemoteRegisteredModel[]> {
    const out: RemoteRegisteredModel[] = [];
    let pageToken: string | null = null;
    do {
      const page = await this.rest.searchRegisteredModels({ pageToken });
      out.push(...page.items);
      pageToken = page.nextPageToken;
    } while (pageToken);
    return out;
  }

  async listRemoteVersions(name: string): Promise<RemoteModelVersion[]> {
    const page = await this.rest.searchModelVersions({
      filter: `name = '${name.replace(/'/g, "\\'")}'`,
    });
    return page.items.sort((a, b) => Number(b.version) - Number(a.version));
  }

  // ---------------- pull

  /**
   * Pulls a run (same run id) with its params, tags, full metric histories and artifacts into
   * the local experiment of the same name (created when missing). A run already here is left
   * as it is.
   *
   * All or nothing: artifacts stream from the server into the blob store chunk by chunk (at most
   * one chunk of a file in memory, see downloadArtifactToBlob), and the experiment, run, metric
   * history and artifact records are written in one transaction after the last byte arrived.
   * A failure or a cancel on the way deletes the files written so far and leaves the store as
   * it was; the error names the file and how far it got.
   */
  async pullRun(remoteRunId: string, options: PullOptions = {}): Promise<PullRunResult> {
    const progress = (p: Omit<SyncProgress, 'subject'>) =>
      options.onProgress?.({ subject: remoteRunId, ...p });
    const existing = await repo.getRunRecord(this.db, remoteRunId);
    if (existing) {
      return {
        runId: remoteRunId,
        experimentId: existing.experimentId,
        created: false,
        metricPoints: 0,
        artifacts: 0,
      };
    }
    const remote = await this.rest.getRun(remoteRunId);
    const remoteExp = await this.rest.getExperiment(remote.info.experimentId);
    progress({ phase: 'experiment', done: 0, total: 1, message: remoteExp.name });
    let local = await this.tracking.getExperimentByName(remoteExp.name);
    const experiments: Experiment[] = [];
    if (!local) {
      // Created with the run, in the same transaction.
      validateExperimentName(remoteExp.name);
      for (const [k, v] of Object.entries(remoteExp.tags)) validateExperimentTag(k, v);
      const free = !(await repo.getExperiment(this.db, remoteExp.experimentId));
      const id = free ? remoteExp.experimentId : newExperimentId();
      const now = Date.now();
      local = {
        experimentId: id,
        name: remoteExp.name,
        artifactLocation: `mlflow-artifacts:/${id}`,
        lifecycleStage: 'active',
        creationTime: now,
        lastUpdateTime: now,
        tags: { ...remoteExp.tags },
      };
      experiments.push(local);
    }

    const keys = Object.keys(remote.metrics);
    const histories: Array<[string, Metric[]]> = [];
    for (const [n, key] of keys.entries()) {
      options.signal?.throwIfAborted();
      progress({ phase: 'metrics', done: n, total: keys.length, message: key });
      histories.push([key, await this.rest.getMetricHistory(remoteRunId, key)]);
    }
    const info = {
      ...remote.info,
      experimentId: local.experimentId,
      artifactUri: `${local.artifactLocation}/${remoteRunId}/artifacts`,
    };
    const rec = repo.newRunRecord(info, { ...remote.tags, [this.runTag]: remoteRunId });
    rec.params = { ...remote.params };
    let metricPoints = 0;
    const history: repo.MetricChunk[] = [];
    for (const [key, points] of histories) {
      const latest = latestOf(points);
      if (latest) rec.metrics[key] = { ...latest };
      history.push(...repo.packChunks(remoteRunId, key, points));
      metricPoints += points.length;
    }

    const artifacts: repo.ArtifactRecord[] = [];
    try {
      const base = artifactProxyPath(remote.info.artifactUri);
      if (base !== null && remote.info.lifecycleStage === 'active') {
        const files = await this.rest.listAllArtifacts(remoteRunId);
        for (const f of files) checkEntryPath(f.path);
        const total = files.reduce((n, f) => n + (f.fileSize ?? 0), 0);
        let before = 0;
        for (const f of files) {
          options.signal?.throwIfAborted();
          progress({ phase: 'artifacts', done: before, total, message: f.path });
          const blobId = `artifact-${remoteRunId}-${crypto.randomUUID().replace(/-/g, '').slice(0, 16)}`;
          const stored = await downloadArtifactToBlob(
            this.db,
            this.rest,
            `${base}/${f.path}`,
            blobId,
            {
              type: guessMimeType(f.path),
              ...(options.chunkSize ? { chunkSize: options.chunkSize } : {}),
              ...(options.signal ? { signal: options.signal } : {}),
              onBytes: (n) =>
                progress({ phase: 'artifacts', done: before + n, total, message: f.path }),
            },
          );
          artifacts.push({
            runId: remoteRunId,
            path: f.path,
            blobId,
            size: stored.size,
            createdAt: Date.now(),
          });
          before += stored.size;
        }
      }
      options.signal?.throwIfAborted();
      await repo.writeImport(this.db, {
        experiments,
        runs: [rec],
        history,
        artifacts,
        files: [],
        replaceExperimentIds: [],
      });
    } catch (e) {
      for (const a of artifacts) await deleteBlob(this.db, a.blobId).catch(() => undefined);
      throw e;
    }
    for (const e of experiments) emitStoreChange({ kind: 'experiment', id: e.experimentId });
    emitStoreChange({ kind: 'run', id: remoteRunId });
    if (artifacts.length > 0) emitStoreChange({ kind: 'artifact', id: remoteRunId });
    progress({ phase: 'done', done: 1, total: 1, message: 'Pulled' });
    return {
      runId: remoteRunId,
      experimentId: local.experimentId,
      created: true,
      metricPoints,
      artifacts: artifacts.length,
    };
  }

  /**
   * Pulls a model version with its files (from the artifact proxy) as a new local version of the
   * registered model of the same name, with its tags, description, stage and aliases.
   */
  async pullModelVersion(
    name: string,
    version: string,
    options: SyncOptions = {},
  ): Promise<{ name: string; version: string }> {
    const subject = `${name}/${version}`;
    const progress = (p: Omit<SyncProgress, 'subject'>) => options.onProgress?.({ subject, ...p });
    const remote = await this.rest.getModelVersion(name, version);
    const uri = await this.rest.getModelVersionDownloadUri(name, version);
    const base = await this.rest.resolveProxyPath(uri);
    if (base === null) {
      throw new MlflowRestError(
        'NOT_IMPLEMENTED',
        `The files of ${name} v${version} are at '${uri}', which a browser cannot read; the server must serve them (--serve-artifacts).`,
        0,
        'model-versions/get-download-uri',
      );
    }
    const listing = await this.rest.listAllProxyArtifacts(base);
    if (listing.length > PULL_LIMITS.maxFiles) {
      throw new MlflowRestError(
        'RESOURCE_EXHAUSTED',
        `${name} v${version} has ${listing.length} files; at most ${PULL_LIMITS.maxFiles} are pulled.`,
        0,
        'mlflow-artifacts',
      );
    }
    const rest = this.rest;
    const entries: ArchiveEntry[] = listing.map((f) => ({
      path: checkEntryPath(f.path),
      isDirectory: false,
      size: f.fileSize ?? 0,
      async *open() {
        // Streamed: the model import stores the pieces as they arrive.
        yield* (await rest.openArtifact(`${base}/${f.path}`, options.signal)).chunks;
      },
    }));
    const source: ArchiveSource = {
      entries,
      totalSize: entries.reduce((n, e) => n + e.size, 0),
    };
    progress({ phase: 'files', done: 0, total: source.totalSize, message: 'Checking the model' });
    const checked = await checkModelSource(source);

    const remoteModel = await this.rest.getRegisteredModel(name);
    const hereAlready = await this.registry.getRegisteredModel(name).catch(() => null);
    if (!hereAlready) {
      const opts: { description?: string; tags?: Record<string, string> } = {
        tags: remoteModel?.tags ?? {},
      };
      if (remoteModel?.description) opts.description = remoteModel.description;
      await this.registry.createRegisteredModel(name, opts);
    }
    let imported: Awaited<ReturnType<typeof registerCheckedModel>>;
    try {
      // The files stream from the server into the store; a failure deletes what was written.
      imported = await registerCheckedModel(
        this.db,
        checked,
        {
          kind: 'folder',
          name: `${this.rest.baseUrl}#models:/${name}/${version}`,
          size: source.totalSize,
        },
        {
          name,
          ...(remote.description ? { description: remote.description } : {}),
          tags: { ...remote.tags, [this.versionTag]: remote.version },
          onProgress: (p) =>
            progress({
              phase: 'files',
              done: p.bytesWritten,
              total: p.totalBytes,
              message: p.path ?? p.phase,
            }),
          ...(options.signal ? { signal: options.signal } : {}),
        },
      );
    } catch (e) {
      // The registered model made for this pull goes too: the store is as it was.
      if (!hereAlready) await this.registry.deleteRegisteredModel(name).catch(() => undefined);
      throw e;
    }
    const localVersion = String(imported.version.version);
    if (remote.currentStage !== 'None') {
      await this.registry.transitionModelVersionStage(name, localVersion, remote.currentStage);
    }
    for (const alias of remote.aliases) {
      await this.registry.setRegisteredModelAlias(name, alias, localVersion);
    }
    progress({ phase: 'done', done: 1, total: 1, message: `Pulled as version ${localVersion}` });
    return { name, version: localVersion };
  }
}

/** A SyncClient for a saved server. */
export function syncClientFor(db: AnyDB, server: RemoteServer): SyncClient {
  return new SyncClient(db, server.url, server.token ? { token: server.token } : {});
}

export { MlflowError };
