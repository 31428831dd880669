// Whether a model can fit in wasm32's linear memory, decided from sizes known before any
// weight is read, so a model that cannot fit is refused with its sizes instead of failing
// half-way through a load with an allocation error.
import { InferenceError } from './protocol.ts';

/** wasm32 addresses at most 4 GiB of linear memory. */
export const WASM32_MAX_BYTES = 4 * 2 ** 30;

export interface WasmFitInput {
  /** Bytes of weights as they will sit in wasm memory. */
  weightBytes: number;
  /** Bytes of the smallest useful KV cache (a few tokens of context). */
  minKvBytes: number;
  /** Other fixed buffers (activations, scratch, headroom kept for the JS side). */
  overheadBytes?: number;
  /** The memory available; wasm32's 4 GiB unless given. */
  limitBytes?: number;
}

const gib = (n: number): string => `${(n / 2 ** 30).toFixed(2)} GiB`;

/** The `too-large` error for a model that cannot fit, or null when it fits. */
export function wasmFitError(input: WasmFitInput): InferenceError | null {
  const overhead = input.overheadBytes ?? 0;
  const limit = input.limitBytes ?? WASM32_MAX_BYTES;
  const needed = input.weightBytes + input.minKvBytes + overhead;
  if (needed <= limit) return null;
  return new InferenceError(
    'too-large',
    `The model needs ${gib(needed)} of WebAssembly memory (weights ${gib(input.weightBytes)}, ` +
      `smallest KV cache ${gib(input.minKvBytes)}${overhead > 0 ? `, buffers ${gib(overhead)}` : ''}); ` +
      `wasm32 has ${gib(WASM32_MAX_BYTES)}. Load it on WebGPU, or use a smaller model`,
  );
}

/** Throws the `too-large` error when the model cannot fit. */
export function checkWasmFit(input: WasmFitInput): void {
  const e = wasmFitError(input);
  if (e) throw e;
}
