// Main-thread side of the inference worker: typed requests, streamed updates, crash detection.
import { UpdateStream, newRequestId, type GenerationHandle, type TextGenerator } from './handle.ts';
import {
  InferenceError,
  type CompleteMessage,
  type GenerateInput,
  type GenerationParams,
  type LoadRequest,
  type ProgressMessage,
  type ReadyMessage,
  type StartMessage,
  type WorkerRequest,
  type WorkerResponse,
} from './protocol.ts';

/**
 * ArrayBuffers in `source.files` are transferred to the worker: they are detached (empty) in the
 * caller afterwards, and `reload()` cannot reuse them. Blobs (what the weights store hands out)
 * stay usable and reload freely.
 */
export type LoadOptions = Omit<LoadRequest, 'type' | 'requestId'>;

/** Names of the in-memory files of a load that were transferred away (detached). */
function transferredFiles(options: LoadOptions): string[] {
  if (options.source.kind !== 'files') return [];
  return Object.entries(options.source.files)
    .filter(([, f]) => f instanceof ArrayBuffer && (f as { detached?: boolean }).detached === true)
    .map(([name]) => name);
}
export type ClientState = 'empty' | 'loading' | 'ready' | 'crashed';

export interface InferenceClientOptions {
  /** Defaults to the bundled module worker. */
  createWorker?: () => Worker;
  /**
   * A worker silent for this long while requests are pending is declared hung. Generous because
   * opening a multi-GB session blocks the worker's event loop for a while.
   */
  heartbeatTimeoutMs?: number;
  /** Called when the worker dies or hangs; `reload()` brings the model back. */
  onCrash?: (error: InferenceError) => void;
}

interface Pending {
  onMessage(m: WorkerResponse): void;
  fail(e: InferenceError): void;
}

function defaultWorker(): Worker {
  return new Worker(new URL('./worker.ts', import.meta.url), {
    type: 'module',
    name: 'tabflow-inference',
  });
}

export class InferenceClient implements TextGenerator {
  private worker: Worker | null = null;
  private readonly pending = new Map<string, Pending>();
  private lastBeat = 0;
  private watchdog: ReturnType<typeof setInterval> | null = null;
  private lastLoad: LoadOptions | null = null;
  private readonly createWorker: () => Worker;
  private readonly heartbeatTimeoutMs: number;
  state: ClientState = 'empty';
  ready: ReadyMessage | null = null;
  lastError: InferenceError | null = null;

  constructor(private readonly options: InferenceClientOptions = {}) {
    this.createWorker = options.createWorker ?? defaultWorker;
    this.heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? 60_000;
  }

  /** Loads a model (replacing any loaded one). Resolves when it is warmed up and ready. */
  load(options: LoadOptions, onProgress?: (p: ProgressMessage) => void): Promise<ReadyMessage> {
    this.lastLoad = options;
    this.state = 'loading';
    this.ready = null;
    const requestId = newRequestId('load');
    return new Promise<ReadyMessage>((resolve, reject) => {
      this.pending.set(requestId, {
        onMessage: (m) => {
          if (m.type === 'progress') onProgress?.(m);
          else if (m.type === 'ready') {
            this.pending.delete(requestId);
            this.state = 'ready';
            this.ready = m;
            resolve(m);
          } else if (m.type === 'error') {
            this.pending.delete(requestId);
            this.state = 'empty';
            reject(new InferenceError(m.code, m.message));
          }
        },
        fail: reject,
      });
      this.send({ type: 'load', requestId, ...options });
    });
  }

  /** Replaces a crashed (or healthy) worker with a fresh one and loads the last model again. */
  async reload(onProgress?: (p: ProgressMessage) => void): Promise<ReadyMessage> {
    this.restart();
    if (!this.lastLoad) throw new InferenceError('not-loaded', 'No model was loaded before');
    const gone = transferredFiles(this.lastLoad);
    if (gone.length) {
      throw new InferenceError(
        'not-loaded',
        `The model's in-memory files (${gone.join(', ')}) were handed to the worker that stopped; load them again`,
      );
    }
    return this.load(this.lastLoad, onProgress);
  }

