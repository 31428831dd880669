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
    /** 1: the caches hold fp16 */
    half: number,
  ): void;
  /** n floats at src to fp16 at dst (round to nearest even; finite values clamped to +-65504). */
  toHalf(src: number, dst: number, n: number): void;
  /** n fp16 values at src to floats at dst. */
  fromHalf(src: number, dst: number, n: number): void;
  /** Each of m rows' `heads` vectors of headSize floats into a [heads, capacity, headSize] cache. */
  cacheRows(
    src: number,
    m: number,
    rowStride: number,
    heads: number,
    headSize: number,
    cache: number,
    capacity: number,
    pos0: number,
    half: number,
  ): void;
  siluMul(gate: number, up: number, out: number, n: number): void;
  /** A checksum of `bytes` bytes read from `p`: for measuring read bandwidth. */
  readBytes(p: number, bytes: number): number;
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
  /**
   * What became of relaxed SIMD: `verified` (chosen after matching SIMD128 on a test matmul),
   * `mismatch` (the engine has it but computed wrong results, so SIMD128 serves), `unsupported`
   * (the engine rejects the module) or `not-tried` (SIMD128 was asked for).
   */
  readonly relaxed: 'verified' | 'mismatch' | 'unsupported' | 'not-tried';
}

/** This WebAssembly engine cannot run the decoder's kernels at all (no SIMD128). */
export class KernelSupportError extends Error {
  override name = 'KernelSupportError';
}

async function compile(load: KernelLoader, url: URL): Promise<WebAssembly.Module | null> {
  const bytes = (await load(url)) as BufferSource;
  return WebAssembly.validate(bytes) ? WebAssembly.compile(bytes) : null;
}

/**
 * Runs the quantise + int4 matmul kernels of both builds on the same deterministic data (odd
 * sizes, a partial last block, extreme nibbles, a zero scale) and compares. The integer dot
 * products must agree exactly; only the fp32 accumulation may round differently (relaxed_madd
 * may fuse), hence the small relative tolerance. Node 20's experimental relaxed SIMD, for one,
 * computed wrong dot products; such an engine gets SIMD128.
 */
export function relaxedMatchesSimd(
  relaxed: WebAssembly.Module,
  simd: WebAssembly.Module,
  shared: boolean,
): boolean {
  const m = 7; // rows in fours, a pair and an odd one, as prefill splits them
  const k = 200; // 7 blocks, the last one partial
  const n = 13;
  const nb = Math.ceil(k / 32);
  const outs: Float32Array[] = [];
  for (const module of [simd, relaxed]) {
    const memory = createMemory(8, shared);
    const kx = instantiateKernels({ module }, memory);
    const qb = kx.activationBlockBytes();
    const x = PAGE;
    const w = x + m * k * 4;
    const ws = w + n * nb * 16;
    const xq = ws + n * nb * 4;
    const xs = xq + m * nb * qb;
    const xc = xs + m * nb * 4;
    const out = xc + m * nb * 4;
    const buf = memory.buffer;
    const xf = new Float32Array(buf, x, m * k);
    let seed = 12345;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
    for (let i = 0; i < xf.length; i++) xf[i] = i % 37 === 0 ? 100 * rnd() : rnd();
    const wb = new Uint8Array(buf, w, n * nb * 16);
    for (let i = 0; i < wb.length; i++) wb[i] = i % 11 === 0 ? 0xf0 : (Math.abs(rnd()) * 256) | 0;
    const sc = new Float32Array(buf, ws, n * nb);
    for (let i = 0; i < sc.length; i++) sc[i] = i % 9 === 0 ? 0 : 0.01 + Math.abs(rnd()) * 0.1;
    kx.quantizeRows(x, m, k, xq, xs, xc);
    kx.matmulQ4(w, ws, xq, xs, xc, m, nb, 0, n, out, n);
    outs.push(new Float32Array(buf, out, m * n).slice());
  }
  const [a, b] = outs as [Float32Array, Float32Array];
  let scale = 0;
  for (const v of a) scale = Math.max(scale, Math.abs(v));
  for (let i = 0; i < a.length; i++) {
    if (!(Math.abs(a[i]! - b[i]!) <= 1e-5 * scale + 1e-6)) return false;
  }
  return scale > 0;
}

/**
 * Compiles the relaxed-SIMD build where this engine validates it and it matches the SIMD128 build
 * on a test matmul (checked at every start-up), else SIMD128.
 */
export async function compileKernels(
  load: KernelLoader,
  opts: { shared: boolean; variant?: KernelVariant | 'auto' },
): Promise<KernelSet> {
  const want = opts.variant ?? 'auto';
  const simd = await compile(load, kernelUrl('simd', opts.shared));
  if (!simd) {
    throw new KernelSupportError(
      'This WebAssembly engine has no SIMD128, which the CPU decoder needs',
    );
  }
  if (want === 'simd') {
    return { variant: 'simd', shared: opts.shared, module: simd, relaxed: 'not-tried' };
  }
  const relaxed = await compile(load, kernelUrl('relaxed', opts.shared));
  const state = !relaxed
    ? 'unsupported'
    : relaxedMatchesSimd(relaxed, simd, opts.shared)
      ? 'verified'
      : 'mismatch';
  if (state === 'verified') {
    return { variant: 'relaxed', shared: opts.shared, module: relaxed!, relaxed: state };
  }
  if (want === 'relaxed') {
    throw new KernelSupportError(
      state === 'unsupported'
        ? 'This WebAssembly engine has no relaxed SIMD'
        : 'This WebAssembly engine has relaxed SIMD but its results differ from SIMD128',
    );
  }
  return { variant: 'simd', shared: opts.shared, module: simd, relaxed: state };
}

export function instantiateKernels(
  set: Pick<KernelSet, 'module'>,
  memory: WebAssembly.Memory,
): KernelExports {
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
