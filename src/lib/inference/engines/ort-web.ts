// Browser only: onnxruntime-web with the locally bundled asyncify wasm (the WebGPU build). The
// same `ort.env` object is the one transformers.js uses, so one wasm ships and both engines
// share these settings.
import * as ort from 'onnxruntime-web/webgpu';
import wasmUrl from 'onnxruntime-web/ort-wasm-simd-threaded.asyncify.wasm?url';
import mjsUrl from 'onnxruntime-web/ort-wasm-simd-threaded.asyncify.mjs?url';
import type { Backend } from '../protocol.ts';
import type { ModelFiles } from './files.ts';
import type { OrtRuntime } from './ort-causal-lm.ts';
import { createOrtRuntime, type OrtModule, type WeightsReading } from './ort-runtime.ts';

export function configureOrt(threads: number): void {
  // transformers.js points wasmPaths at a CDN when it is imported: override it every time.
  ort.env.wasm.wasmPaths = { wasm: wasmUrl, mjs: mjsUrl };
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.proxy = false;
}

export function webRuntime(
  files: ModelFiles,
  backend: Backend,
  threads: number,
  weightsReading: WeightsReading = 'on-demand',
): OrtRuntime {
  configureOrt(threads);
  return createOrtRuntime(ort as unknown as OrtModule, files, {
    backend,
    threads,
    executionProviders: [backend],
    weightsReading,
  });
}

/** Calls `onLost` if the GPU device onnxruntime created is lost (driver reset, out of memory). */
export async function watchDeviceLost(onLost: (message: string) => void): Promise<void> {
  try {
    const device = (await (ort.env.webgpu as { device?: unknown }).device) as
      { lost?: Promise<{ message: string; reason?: string }> } | undefined;
    void device?.lost?.then((info) => {
      if (info.reason !== 'destroyed') onLost(info.message || 'GPU device lost');
    });
  } catch {
    // No device yet (the session ran on wasm): nothing to watch.
  }
}
