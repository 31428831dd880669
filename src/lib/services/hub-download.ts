/**
 * "Download from the Hugging Face Hub": resolve a model id to a pinned commit and the files its
 * browser layout needs, check the storage quota before anything is written, stream every file
 * into IndexedDB in 64 MiB chunks with Range requests (so a dropped connection or a closed tab
 * resumes from the last stored chunk), and register the result as a servable model version that
 * loads with no network afterwards.
 */
import { getDatabase, type AnyDB } from '../store/db.ts';
import {
  DEFAULT_CHUNK_SIZE,
  StorageQuotaError,
  deleteBlob,
  formatBytes,
  readBlob,
  writeBlob,
} from '../store/blobs.ts';
import {
  DownloadGoneError,
  deleteDownload,
  downloadedBytes,
  fileComplete,
  forgetDownload,
  getDownload,
  listDownloads,
  putDownload,
  setDownloadStatus,
  storeDownloadChunk,
  storedBytes,
  type DownloadFileState,
  type DownloadRecord,
} from '../store/downloads.ts';
import {
  createModelVersion,
  listModelVersionRecords,
  validateModelName,
} from '../store/registry.ts';
import { getModelFile, newModelBlobId, type ModelFileRecord } from '../store/model-files.ts';
import {
  HubError,
  hubBase,
  isRepoId,
  listRepoFiles,
  resolveRevision,
  resolveUrl,
  selectLayoutFiles,
  type FetchLike,
  type HubFile,
  type HubLayout,
  type WebDtype,
} from '../remote/hub.ts';
import {
  detectServable,
  parseMLmodel,
  writeMLmodel,
  type MLmodel,
  type ServableDescriptor,
} from '../mlflow/mlmodel.ts';
import { llmV1ChatSignature } from '../mlflow/signature.ts';
import { detectWebGpu } from './environment.ts';
import { emitStoreChange } from './events.ts';

export { HubError, DEFAULT_HUB_URL } from '../remote/hub.ts';
export type { DownloadRecord } from '../store/downloads.ts';

// ---------------------------------------------------------------- what can be asked for

export interface HubPreset {
  label: string;
  repoId: string;
  subfolder: string;
  layout: HubLayout;
}

/** The Phi-3 exports the app is known to serve. */
export const HUB_PRESETS: readonly HubPreset[] = [
  {
    label: 'Phi-3.5 mini instruct · transformers.js web export',
    repoId: 'onnx-community/Phi-3.5-mini-instruct-onnx-web',
    subfolder: '',
    layout: 'web',
  },
  {
    label: 'Phi-3 mini 4k instruct · transformers.js web export',
    repoId: 'microsoft/Phi-3-mini-4k-instruct-onnx-web',
    subfolder: '',
    layout: 'web',
  },
  {
    label: 'Phi-3 mini 4k instruct · onnxruntime-genai CPU int4',
    repoId: 'microsoft/Phi-3-mini-4k-instruct-onnx',
    subfolder: 'cpu_and_mobile/cpu-int4-rtn-block-32-acc-level-4',
    layout: 'genai',
  },
];

export interface HubModelRequest {
  /** `owner/name`. */
  repoId: string;
  /** Branch, tag or commit; `main` when absent. */
  revision?: string;
  /** Folder inside the repo that holds the model. */
  subfolder?: string;
  /** `auto`: genai when the folder has a genai_config.json, else the web export. */
  layout?: HubLayout | 'auto';
  /**
   * Web layout weights. `auto`: q4f16 when this browser's WebGPU adapter has `shader-f16`, else
   * q4 (each falls back to the other when the repo lacks it); q4/q4f16 take exactly that variant.
   */
  dtype?: WebDtype | 'auto';
  /** Registered model to add the version to; derived from the repo when absent. */
  modelName?: string;
}

export interface DownloadPlan {
  repoId: string;
  revision: string;
  /** The commit every file is taken from. */
  commit: string;
  /** '' or ending in '/'. */
  subfolder: string;
  layout: HubLayout;
  dtype?: WebDtype;
  modelName: string;
  hubUrl: string;
  files: HubFile[];
  totalBytes: number;
}

