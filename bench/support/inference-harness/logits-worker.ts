// Test-only worker: builds the same engines the inference worker builds (onnxruntime-web with
// the project's loop for the genai layout, transformers.js for the web layout) and returns the
// raw logits of a teacher-forced sequence. The worker protocol streams tokens, not logits, so
// the logits checks need this side door; it must stay out of the app.
import type { Engine } from '../../../src/lib/inference/engine.ts';
import {
  chooseWebDtype,
  probeWebGpu,
  wasmThreadCount,
} from '../../../src/lib/inference/engines/backend.ts';
import { filesFromMap } from '../../../src/lib/inference/engines/files.ts';
import { loadGenaiEngine } from '../../../src/lib/inference/engines/ort-genai.ts';
import { configureOrt, webRuntime } from '../../../src/lib/inference/engines/ort-web.ts';
import { loadTransformersEngine } from '../../../src/lib/inference/engines/transformers-web.ts';
import type { AdapterInfo, Backend, ModelLayout } from '../../../src/lib/inference/protocol.ts';

export interface ForcedRun {
  promptIds: number[];
  /** Ids fed after the prompt, one per step; logits are taken before each (steps = force.length + 1). */
  force: number[];
}

export interface LogitsRequest {
  id: number;
  layout: ModelLayout;
  backend: Backend;
  files: Record<string, Blob>;
  runs: ForcedRun[];
}

export interface LogitsReply {
  id: number;
  error?: string;
  dtype?: string;
  threads?: number;
  adapter?: AdapterInfo | null;
  /** Per run: steps x vocab logits, row-major. */
  logits?: Float32Array[];
}

interface WorkerScope {
  name?: string;
  onmessage: ((ev: MessageEvent<LogitsRequest>) => void) | null;
  postMessage(m: LogitsReply, transfer?: Transferable[]): void;
}
const scope = self as unknown as WorkerScope;

async function build(req: LogitsRequest): Promise<{ engine: Engine; gpu: AdapterInfo | null }> {
  const files = filesFromMap('fixture', req.files);
  const threads = wasmThreadCount();
  configureOrt(threads);
  const gpu = req.backend === 'webgpu' ? await probeWebGpu() : null;
  if (req.backend === 'webgpu' && !gpu) throw new Error('no WebGPU adapter in this worker');
  if (req.layout === 'genai') {
    return { engine: await loadGenaiEngine(files, webRuntime(files, req.backend, threads)), gpu };
  }
  const dtype = chooseWebDtype('auto', req.backend, gpu, {
    q4: await files.has('onnx/model_q4.onnx'),
    q4f16: await files.has('onnx/model_q4f16.onnx'),
  });
  return { engine: await loadTransformersEngine(files, { device: req.backend, dtype }), gpu };
}

async function serve(req: LogitsRequest): Promise<LogitsReply> {
  const { engine, gpu } = await build(req);
  try {
    const logits: Float32Array[] = [];
    for (const run of req.runs) {
      await engine.lm.reset();
      const rows = [await engine.lm.forward(run.promptIds)];
      for (const id of run.force) rows.push(await engine.lm.forward([id]));
      const vocab = rows[0]!.length;
      const all = new Float32Array(rows.length * vocab);
      rows.forEach((r, i) => all.set(r, i * vocab));
      logits.push(all);
    }
    return {
      id: req.id,
      dtype: engine.dtype,
      threads: wasmThreadCount(),
      adapter: gpu,
      logits,
    };
  } finally {
    await engine.dispose();
  }
}

// onnxruntime's pthread workers may load this chunk too (name "em-pthread..."): leave them alone.
if (!(typeof scope.name === 'string' && scope.name.startsWith('em-pthread'))) {
  scope.onmessage = (ev) => {
    serve(ev.data).then(
      (r) =>
        scope.postMessage(
          r,
          (r.logits ?? []).map((l) => l.buffer as ArrayBuffer),
        ),
      (e: unknown) =>
        scope.postMessage({
          id: ev.data.id,
          error: e instanceof Error ? `${e.message}\n${e.stack ?? ''}` : String(e),
        }),
    );
  };
}
