// The compiled decoder kernels (kernels/decoder.ts, AssemblyScript) as typed functions over one
// WebAssembly.Memory, plus the allocator the JS side uses to lay tensors out in that memory.

export type KernelVariant = 'simd' | 'relaxed';

/** The kernels' exports; every pointer is a byte address in the shared memory. */
export interface KernelExports {
  activationBlockBytes(): number;
  isRelaxed(): number;
  quantizeRows(x: number, m: number, k: number, xq: number, xs: number, xc: number): void;
  matmulQ4(
    w: number,
    ws: number,
    xq: number,
    xs: number,
    xc: number,
    m: number,
    nb: number,
    n0: number,
    n1: number,
    out: number,
    outStride: number,
  ): void;
  deinterleaveRows(x: number, m: number, k: number, xf: number): void;
  matmulQ4F32(
    w: number,
    ws: number,
    xf: number,
    m: number,
    nb: number,
    n0: number,
    n1: number,
    out: number,
    outStride: number,
  ): void;
  rmsNorm(x: number, weight: number, out: number, m: number, n: number, eps: number): void;
  addRmsNorm(
    residual: number,
    delta: number,
    weight: number,
    out: number,
    m: number,
    n: number,
    eps: number,
  ): void;
  rotary(
    x: number,
    m: number,
    rowStride: number,
    heads: number,
    headSize: number,
    rotaryDim: number,
    pos0: number,
    cos: number,
    sin: number,
    interleaved: number,
  ): void;
  attention(
    q: number,
    qStride: number,
    kCache: number,
    vCache: number,
    out: number,
    m: number,
    past: number,
    heads: number,
    kvHeads: number,
    headSize: number,
    capacity: number,
    scale: number,
    h0: number,
    h1: number,
    scratch: number,
  ): void;
  siluMul(gate: number, up: number, out: number, n: number): void;
}

/** Where the built modules live; bundlers (Vite) turn these into asset URLs. */
export function kernelUrl(variant: KernelVariant, shared: boolean): URL {
  const name = `decoder-${variant}${shared ? '-shared' : ''}.wasm`;
  switch (name) {
    // Literal `new URL(..., import.meta.url)` expressions, so that Vite finds and copies each file.
    case 'decoder-simd.wasm':
      return new URL('./kernels/build/decoder-simd.wasm', import.meta.url);
    case 'decoder-relaxed.wasm':
      return new URL('./kernels/build/decoder-relaxed.wasm', import.meta.url);
    case 'decoder-simd-shared.wasm':
      return new URL('./kernels/build/decoder-simd-shared.wasm', import.meta.url);
    default:
      return new URL('./kernels/build/decoder-relaxed-shared.wasm', import.meta.url);
  }
}

/** Reads a kernel module's bytes: fetch in browsers; tests in Node pass a file reader. */
export type KernelLoader = (url: URL) => Promise<ArrayBuffer | Uint8Array>;

export const fetchKernel: KernelLoader = async (url) => {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url.href}: HTTP ${r.status}`);
  return r.arrayBuffer();
};

export const PAGE = 65536;
/** wasm32's limit: 65536 pages of 64 KiB. */
export const MAX_PAGES = 65536;
/** The kernels have no static data; the first page stays unused so that 0 is never a tensor. */
const HEAP_START = PAGE;

export interface KernelSet {
  readonly variant: KernelVariant;
  readonly shared: boolean;
  readonly module: WebAssembly.Module;
}

/** Compiles the relaxed variant when this engine validates it, else plain SIMD128. */
export async function compileKernels(
  load: KernelLoader,
  opts: { shared: boolean; variant?: KernelVariant | 'auto' },
): Promise<KernelSet> {
  const want = opts.variant ?? 'auto';
  if (want !== 'simd') {
    const bytes = await load(kernelUrl('relaxed', opts.shared));
    if (WebAssembly.validate(bytes as BufferSource)) {
      return {
        variant: 'relaxed',
        shared: opts.shared,
        module: await WebAssembly.compile(bytes as BufferSource),
      };
    }
    if (want === 'relaxed') throw new Error('This WebAssembly engine has no relaxed SIMD');
  }
  const bytes = await load(kernelUrl('simd', opts.shared));
  if (!WebAssembly.validate(bytes as BufferSource)) {
    throw new Error('This WebAssembly engine has no SIMD128 (needed by the CPU decoder)');
  }
  return {
    variant: 'simd',
    shared: opts.shared,
    module: await WebAssembly.compile(bytes as BufferSource),
  };
}

export function instantiateKernels(set: KernelSet, memory: WebAssembly.Memory): KernelExports {
  const instance = new WebAssembly.Instance(set.module, { env: { memory } });
  return instance.exports as unknown as KernelExports;
}

export function createMemory(pages: number, shared: boolean): WebAssembly.Memory {
  return new WebAssembly.Memory({ initial: pages, maximum: MAX_PAGES, shared });
}

/**
 * A bump allocator over the memory (tensors live as long as the model does). Views are made
 * fresh on every call because growing a memory replaces its buffer.
 */
export class Arena {
  private top = HEAP_START;

  constructor(readonly memory: WebAssembly.Memory) {}

  get used(): number {
    return this.top;
  }

  alloc(bytes: number, align = 64): number {
    const ptr = Math.ceil(this.top / align) * align;
    const end = ptr + Math.max(bytes, 0);
    if (end > MAX_PAGES * PAGE) {
      throw new RangeError(
        `The CPU decoder needs more than wasm32's 4 GiB (asked for ${end} bytes)`,
      );
    }
    const have = this.memory.buffer.byteLength;
    if (end > have) this.memory.grow(Math.ceil((end - have) / PAGE));
    this.top = end;
    return ptr;
  }

  f32(ptr: number, length: number): Float32Array {
    return new Float32Array(this.memory.buffer, ptr, length);
  }

  u8(ptr: number, length: number): Uint8Array {
    return new Uint8Array(this.memory.buffer, ptr, length);
  }
}