export interface DownloadProgress {
  id: string;
  /** Bytes received, stored or in the chunk being filled. */
  bytesDone: number;
  totalBytes: number;
  /** Over the last few seconds; 0 until measurable. */
  bytesPerSecond: number;
  /** null while the speed is unknown. */
  etaSeconds: number | null;
  /** Version-relative path of the file being downloaded. */
  file: string | null;
  filesDone: number;
  filesTotal: number;
  /** Set while waiting to retry after a dropped connection. */
  retry?: { attempt: number; of: number; message: string };
}

export interface CompletedDownload {
  name: string;
  version: string;
  versionId: string;
  servable: ServableDescriptor | null;
  totalBytes: number;
}

export interface StorageEstimateLike {
  quota?: number;
  usage?: number;
}

export interface HubDownloadConfig {
  /** The Hub (or a mirror); https://huggingface.co when absent. */
  hubUrl?: string;
  fetch?: FetchLike;
  /** navigator.storage.estimate() when absent; null means "unknown" (no check). */
  estimate?: () => Promise<StorageEstimateLike | null>;
  /** Whether the WebGPU adapter has shader-f16 (for dtype `auto`); probed when absent. */
  shaderF16?: () => Promise<boolean>;
  chunkSize?: number;
  /** Retries of one file after a dropped connection with no progress in between. */
  maxRetries?: number;
  /** First retry delay; doubles each time, up to 30 s. */
  retryDelayMs?: number;
  /** Least time between two progress reports (150 ms when absent). */
  progressIntervalMs?: number;
}

export interface RunOptions {
  signal?: AbortSignal;
  onProgress?: (p: DownloadProgress) => void;
}

/** The download needs more space than the browser grants this site. */
export class DownloadQuotaError extends StorageQuotaError {
  override name = 'DownloadQuotaError';
  constructor(
    neededBytes: number,
    readonly availableBytes: number,
    readonly usageBytes: number,
    readonly quotaBytes: number,
    what: string,
  ) {
    super(neededBytes);
    this.message =
      `Not enough storage for ${what}: it needs ${formatBytes(neededBytes)}, but this browser lets the app store only ` +
      `${formatBytes(availableBytes)} more (${formatBytes(usageBytes)} used of ${formatBytes(quotaBytes)}). ` +
      `Free ${formatBytes(neededBytes - availableBytes)} or more: delete model versions you no longer need, or free disk space, then try again.`;
  }
}

/** The run stopped because its signal was aborted; the stored chunks are kept for resume. */
export class DownloadPausedError extends Error {
  override name = 'DownloadPausedError';
  constructor(id: string) {
    super(`Download ${id} is paused; resume it to continue from the last stored chunk.`);
  }
}

export { DownloadGoneError };

/** A failure worth retrying: the connection dropped, or the server was briefly unavailable. */
class TransientError extends Error {
  override name = 'TransientError';
}

// ---------------------------------------------------------------- speed and time left

/** Bytes per second over a sliding window of a few seconds. */
export class RateMeter {
  private samples: { t: number; bytes: number }[] = [];
  constructor(private readonly windowMs = 5000) {}

  add(t: number, bytes: number): void {
    const last = this.samples[this.samples.length - 1];
    // Bytes going backwards (a partial chunk thrown away before a retry): start over.
    if (last && bytes < last.bytes) this.samples = [];
    this.samples.push({ t, bytes });
    while (this.samples.length > 2 && t - this.samples[0]!.t > this.windowMs) this.samples.shift();
  }

  rate(): number {
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    if (!first || !last || last.t - first.t < 250) return 0;
    return ((last.bytes - first.bytes) * 1000) / (last.t - first.t);
  }

  eta(remaining: number): number | null {
    const r = this.rate();
    return r > 0 ? remaining / r : null;
  }
}

// ---------------------------------------------------------------- the MLmodel written for it

