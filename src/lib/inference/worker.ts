// The inference worker: loads one model at a time and serves generate requests from it.
// Speaks only the protocol in protocol.ts.
import type { CpuEngine } from './cpu/engine.ts';
import type { Engine, LoadProgress } from './engine.ts';
import {
  chooseBackend,
  chooseEngine,
  chooseWebDtype,
  probeWebGpu,
  singleThreadReason,
  wantsWebGpu,
  wasmThreadCount,
} from './engines/backend.ts';
import { filesFromSource } from './engines/files.ts';
import { loadGenaiEngine } from './engines/ort-genai.ts';
import { errorText, isOutOfMemory } from './engines/ort-runtime.ts';
import { configureOrt, watchDeviceLost, webRuntime } from './engines/ort-web.ts';
import { loadTransformersEngine } from './engines/transformers-web.ts';
import { LocalGenerator } from './local.ts';
import {
  InferenceError,
  type ErrorCode,
  type GenerateRequest,
  type LoadRequest,
  type WorkerRequest,
  type WorkerResponse,
} from './protocol.ts';

const scope = self as unknown as DedicatedWorkerGlobalScope;

function post(m: WorkerResponse): void {
  scope.postMessage(m);
}

let engine: Engine | null = null;
let generator: LocalGenerator | null = null;
let deviceLost: string | null = null;
/** Interrupt flags of generate requests not finished yet, by request id. */
const running = new Map<string, () => void>();
const interruptedEarly = new Set<string>();
/** load/unload/generate run one after another, in arrival order. */
let queue: Promise<unknown> = Promise.resolve();

function enqueue(task: () => Promise<void>): void {
  queue = queue.then(task).catch(() => undefined);
}

function toError(requestId: string, e: unknown, fallback: ErrorCode): WorkerResponse {
  if (e instanceof InferenceError)
    return { type: 'error', requestId, code: e.code, message: e.message };
  let code: ErrorCode = fallback;
  if (deviceLost) code = 'device-lost';
  else if (isOutOfMemory(e)) code = 'oom';
  const message =
    code === 'device-lost'
      ? `The GPU device was lost (${deviceLost}); reload the model`
      : code === 'oom'
        ? `Out of memory: ${errorText(e)}. Try a smaller model, the q4 weights, or close other tabs`
        : errorText(e);
  return { type: 'error', requestId, code, message };
}

async function unloadEngine(): Promise<void> {
  const e = engine;
  engine = null;
  generator = null;
  if (e) await e.dispose().catch(() => undefined);
}

/** The project's own CPU decoder, or the reason it refuses this model (onnxruntime then serves). */
async function loadCpu(
  req: LoadRequest,
  files: ReturnType<typeof filesFromSource>,
  onProgress: LoadProgress,
): Promise<CpuEngine | { refused: string }> {
  // Loaded on demand: WebGPU sessions never pay for the decoder's module.
  const cpu = await import('./cpu/engine.ts');
  try {
    return await cpu.loadCpuEngine(files, {
      threads: cpu.defaultThreadCount(),
      onProgress,
      ...(req.layout === 'web' && req.dtype !== 'auto' ? { webDtype: req.dtype } : {}),
    });
  } catch (e) {
    if (e instanceof cpu.UnsupportedGraphError || e instanceof cpu.KernelSupportError) {
      return { refused: e.message };
    }
    throw e;
  }
}