  generate(input: GenerateInput, params: GenerationParams = {}): GenerationHandle {
    const requestId = newRequestId('gen');
    const updates = new UpdateStream();
    let resolveStart!: (s: StartMessage) => void;
    let resolveDone!: (c: CompleteMessage) => void;
    let rejectDone!: (e: unknown) => void;
    const started = new Promise<StartMessage>((r) => (resolveStart = r));
    const result = new Promise<CompleteMessage>((res, rej) => {
      resolveDone = res;
      rejectDone = rej;
    });
    const finish = (e?: InferenceError) => {
      this.pending.delete(requestId);
      resolveStart({ type: 'start', requestId, promptTokens: 0 });
      updates.close(e);
      if (e) rejectDone(e);
    };
    this.pending.set(requestId, {
      onMessage: (m) => {
        if (m.type === 'start') resolveStart(m);
        else if (m.type === 'update') updates.push(m);
        else if (m.type === 'complete') {
          finish();
          resolveDone(m);
        } else if (m.type === 'error') finish(new InferenceError(m.code, m.message));
      },
      fail: (e) => finish(e),
    });
    // Nobody may await `result` when only iterating; keep that rejection from going unhandled.
    result.catch(() => undefined);
    this.send({ type: 'generate', requestId, input, params });
    return {
      requestId,
      started,
      result,
      interrupt: () => this.interrupt(requestId),
      [Symbol.asyncIterator]: () => updates[Symbol.asyncIterator](),
    };
  }

  /** Stops one generation, or all of them. */
  interrupt(target?: string): void {
    if (!this.worker) return;
    this.post({ type: 'interrupt', requestId: newRequestId('int'), ...(target ? { target } : {}) });
  }

  unload(): Promise<void> {
    const requestId = newRequestId('unload');
    this.lastLoad = null;
    return new Promise((resolve, reject) => {
      this.pending.set(requestId, {
        onMessage: (m) => {
          if (m.type === 'unloaded') {
            this.pending.delete(requestId);
            this.state = 'empty';
            this.ready = null;
            resolve();
          }
        },
        fail: reject,
      });
      this.send({ type: 'unload', requestId });
    });
  }

  /** Diagnostics for tests: makes the worker throw an uncaught error or hang. */
  simulateCrash(mode: 'uncaught' | 'hang'): void {
    this.send({ type: 'simulate-crash', requestId: newRequestId('crash'), mode });
  }

  /** Terminates the worker (pending requests fail with `worker-crashed`); the next request spawns a new one. */
  restart(): void {
    this.teardown(new InferenceError('worker-crashed', 'The inference worker was restarted'));
    this.state = 'empty';
    this.ready = null;
  }

  dispose(): void {
    this.teardown(new InferenceError('worker-crashed', 'The inference client was disposed'));
  }

  private send(m: WorkerRequest): void {
    this.ensureWorker();
    this.post(m);
  }

  private post(m: WorkerRequest): void {
    // ArrayBuffers of a model move to the worker instead of being copied (a multi-GB clone would
    // double the page's memory, or fail). Blobs need nothing: they cross by reference.
    const transfer =
      m.type === 'load' && m.source.kind === 'files'
        ? Object.values(m.source.files).filter((f): f is ArrayBuffer => f instanceof ArrayBuffer)
        : [];
    this.worker!.postMessage(m, transfer);
  }

  private ensureWorker(): void {
    if (this.worker) return;
    const w = this.createWorker();
    this.worker = w;
    this.lastBeat = Date.now();
    w.onmessage = (ev: MessageEvent<WorkerResponse>) => {
      if (this.worker !== w) return;
      const m = ev.data;
      this.lastBeat = Date.now();
      if (m.type === 'heartbeat') return;
      this.pending.get(m.requestId)?.onMessage(m);
    };
    w.onerror = (ev: ErrorEvent) => {
      ev.preventDefault?.();
      if (this.worker === w)
        this.crash(`The inference worker crashed: ${ev.message || 'unknown error'}`);
    };
    w.onmessageerror = () => {
      if (this.worker === w)
        this.crash('The inference worker sent a message that could not be read');
    };
    this.watchdog = setInterval(() => {
      // A load compiles wasm and builds sessions in long synchronous stretches during which the
      // worker cannot beat; it reports its own progress and errors, so only requests are watched.
      if (this.worker !== w || this.pending.size === 0 || this.state === 'loading') {
        this.lastBeat = Math.max(this.lastBeat, Date.now() - this.heartbeatTimeoutMs / 2);
        return;
      }
      if (Date.now() - this.lastBeat > this.heartbeatTimeoutMs) {
        this.crash(
          `The inference worker stopped responding for ${Math.round(this.heartbeatTimeoutMs / 1000)} s (hung or out of memory)`,
        );
      }
    }, 500);
  }

  private crash(message: string): void {
    const error = new InferenceError('worker-crashed', `${message}. Reload the model to continue.`);
    this.lastError = error;
    this.teardown(error);
    this.state = 'crashed';
    this.ready = null;
    this.options.onCrash?.(error);
  }

  private teardown(error: InferenceError): void {
    if (this.watchdog) clearInterval(this.watchdog);
    this.watchdog = null;
    this.worker?.terminate();
    this.worker = null;
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) p.fail(error);
  }
}