function utcTimeCreated(d: Date): string {
  // Python's str(datetime) of a naive UTC time, as MLflow writes it.
  const iso = d.toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}.${iso.slice(20, 23)}000`;
}

/** The MLmodel's env files: MLflow's loader expects them next to a python_function flavor. */
const PYTHON_VERSION = '3.11.9';
const REQUIREMENTS = ['mlflow', 'transformers', 'onnxruntime'];
const CONDA_YAML = `channels:
- conda-forge
dependencies:
- python=${PYTHON_VERSION}
- pip<=24.0
- pip:
${REQUIREMENTS.map((r) => `  - ${r}`).join('\n')}
name: mlflow-env
`;
const PYTHON_ENV_YAML = `python: ${PYTHON_VERSION}
build_dependencies:
- pip
- setuptools
- wheel
dependencies:
- -r requirements.txt
`;

export interface ChatMLmodelInput {
  repoId: string;
  /** What the weights folder holds, for the flavor's informational keys. */
  pipelineModelType?: string;
  tokenizerType?: string;
  transformersVersion?: string;
  modelSizeBytes: number;
  created?: Date;
}

/**
 * A transformers-flavor MLmodel for downloaded ONNX weights saved under `model/`: task
 * `llm/v1/chat` with its fixed signature, and `source_model_name` naming the Hub repo.
 */
export function huggingFaceChatMLmodel(input: ChatMLmodelInput): MLmodel {
  const tf: Record<string, unknown> = {
    code: null,
    components: ['tokenizer'],
    framework: 'pt',
    inference_task: 'llm/v1/chat',
    instance_type: 'TextGenerationPipeline',
    model_binary: 'model',
    pipeline_model_type: input.pipelineModelType ?? 'Phi3ForCausalLM',
    source_model_name: input.repoId,
    task: 'text-generation',
  };
  if (input.tokenizerType) tf.tokenizer_type = input.tokenizerType;
  if (input.transformersVersion) tf.transformers_version = input.transformersVersion;
  return {
    flavors: {
      python_function: {
        env: { conda: 'conda.yaml', virtualenv: 'python_env.yaml' },
        loader_module: 'mlflow.transformers',
        python_version: PYTHON_VERSION,
      },
      transformers: tf,
    },
    metadata: { task: 'llm/v1/chat' },
    modelSizeBytes: input.modelSizeBytes,
    modelUuid: crypto.randomUUID().replace(/-/g, ''),
    signature: llmV1ChatSignature(),
    utcTimeCreated: utcTimeCreated(input.created ?? new Date()),
    extra: {},
  };
}

// ---------------------------------------------------------------- the service

const WEIGHTS_DIR = 'model/';
const MAX_RETRY_DELAY_MS = 30_000;
const PROGRESS_EVERY_MS = 150;

export function defaultModelName(repoId: string, subfolder = ''): string {
  const name = repoId.slice(repoId.indexOf('/') + 1);
  const folder = subfolder.replace(/\/+$/, '');
  const last = folder.slice(folder.lastIndexOf('/') + 1);
  return last ? `${name}-${last}` : name;
}

async function browserEstimate(): Promise<StorageEstimateLike | null> {
  const storage = (globalThis.navigator as Navigator | undefined)?.storage;
  if (!storage?.estimate) return null;
  try {
    return await storage.estimate();
  } catch {
    return null;
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Parses `bytes start-end/total` (total may be `*`). */
function parseContentRange(v: string | null): { start: number; total: number | null } | null {
  const m = v ? /^bytes\s+(\d+)-(\d+)\/(\d+|\*)$/.exec(v.trim()) : null;
  if (!m) return null;
  return { start: Number(m[1]), total: m[3] === '*' ? null : Number(m[3]) };
}

const isRetryable = (e: unknown) =>
  e instanceof TransientError ||
  // fetch's network failures, and a body stream cut off mid-way ("terminated", "network error").
  (e instanceof TypeError && !(e instanceof HubError));

export class HubDownloads {
  private readonly fetchImpl: FetchLike;
  private readonly chunkSize: number;

  constructor(
    readonly db: AnyDB,
    private readonly cfg: HubDownloadConfig = {},
  ) {
    this.fetchImpl = cfg.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.chunkSize = cfg.chunkSize ?? DEFAULT_CHUNK_SIZE;
  }

  get hubUrl(): string {
    return hubBase(this.cfg.hubUrl);
  }

  /** Lists the repo at a pinned commit and picks the files; nothing is written. */
  async plan(req: HubModelRequest, signal?: AbortSignal): Promise<DownloadPlan> {
    const repoId = req.repoId.trim();
    if (!isRepoId(repoId)) {
      throw new HubError(
        `'${repoId}' is not a Hugging Face model id: expected owner/name, as in microsoft/Phi-3-mini-4k-instruct-onnx-web.`,
      );
    }
    const revision = req.revision?.trim() || 'main';
    const modelName = req.modelName?.trim() || defaultModelName(repoId, req.subfolder);
    validateModelName(modelName);
    const commit = await resolveRevision(this.fetchImpl, this.hubUrl, repoId, revision, signal);
    const subfolder = (req.subfolder ?? '').replace(/^\/+|\/+$/g, '');
    const all = await listRepoFiles(this.fetchImpl, this.hubUrl, repoId, commit, subfolder, signal);
    let dtype: WebDtype = 'q4';
    const fallback = req.dtype === undefined || req.dtype === 'auto';
    if (req.dtype === 'q4' || req.dtype === 'q4f16') dtype = req.dtype;
    else if (await this.hasShaderF16()) dtype = 'q4f16';
    const sel = selectLayoutFiles(all, {
      layout: req.layout ?? 'auto',
      subfolder,
      dtype,
      dtypeFallback: fallback,
    });
    const plan: DownloadPlan = {
      repoId,
      revision,
      commit,
      subfolder: sel.root,
      layout: sel.layout,
      modelName,
      hubUrl: this.hubUrl,
      files: sel.files,
      totalBytes: sel.totalBytes,
    };
    if (sel.dtype) plan.dtype = sel.dtype;
    return plan;
  }

  private async hasShaderF16(): Promise<boolean> {
    if (this.cfg.shaderF16) return this.cfg.shaderF16();
    if (typeof navigator === 'undefined') return false;
    return (await detectWebGpu()).shaderF16 === true;
  }

  /** Refuses early, with the numbers, when `neededBytes` exceed what the browser grants. */
  async checkQuota(neededBytes: number, what: string): Promise<void> {
    const est = await (this.cfg.estimate ?? browserEstimate)();
    if (!est || typeof est.quota !== 'number') return;
    const usage = est.usage ?? 0;
    const available = Math.max(0, est.quota - usage);
    if (neededBytes > available) {
      throw new DownloadQuotaError(neededBytes, available, usage, est.quota, what);
    }
  }

  /** Checks the quota and records the download (nothing is fetched yet). */
  async create(plan: DownloadPlan): Promise<DownloadRecord> {
    validateModelName(plan.modelName);
    await this.checkQuota(plan.totalBytes, plan.repoId);
    const now = Date.now();
    const files: DownloadFileState[] = plan.files.map((f) => {
      const s: DownloadFileState = {
        remotePath: f.path,
        path: WEIGHTS_DIR + f.path.slice(plan.subfolder.length),
        size: f.size,
        blobId: newModelBlobId(),
        chunkSize: this.chunkSize,
        chunksDone: 0,
      };
      if (f.oid) s.oid = f.oid;
      return s;
    });
    const rec: DownloadRecord = {
      id: crypto.randomUUID(),
      repoId: plan.repoId,
      revision: plan.revision,
      commit: plan.commit,
      subfolder: plan.subfolder,
      layout: plan.layout,
      modelName: plan.modelName,
      hubUrl: plan.hubUrl,
      files,
      totalBytes: plan.totalBytes,
      status: 'paused',
      createdAt: now,
      updatedAt: now,
    };
    if (plan.dtype) rec.dtype = plan.dtype;
    await putDownload(this.db, rec);
    // Ask the browser not to evict gigabytes of weights under storage pressure (best effort;
    // Chromium decides without a prompt).
    void (globalThis.navigator as Navigator | undefined)?.storage?.persist?.().catch(() => false);
    return rec;
  }

  /** plan + create + run. */
  async download(req: HubModelRequest, opts: RunOptions = {}): Promise<CompletedDownload> {
    const plan = await this.plan(req, opts.signal);
    const rec = await this.create(plan);
    return this.run(rec.id, opts);
  }

  /** Unfinished downloads, oldest first (a closed tab leaves them here, resumable). */
  list(): Promise<DownloadRecord[]> {
    return listDownloads(this.db);
  }

  get(id: string): Promise<DownloadRecord | undefined> {
    return getDownload(this.db, id);
  }

  /**
   * Deletes the download and every chunk it stored. Safe while it runs: the run stops at its next
   * chunk with DownloadGoneError, having written nothing more.
   */
  async cancel(id: string): Promise<void> {
    await deleteDownload(this.db, id);
  }

  /**
   * Downloads what is missing (continuing from each file's last stored chunk), then registers the
   * files as a new model version. Aborting `signal` pauses: the promise rejects with
   * DownloadPausedError and the stored chunks stay for a later run.
   */
  async run(id: string, opts: RunOptions = {}): Promise<CompletedDownload> {
    const release = await acquireLock(id);
    try {
      return await this.runLocked(id, opts);
    } finally {
      release();
    }
  }

  private async runLocked(id: string, opts: RunOptions): Promise<CompletedDownload> {
    const { signal } = opts;
    let rec = await getDownload(this.db, id);
    if (!rec) throw new DownloadGoneError(id);
    try {
      signal?.throwIfAborted();
      await this.checkQuota(rec.totalBytes - downloadedBytes(rec), rec.repoId);
      rec = (await setDownloadStatus(this.db, id, 'downloading')) ?? rec;
      const meter = new RateMeter();
      let lastReport = 0;
      const report = (
        current: DownloadRecord,
        inFlight: number,
        file: string | null,
        force = false,
        retry?: DownloadProgress['retry'],
      ) => {
        if (!opts.onProgress) return;
        const now = Date.now();
        rec = current;
        const bytesDone = downloadedBytes(current) + inFlight;
        meter.add(now, bytesDone);
        if (!force && now - lastReport < (this.cfg.progressIntervalMs ?? PROGRESS_EVERY_MS)) return;
        lastReport = now;
        const p: DownloadProgress = {
          id,
          bytesDone,
          totalBytes: current.totalBytes,
          bytesPerSecond: meter.rate(),
          etaSeconds: meter.eta(current.totalBytes - bytesDone),
          file,
          filesDone: current.files.filter(fileComplete).length,
          filesTotal: current.files.length,
        };
        if (retry) p.retry = retry;
        opts.onProgress(p);
      };
      report(rec, 0, null, true);
      const maxRetries = this.cfg.maxRetries ?? 5;
      const baseDelay = this.cfg.retryDelayMs ?? 1000;
      for (let i = 0; i < rec.files.length; i++) {
        let attempt = 0;
        while (!fileComplete(rec.files[i]!)) {
          const before = rec.files[i]!.chunksDone;
          try {
            rec = await this.fetchFile(rec, i, signal, report);
          } catch (e) {
            if (signal?.aborted || !isRetryable(e)) throw e;
            const latest = await getDownload(this.db, id);
            if (!latest) throw new DownloadGoneError(id);
            rec = latest;
            if (rec.files[i]!.chunksDone > before) attempt = 0;
            if (++attempt > maxRetries) throw e;
            const message = (e as Error).message;
            report(rec, 0, rec.files[i]!.path, true, { attempt, of: maxRetries, message });
            await sleep(Math.min(MAX_RETRY_DELAY_MS, baseDelay * 2 ** (attempt - 1)), signal);
          }
        }
      }
      report(rec, 0, null, true);
      return await this.register(rec);
    } catch (e) {
      if (e instanceof DownloadGoneError) throw e;
      if (signal?.aborted) {
        await setDownloadStatus(this.db, id, 'paused');
        throw new DownloadPausedError(id);
      }
      const retryable = isRetryable(e);
      const message = retryable
        ? `The connection to the Hub dropped and did not come back (${(e as Error).message}). The stored part is kept: resume to continue.`
        : (e as Error).message;
      await setDownloadStatus(this.db, id, retryable ? 'interrupted' : 'failed', message);
      if (retryable) throw new HubError(message);
      throw e;
    }
  }

  /** Fetches file `i` from its first missing byte, storing each full chunk as it arrives. */
  private async fetchFile(
    rec: DownloadRecord,
    i: number,
    signal: AbortSignal | undefined,
    report: (current: DownloadRecord, inFlight: number, file: string | null) => void,
  ): Promise<DownloadRecord> {
    const file = rec.files[i]!;
    if (file.size === 0) return storeDownloadChunk(this.db, rec.id, i, new Uint8Array(0));
    const offset = storedBytes(file);
    const url = resolveUrl(rec.hubUrl, rec.repoId, rec.commit, file.remotePath);
    const init: RequestInit = { signal: signal ?? null };
    if (offset > 0) init.headers = { range: `bytes=${offset}-` };
    // Multi-GB bodies must not be copied into the HTTP cache as well.
    if (typeof window !== 'undefined') init.cache = 'no-store';
    const res = await this.fetchImpl(url, init);
    const what = `${file.remotePath} (${rec.repoId})`;
    let skip = 0;
    if (res.status === 206) {
      // A CDN behind a redirect may not expose Content-Range to scripts (CORS); a 206 to
      // `bytes=N-` starts at N by definition, and Content-Length (always readable) must match.
      const header = res.headers.get('content-range');
      const range = parseContentRange(header);
      const len = res.headers.get('content-length');
      if (header !== null && (!range || range.start !== offset)) {
        throw new HubError(
          `${what}: the server answered the request for bytes ${offset}- with the range ${header}.`,
        );
      }
      const total = range?.total ?? (len !== null ? offset + Number(len) : null);
      if (total !== null && total !== file.size) {
        throw new HubError(
          `${what} is ${total} bytes on the server but was listed as ${file.size}: the file changed. Cancel and download again.`,
        );
      }
    } else if (res.status === 200) {
      // The server ignored the Range header: read past what is already stored.
      skip = offset;
      const len = res.headers.get('content-length');
      if (
        len !== null &&
        res.headers.get('content-encoding') === null &&
        Number(len) !== file.size
      ) {
        throw new HubError(
          `${what} is ${len} bytes on the server but was listed as ${file.size}: the file changed. Cancel and download again.`,
        );
      }
    } else if (res.status >= 500 || res.status === 429 || res.status === 408) {
      throw new TransientError(`HTTP ${res.status} for ${what}`);
    } else {
      throw new HubError(
        res.status === 401 || res.status === 403
          ? `${what}: the Hub refused access (HTTP ${res.status}); the model may be gated or private.`
          : `${what}: the Hub answered HTTP ${res.status}.`,
        res.status,
      );
    }
    if (!res.body) throw new TransientError(`Empty response for ${what}`);
    const reader = res.body.getReader();
    const chunkLength = (f: DownloadFileState) =>
      Math.min(f.chunkSize, f.size - f.chunksDone * f.chunkSize);
    let buf = new Uint8Array(chunkLength(file));
    let fill = 0;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        signal?.throwIfAborted();
        if (done) break;
        let piece = value;
        if (skip > 0) {
          const n = Math.min(skip, piece.length);
          skip -= n;
          piece = piece.subarray(n);
        }
        while (piece.length > 0) {
          const current = rec.files[i]!;
          if (fileComplete(current)) {
            throw new HubError(`${what} is longer than the ${file.size} bytes listed for it.`);
          }
          const n = Math.min(buf.length - fill, piece.length);
          buf.set(piece.subarray(0, n), fill);
          fill += n;
          piece = piece.subarray(n);
          if (fill === buf.length) {
            rec = await storeDownloadChunk(this.db, rec.id, i, buf);
            fill = 0;
            const next = rec.files[i]!;
            if (!fileComplete(next)) buf = new Uint8Array(chunkLength(next));
          }
          report(rec, fill, current.path);
        }
      }
    } finally {
      reader.releaseLock();
    }
    if (!fileComplete(rec.files[i]!)) {
      const got = storedBytes(rec.files[i]!) + fill;
      throw new TransientError(
        `the connection closed after ${formatBytes(got)} of ${formatBytes(file.size)} of ${file.remotePath}`,
      );
    }
    void res.body.cancel().catch(() => undefined);
    return rec;
  }

  private async readJson(rec: DownloadRecord, path: string): Promise<Record<string, unknown>> {
    const f = rec.files.find((x) => x.path === path);
    if (!f) return {};
    try {
      const v = JSON.parse(await (await readBlob(this.db, f.blobId)).text()) as unknown;
      return v && typeof v === 'object' ? (v as Record<string, unknown>) : {};
    } catch {
      return {};
    }
  }

  /** Writes the MLmodel and env files, then creates the version with every file in one step. */
  /**
   * The version these files already became, if the tab closed between registering and
   * forgetting the download: registering again would give two versions one set of blobs.
   */
  private async alreadyRegistered(rec: DownloadRecord): Promise<CompletedDownload | null> {
    const first = rec.files[0];
    if (!first) return null;
    for (const v of await listModelVersionRecords(this.db, rec.modelName)) {
      if ((await getModelFile(this.db, v.id, first.path))?.blobId !== first.blobId) continue;
      await forgetDownload(this.db, rec.id);
      return {
        name: v.name,
        version: String(v.version),
        versionId: v.id,
        servable: v.servable,
        totalBytes: rec.totalBytes,
      };
    }
    return null;
  }

  private async register(rec: DownloadRecord): Promise<CompletedDownload> {
    const existing = await this.alreadyRegistered(rec);
    if (existing) return existing;
    const config = await this.readJson(rec, `${WEIGHTS_DIR}config.json`);
    const tokConfig = await this.readJson(rec, `${WEIGHTS_DIR}tokenizer_config.json`);
    const arch = Array.isArray(config.architectures) ? config.architectures[0] : undefined;
    const input: ChatMLmodelInput = { repoId: rec.repoId, modelSizeBytes: rec.totalBytes };
    if (typeof arch === 'string') input.pipelineModelType = arch;
    if (typeof tokConfig.tokenizer_class === 'string')
      input.tokenizerType = tokConfig.tokenizer_class;
    if (typeof config.transformers_version === 'string')
      input.transformersVersion = config.transformers_version;
    const mlmodelText = writeMLmodel(huggingFaceChatMLmodel(input));
    const enc = new TextEncoder();
    const extra: [string, string][] = [
      ['MLmodel', mlmodelText],
      ['conda.yaml', CONDA_YAML],
      ['python_env.yaml', PYTHON_ENV_YAML],
      ['requirements.txt', REQUIREMENTS.join('\n')],
    ];
    const written: string[] = [];
    try {
      const files: Omit<ModelFileRecord, 'versionId'>[] = rec.files.map((f) => ({
        path: f.path,
        blobId: f.blobId,
        size: f.size,
      }));
      for (const [path, text] of extra) {
        const blobId = newModelBlobId();
        written.push(blobId);
        const bytes = enc.encode(text);
        await writeBlob(this.db, blobId, bytes, { type: 'text/plain' });
        files.push({ path, blobId, size: bytes.length });
      }
      const servable = detectServable(
        parseMLmodel(mlmodelText),
        files.map((f) => f.path),
      );
      if (!(await getDownload(this.db, rec.id))) throw new DownloadGoneError(rec.id);
      const folder = rec.subfolder.replace(/\/$/, '');
      const tags: Record<string, string> = {
        'hf.repo_id': rec.repoId,
        'hf.commit': rec.commit,
        'tabflow.layout': rec.layout,
      };
      if (folder) tags['hf.subfolder'] = folder;
      if (rec.dtype) tags['tabflow.dtype'] = rec.dtype;
      const version = await createModelVersion(this.db, {
        name: rec.modelName,
        source: `hf:/${rec.repoId}${folder ? `/${folder}` : ''}`,
        origin: { kind: 'huggingface', repoId: rec.repoId, revision: rec.commit },
        servable,
        files,
        createModel: true,
        description: `Downloaded from the Hugging Face Hub: ${rec.repoId}${folder ? ` (${folder})` : ''} at ${rec.commit.slice(0, 12)}.`,
        tags,
      });
      await forgetDownload(this.db, rec.id);
      emitStoreChange({ kind: 'registry', id: rec.modelName });
      return {
        name: version.name,
        version: String(version.version),
        versionId: version.id,
        servable,
        totalBytes: rec.totalBytes,
      };
    } catch (e) {
      for (const id of written) await deleteBlob(this.db, id).catch(() => undefined);
      throw e;
    }
  }
}

/**
 * One run per download across tabs (Web Locks); where the API is missing (Node), a
 * module-level set does it for this process.
 */
const runningHere = new Set<string>();

async function acquireLock(id: string): Promise<() => void> {
  const busy = () => new HubError('This download is already running (in this tab or another one).');
  if (runningHere.has(id)) throw busy();
  runningHere.add(id);
  const locks = (globalThis.navigator as Navigator | undefined)?.locks;
  if (!locks) return () => runningHere.delete(id);
  return new Promise((resolve, reject) => {
    locks
      .request(`tabflow-download-${id}`, { ifAvailable: true }, (lock) => {
        if (!lock) {
          runningHere.delete(id);
          reject(busy());
          return;
        }
        return new Promise<void>((release) =>
          resolve(() => {
            runningHere.delete(id);
            release();
          }),
        );
      })
      .catch((e: unknown) => {
        runningHere.delete(id);
        reject(e instanceof Error ? e : new Error(String(e)));
      });
  });
}

let shared: HubDownloads | undefined;
let sharedUrl: string | undefined;

/** The app's Hub downloads on the app's database; `hubUrl` picks a mirror (or a test server). */
export async function getHubDownloads(hubUrl?: string): Promise<HubDownloads> {
  const url = hubBase(hubUrl);
  if (!shared || sharedUrl !== url) {
    shared = new HubDownloads(await getDatabase(), { hubUrl: url });
    sharedUrl = url;
  }
  return shared;
}