async function load(req: LoadRequest): Promise<void> {
  const t0 = performance.now();
  await unloadEngine();
  deviceLost = null;
  const files = filesFromSource(req.source, req.modelName);
  const gpu = wantsWebGpu(req.backend) ? await probeWebGpu() : null;
  const backend = chooseBackend(req.backend, gpu);
  const choice = chooseEngine(req.backend, gpu);
  const onProgress = (phase: 'fetch' | 'session', file: string, loaded: number, total: number) =>
    post({ type: 'progress', requestId: req.requestId, phase, file, loaded, total });
  let loaded: Engine | null = null;
  let engineKind = choice.engine;
  let cpuRefusal: string | undefined;
  let threads = wasmThreadCount();
  if (choice.engine === 'cpu-decoder') {
    const r = await loadCpu(req, files, onProgress);
    if ('refused' in r) {
      if (!choice.fallback) {
        throw new InferenceError(
          'load-failed',
          `The CPU decoder cannot serve this model: ${r.refused}`,
        );
      }
      cpuRefusal = r.refused;
      engineKind = 'onnxruntime-wasm';
    } else {
      loaded = r;
      threads = r.cpu.threads;
    }
  }
  if (!loaded) {
    configureOrt(threads);
    if (req.layout === 'genai') {
      loaded = await loadGenaiEngine(
        files,
        webRuntime(files, backend, threads, req.weightsReading),
        onProgress,
      );
    } else {
      const dtype = chooseWebDtype(req.dtype, backend, gpu, {
        q4: await files.has('onnx/model_q4.onnx'),
        q4f16: await files.has('onnx/model_q4f16.onnx'),
      });
      loaded = await loadTransformersEngine(files, { device: backend, dtype, onProgress });
    }
  }
  if (backend === 'webgpu') {
    void watchDeviceLost((message) => {
      deviceLost = message;
      for (const stop of running.values()) stop();
    });
  }
  // One token through the model compiles the kernels, so the first answer is not slow.
  post({ type: 'progress', requestId: req.requestId, phase: 'warmup', loaded: 0, total: 1 });
  const warm = loaded.tokenizer.encode('Hi', { addSpecialTokens: false })[0] ?? 1;
  await loaded.lm.forward([warm]);
  await loaded.lm.reset();
  post({ type: 'progress', requestId: req.requestId, phase: 'warmup', loaded: 1, total: 1 });
  engine = loaded;
  generator = new LocalGenerator(loaded);
  const cpuInfo = 'cpu' in loaded ? (loaded as CpuEngine).cpu : null;
  const single = backend === 'wasm' ? singleThreadReason(threads) : undefined;
  post({
    type: 'ready',
    requestId: req.requestId,
    backend,
    layout: req.layout,
    dtype: loaded.dtype,
    adapter: backend === 'webgpu' ? gpu : null,
    threads,
    crossOriginIsolated:
      (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true,
    modelName: req.modelName ?? files.name,
    loadMs: performance.now() - t0,
    engine: engineKind,
    ...(cpuInfo
      ? {
          cpu: {
            variant: cpuInfo.variant,
            relaxedCheck: cpuInfo.relaxed,
            contextLength: cpuInfo.contextCapacity,
            wasmBytes: cpuInfo.wasmBytes,
            kvCache: cpuInfo.kvCache,
          },
        }
      : {}),
    ...(cpuRefusal !== undefined ? { cpuRefusal } : {}),
    ...(single !== undefined ? { singleThreadReason: single } : {}),
  });
}

async function generate(req: GenerateRequest): Promise<void> {
  const { requestId } = req;
  if (interruptedEarly.delete(requestId)) {
    post({ type: 'start', requestId, promptTokens: 0 });
    post({
      type: 'complete',
      requestId,
      text: '',
      finishReason: 'stop',
      choices: [],
      usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
      timings: { ttftMs: 0, tokensPerSecond: 0, totalMs: 0 },
      interrupted: true,
    });
    return;
  }
  if (!generator) throw new InferenceError('not-loaded', 'No model is loaded; load one first');
  if (deviceLost)
    throw new InferenceError(
      'device-lost',
      `The GPU device was lost (${deviceLost}); reload the model`,
    );
  const handle = generator.generate(req.input, req.params, requestId);
  running.set(requestId, handle.interrupt);
  try {
    void handle.started.then((s) => s.promptTokens > 0 && post(s));
    const pump = (async () => {
      for await (const u of handle) post(u);
    })();
    const done = await handle.result;
    await pump;
    post(done);
  } finally {
    running.delete(requestId);
  }
}

function onRequest(req: WorkerRequest): void {
  switch (req.type) {
    case 'load':
      enqueue(() =>
        load(req).catch((e: unknown) => {
          post(toError(req.requestId, e, 'load-failed'));
        }),
      );
      break;
    case 'generate':
      enqueue(() =>
        generate(req).catch((e: unknown) => {
          post(toError(req.requestId, e, 'internal'));
        }),
      );
      break;
    case 'interrupt':
      if (req.target) {
        const stop = running.get(req.target);
        if (stop) stop();
        else interruptedEarly.add(req.target);
      } else for (const stop of running.values()) stop();
      break;
    case 'unload':
      enqueue(async () => {
        await unloadEngine();
        post({ type: 'unloaded', requestId: req.requestId });
      });
      break;
    case 'simulate-crash':
      if (req.mode === 'uncaught') {
        setTimeout(() => {
          throw new Error('Simulated worker crash');
        });
      } else {
        setTimeout(() => {
          for (;;) {
            // Never returns: the heartbeat stops, as it would in a hung worker.
          }
        });
      }
      break;
    default:
      post({
        type: 'error',
        requestId: (req as { requestId?: string }).requestId ?? '',
        code: 'bad-request',
        message: `Unknown request type ${(req as { type?: unknown }).type}`,
      });
  }
}

// onnxruntime's pthread workers load this same script under a name starting with "em-pthread";
// taking over their onmessage would hang every multi-threaded session.
if (!(typeof scope.name === 'string' && scope.name.startsWith('em-pthread'))) {
  scope.onmessage = (ev: MessageEvent<WorkerRequest>) => onRequest(ev.data);
  setInterval(() => post({ type: 'heartbeat', requestId: '', at: Date.now() }), 1000);
  post({ type: 'heartbeat', requestId: '', at: Date.now() });
}
