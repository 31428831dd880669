/**
 * What this browser can do for Tabflow: cross-origin isolation (multi-threaded wasm), WebGPU,
 * and storage. Read by Settings and by the inference engine choice.
 */

export interface WebGpuInfo {
  available: boolean;
  /** Why not, when not available. */
  reason?: string;
  vendor?: string;
  architecture?: string;
  device?: string;
  description?: string;
  isFallbackAdapter?: boolean;
  shaderF16?: boolean;
}

export interface StorageInfo {
  usage: number | null;
  quota: number | null;
  persisted: boolean | null;
  indexedDB?: number;
}

/** Threads onnxruntime-web and the CPU engine use: 1 unless the page is isolated. */
export function wasmThreadCount(): number {
  if (typeof crossOriginIsolated === 'undefined' || !crossOriginIsolated) return 1;
  const cores = typeof navigator !== 'undefined' ? navigator.hardwareConcurrency || 1 : 1;
  return Math.max(1, Math.min(cores, 4));
}

interface GpuAdapterLike {
  features: { has(f: string): boolean };
  info?: {
    vendor?: string;
    architecture?: string;
    device?: string;
    description?: string;
    isFallbackAdapter?: boolean;
  };
  isFallbackAdapter?: boolean;
}

export async function detectWebGpu(): Promise<WebGpuInfo> {
  const gpu = (
    navigator as Navigator & { gpu?: { requestAdapter(): Promise<GpuAdapterLike | null> } }
  ).gpu;
  if (!gpu)
    return { available: false, reason: 'This browser has no WebGPU (navigator.gpu is missing).' };
  try {
    const adapter = await gpu.requestAdapter();
    if (!adapter)
      return { available: false, reason: 'WebGPU is present but no adapter was found.' };
    const info = adapter.info ?? {};
    const result: WebGpuInfo = {
      available: true,
      shaderF16: adapter.features.has('shader-f16'),
      isFallbackAdapter: info.isFallbackAdapter ?? adapter.isFallbackAdapter ?? false,
    };
    if (info.vendor) result.vendor = info.vendor;
    if (info.architecture) result.architecture = info.architecture;
    if (info.device) result.device = info.device;
    if (info.description) result.description = info.description;
    return result;
  } catch (e) {
    return {
      available: false,
      reason: `WebGPU adapter request failed: ${e instanceof Error ? e.message : String(e)}`,
    };
  }
}

export async function storageInfo(): Promise<StorageInfo> {
  const s = navigator.storage;
  if (!s?.estimate) return { usage: null, quota: null, persisted: null };
  const est = (await s.estimate()) as StorageEstimate & { usageDetails?: { indexedDB?: number } };
  const persisted = s.persisted ? await s.persisted() : null;
  const out: StorageInfo = { usage: est.usage ?? null, quota: est.quota ?? null, persisted };
  if (est.usageDetails?.indexedDB !== undefined) out.indexedDB = est.usageDetails.indexedDB;
  return out;
}

/** Asks the browser to keep Tabflow's data when space runs low. Resolves to the outcome. */
export async function requestPersistence(): Promise<boolean> {
  if (!navigator.storage?.persist) return false;
  return navigator.storage.persist();
}
