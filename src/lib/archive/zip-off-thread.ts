/**
 * Zip work off the main thread. A 2,000-run mlruns zip takes fflate's unzipSync/zipSync several
 * hundred milliseconds, during which a page would not paint or take input; these run the same
 * code in a module worker (`zip-worker.ts`). Where there is no Worker (Node, tests) or the
 * worker cannot start, the work runs on the calling thread instead, with the same results and
 * errors.
 */
import { zipSync, type Zippable } from 'fflate';
import { MlflowError } from '../mlflow/errors.ts';
import { MlrunsParseError } from '../mlflow/mlruns/index.ts';
import { unzipGuardedSync, type ZipLimits } from './mlruns-unzip.ts';
import {
  buildMlrunsFiles,
  joinPrepared,
  mlrunsZippable,
  prepareMlruns,
  type MlrunsExportInput,
  type PreparedMlruns,
  type PreparedPart,
} from './zip-worker-mlruns.ts';
import type {
  ZipWorkerMessage,
  ZipWorkerRequest,
  ZipWorkerResponse,
} from './zip-worker-protocol.ts';

let worker: Worker | null = null;
let broken = false;
let nextId = 1;
const waiting = new Map<number, (r: ZipWorkerResponse | Error) => void>();
/** Pieces received so far of a prepared mlruns tree, by request id. */
const parts = new Map<number, PreparedPart[]>();

function startWorker(): Worker | null {
  if (broken || typeof Worker === 'undefined') return null;
  if (worker) return worker;
  try {
    const w = new Worker(new URL('./zip-worker.ts', import.meta.url), {
      type: 'module',
      name: 'tabflow-zip',
    });
    w.onmessage = (ev: MessageEvent<ZipWorkerMessage>) => {
      if ('part' in ev.data) {
        parts.get(ev.data.id)?.push(ev.data.part);
        return;
      }
      const done = waiting.get(ev.data.id);
      waiting.delete(ev.data.id);
      done?.(ev.data);
    };
    w.onerror = (ev) => {
      // The worker failed to load or crashed: fail what is pending, run later work in-thread.
      ev.preventDefault();
      broken = true;
      worker = null;
      w.terminate();
      const err = new Error(`zip worker failed: ${ev.message || 'could not start'}`);
      for (const done of waiting.values()) done(err);
      waiting.clear();
    };
    worker = w;
    return w;
  } catch {
    broken = true;
    return null;
  }
}

function call(w: Worker, req: ZipWorkerRequest): Promise<ZipWorkerResponse> {
  return new Promise((resolve, reject) => {
    waiting.set(req.id, (r) => (r instanceof Error ? reject(r) : resolve(r)));
    w.postMessage(req);
  });
}

function rethrow(r: Extract<ZipWorkerResponse, { ok: false }>): never {
  if (r.parse) throw new MlrunsParseError(r.parse.file, r.parse.line, r.parse.detail);
  if (r.mlflow && r.code !== 'INTERNAL_ERROR') throw new MlflowError(r.code, r.message);
  throw new Error(r.message);
}

/**
 * `unzipGuarded` off the main thread: same guards, same result, same MlflowError messages. A
 * Blob is read inside the worker (no copy of its bytes on the page).
 */
export async function unzipGuardedOffThread(
  zip: Uint8Array | Blob,
  limits: Partial<ZipLimits> = {},
): Promise<Map<string, Uint8Array>> {
  const w = startWorker();
  if (w) {
    try {
      const r = await call(w, { id: nextId++, op: 'unzip', zip, limits });
      if (!r.ok) rethrow(r);
      if ('files' in r) return r.files;
    } catch (e) {
      if (e instanceof MlflowError || !broken) throw e;
      // the worker died: fall through to the calling thread
    }
  }
  const bytes = zip instanceof Blob ? new Uint8Array(await zip.arrayBuffer()) : zip;
  return unzipGuardedSync(bytes, limits);
}

/** fflate's zipSync off the main thread. The input arrays are copied to the worker, not moved. */
export async function zipOffThread(tree: Zippable): Promise<Uint8Array> {
  const w = startWorker();
  if (w) {
    try {
      const r = await call(w, { id: nextId++, op: 'zip', tree });
      if (!r.ok) rethrow(r);
      if ('zip' in r) return r.zip;
    } catch (e) {
      if (!broken) throw e;
    }
  }
  return zipSync(tree);
}

/**
 * Unzips (unless given the files), parses the mlruns tree and its registry and hashes what the
 * writer makes of it (`prepareMlruns`), off the main thread: same results and same errors
 * (MlflowError for the zip guards, MlrunsParseError naming the file) as on the calling thread.
 */
export async function prepareMlrunsOffThread(
  source: Uint8Array | Blob | Map<string, Uint8Array>,
  options: { limits?: Partial<ZipLimits>; registry: boolean },
): Promise<PreparedMlruns> {
  const limits = options.limits ?? {};
  const w = startWorker();
  if (w) {
    const id = nextId++;
    const received: PreparedPart[] = [];
    parts.set(id, received);
    try {
      const r = await call(w, {
        id,
        op: 'prepare-mlruns',
        source,
        limits,
        registry: options.registry,
      });
      if (!r.ok) rethrow(r);
      if ('prepared' in r) return joinPrepared(r.prepared, received);
    } catch (e) {
      if (e instanceof MlflowError || e instanceof MlrunsParseError || !broken) throw e;
    } finally {
      parts.delete(id);
    }
  }
  const files =
    source instanceof Map
      ? source
      : unzipGuardedSync(
          source instanceof Blob ? new Uint8Array(await source.arrayBuffer()) : source,
          limits,
        );
  return prepareMlruns(files, { registry: options.registry });
}

/**
 * An mlruns zip written from stored entities (`buildMlrunsFiles`, then zipped), off the main
 * thread. The input's arrays are copied to the worker, not moved.
 */
export async function exportMlrunsOffThread(input: MlrunsExportInput): Promise<Uint8Array> {
  const w = startWorker();
  if (w) {
    try {
      const r = await call(w, { id: nextId++, op: 'export-mlruns', input });
      if (!r.ok) rethrow(r);
      if ('zip' in r) return r.zip;
    } catch (e) {
      if (!broken) throw e;
    }
  }
  return zipSync(mlrunsZippable(await buildMlrunsFiles(input)));
}
