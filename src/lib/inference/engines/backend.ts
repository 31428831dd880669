import type {
  AdapterInfo,
  Backend,
  BackendPreference,
  EngineKind,
  WeightDtype,
} from '../protocol.ts';
import { InferenceError } from '../protocol.ts';

interface GpuAdapterLike {
  features: { has(name: string): boolean };
  info?: {
    vendor?: string;
    architecture?: string;
    description?: string;
    isFallbackAdapter?: boolean;
  };
  isFallbackAdapter?: boolean;
}

/** The WebGPU adapter, if this browser (or worker) has one. */
export async function probeWebGpu(): Promise<AdapterInfo | null> {
  const gpu = (
    globalThis.navigator as
      { gpu?: { requestAdapter(): Promise<GpuAdapterLike | null> } } | undefined
  )?.gpu;
  if (!gpu) return null;
  let adapter: GpuAdapterLike | null = null;
  try {
    adapter = await gpu.requestAdapter();
  } catch {
    return null;
  }
  if (!adapter) return null;
  const info = adapter.info ?? {};
  return {
    vendor: info.vendor ?? '',
    architecture: info.architecture ?? '',
    description: info.description ?? '',
    isFallbackAdapter: info.isFallbackAdapter ?? adapter.isFallbackAdapter ?? false,
    shaderF16: adapter.features.has('shader-f16'),
  };
}

/**
 * onnxruntime's wasm threads need SharedArrayBuffer, which only a cross-origin isolated page
 * has (without it onnxruntime silently runs one thread). Four threads is where int4 decode stops
 * getting faster on the machines measured.
 */
export function wasmThreadCount(): number {
  const isolated = (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true;
  if (!isolated) return 1;
  const cores = globalThis.navigator?.hardwareConcurrency ?? 1;
  return Math.max(1, Math.min(cores, 4));
}

export function chooseBackend(preference: BackendPreference, gpu: AdapterInfo | null): Backend {
  if (preference === 'wasm' || preference === 'cpu' || preference === 'ort-wasm') return 'wasm';
  if (preference === 'webgpu' && !gpu) {
    throw new InferenceError(
      'load-failed',
      'WebGPU was requested but this browser offers no WebGPU adapter; choose WASM (CPU) instead',
    );
  }
  return gpu ? 'webgpu' : 'wasm';
}

/**
 * q4f16 needs `shader-f16` on WebGPU (SwiftShader, for one, lacks it and fails at the first
 * Gather); everywhere else q4 is the safe choice.
 */
export function chooseWebDtype(
  preference: WeightDtype,
  backend: Backend,
  gpu: AdapterInfo | null,
  available: { q4: boolean; q4f16: boolean } = { q4: true, q4f16: true },
): 'q4' | 'q4f16' {
  const f16ok = backend === 'webgpu' && gpu?.shaderF16 === true;
  if (preference === 'q4f16') {
    if (backend === 'webgpu' && !f16ok) {
      throw new InferenceError(
        'load-failed',
        'q4f16 weights need a WebGPU adapter with shader-f16, which this one lacks; use q4',
      );
    }
    return 'q4f16';
  }
  if (preference === 'q4') return 'q4';
  if (f16ok && available.q4f16) return 'q4f16';
  if (available.q4) return 'q4';
  if (available.q4f16 && backend === 'wasm') return 'q4f16';
  throw new InferenceError(
    'load-failed',
    'The model folder has neither onnx/model_q4.onnx nor a q4f16 variant this device can run',
  );
}

/** Whether a preference can use WebGPU at all (the adapter probe is skipped otherwise). */
export function wantsWebGpu(preference: BackendPreference): boolean {
  return preference === 'auto' || preference === 'webgpu';
}

/**
 * The engine to try first, and whether onnxruntime-web wasm may take over when the CPU decoder
 * refuses the model: WebGPU where an adapter exists (or was asked for), else the CPU decoder,
 * with onnxruntime wasm only for graphs the decoder does not recognise.
 */
export function chooseEngine(
  preference: BackendPreference,
  gpu: AdapterInfo | null,
): { engine: EngineKind; fallback: boolean } {
  if (preference === 'ort-wasm') return { engine: 'onnxruntime-wasm', fallback: false };
  if (preference === 'cpu') return { engine: 'cpu-decoder', fallback: false };
  if (chooseBackend(preference, gpu) === 'webgpu') {
    return { engine: 'onnxruntime-webgpu', fallback: false };
  }
  return { engine: 'cpu-decoder', fallback: true };
}

/** Why a CPU engine runs one thread, if that is only for want of cross-origin isolation. */
export function singleThreadReason(threads: number): string | undefined {
  const isolated = (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true;
  if (threads > 1 || isolated) return undefined;
  return 'one thread: the page is not cross-origin isolated, so threads cannot share memory';
}
