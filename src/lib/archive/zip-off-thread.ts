/**
 * Zip work off the main thread. A 2,000-run mlruns zip takes fflate's unzipSync/zipSync several
 * hundred milliseconds, during which a page would not paint or take input; these run the same
 * code in a module worker (`zip-worker.ts`). Where there is no Worker (Node, tests) or the
 * worker cannot start, the work runs on the calling thread instead, with the same results and
 * errors.
 */
import { zipSync, type Zippable } from 'fflate';
import { MlflowError } from '../mlflow/errors.ts';
import { unzipGuardedSync, type ZipLimits } from './mlruns-unzip.ts';
import type { ZipWorkerRequest, ZipWorkerResponse } from './zip-worker-protocol.ts';

let worker: Worker | null = null;
let broken = false;
let nextId = 1;
const waiting = new Map<number, (r: ZipWorkerResponse | Error) => void>();

function startWorker(): Worker | null {
  if (broken || typeof Worker === 'undefined') return null;
  if (worker) return worker;
  try {
    const w = new Worker(new URL('./zip-worker.ts', import.meta.url), {
      type: 'module',
      name: 'tabflow-zip',
    });
    w.onmessage = (ev: MessageEvent<ZipWorkerResponse>) => {
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
