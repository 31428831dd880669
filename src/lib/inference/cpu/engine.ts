// The CPU decoder engine: reads the same Phi-3 ONNX files the onnxruntime engines read (either
// layout), recognises the decoder graph, lays its int4 weights out in one WebAssembly.Memory and
// runs every step with the project's own wasm SIMD kernels. Served behind the common Engine
// interface, so the generation loop, stop handling and signature adapters work unchanged.
import {
  collectEosIds,
  loadTokenizer,
  progressFor,
  type Engine,
  type LoadProgress,
} from '../engine.ts';
import { readJson, type ModelFiles } from '../engines/files.ts';
import { parseGenaiConfig } from '../engines/ort-genai.ts';
import type { CausalLM } from '../generate.ts';
import type { GenerationParams } from '../protocol.ts';
import { InferenceError } from '../protocol.ts';
import { checkWasmFit } from '../wasm-fit.ts';
import {
  Arena,
  compileKernels,
  createMemory,
  fetchKernel,
  instantiateKernels,
  MAX_PAGES,
  PAGE,
  type KernelExports,
  type KernelLoader,
  type KernelSet,
  type KernelVariant,
} from './kernels.ts';
import { DataType, OnnxFormatError, parseOnnx, type OnnxTensor } from './onnx-graph.ts';
import {
  recognisePhi3,
  UnsupportedGraphError,
  type Phi3Graph,
  type Q4Weight,
} from './phi3-graph.ts';
import {
  collect,
  halfToFloat,
  intoArena,
  readTensors,
  toFloat32,
  type TensorRead,
} from './weights.ts';
import { browserThread, CONTROL_INTS, ThreadPool, type ThreadHandle } from './threads.ts';

// What the inference worker needs besides loadCpuEngine, from this one module.
export { KernelSupportError } from './kernels.ts';
export { UnsupportedGraphError } from './phi3-graph.ts';
export { defaultThreadCount } from './threads.ts';

export interface CpuEngineOptions {
  /**
   * `auto` (default): relaxed SIMD where this engine has it and it matches SIMD128 on a test
   * matmul at start-up, else SIMD128.
   */
  variant?: KernelVariant | 'auto';
  /**
   * `int8` (default) quantises activations per block of 32 like onnxruntime's accuracy level 4;
   * `f32` keeps them in fp32 (slower; for verifying the int8 path).
   */
  activations?: 'int8' | 'f32';
  /** Caps the context (and so the KV cache's memory); default: what the model supports and fits. */
  maxContext?: number;
  /**
   * The KV cache's element type. `auto` (default): fp32 when the context asked for (the model's,
   * or maxContext) fits wasm32's 4 GiB that way, else fp16, which holds twice the tokens (the
   * full-size Phi-3-mini: about 2480 tokens in fp32, its whole 4096 in fp16).
   */
  kvCache?: KvCacheType | 'auto';
  /** Web layout weight file; default q4 (fp32 scales) when present, else q4f16. */
  webDtype?: 'q4' | 'q4f16';
  /**
   * Threads sharing the work (rows of each matmul, heads of attention), the engine's own
   * included; more than 1 needs a shared memory (a cross-origin isolated page). Default 1.
   */
  threads?: number;
  /** Starts one helper thread; default: a module worker (browsers). */
  spawnThread?: () => ThreadHandle;
  loadKernel?: KernelLoader;
  onProgress?: LoadProgress;
}

export type KvCacheType = 'f32' | 'f16';

export interface CpuEngineInfo {
  variant: KernelVariant;
  /** The start-up check of relaxed SIMD (see KernelSet.relaxed). */
  relaxed: KernelSet['relaxed'];
  activations: 'int8' | 'f32';
  threads: number;
  /** Tokens the KV cache holds (the engine's context length). */
  contextCapacity: number;
  kvCache: KvCacheType;
  /** Bytes of wasm memory in use after loading. */
  wasmBytes: number;
  /** int4 weight and scale bytes read per decoded token. */
  weightBytesPerToken: number;
  graph: string;
}

export interface CpuEngine extends Engine {
  readonly cpu: CpuEngineInfo;
}

/** Prompt rows processed per pass (bounds the activation buffers). */
const CHUNK = 64;
/** Kept free below wasm32's 4 GiB for the JS side's needs while serving. */
const HEADROOM = 16 * PAGE;

interface MatW {
  w: number;
  s: number;
  k: number;
  n: number;
  nb: number;
}

interface LayerW {
  inputNorm: number;
  qkv: MatW;
  o: MatW;
  postNorm: number;
  /** gate rows then up rows, one matmul */
  gateUp: MatW;
  down: MatW;
  kCache: number;
  vCache: number;
}

type Obj = Record<string, unknown>;

function generationDefaults(gen: Obj): GenerationParams {
  const num = (k: string) => (typeof gen[k] === 'number' ? (gen[k] as number) : undefined);
  const d: GenerationParams = {
    temperature: gen.do_sample === true ? (num('temperature') ?? 1) : 0,
  };
  if (gen.do_sample === true && num('top_k') !== undefined) d.top_k = num('top_k');
  if (gen.do_sample === true && num('top_p') !== undefined) d.top_p = num('top_p');
  if (num('repetition_penalty') !== undefined) d.repetition_penalty = num('repetition_penalty');
  return d;
}

function bytesOf(t: OnnxTensor): number {
  return t.data.kind === 'inline' ? t.data.bytes.length : t.data.length;
}

/** Reads and recognises the graph; UnsupportedGraphError means "serve it with onnxruntime". */
export async function recogniseModel(files: ModelFiles, graphPath: string): Promise<Phi3Graph> {
  const bytes = await files.bytes(graphPath);
  try {
    return recognisePhi3(parseOnnx(bytes, graphPath), graphPath);
  } catch (e) {
    if (e instanceof OnnxFormatError) {
      throw new InferenceError('load-failed', `${files.name}: ${e.message}`, { cause: e });
    }
    throw e;
  }
}

/**
 * Loads a Phi-3 model folder (genai or web layout) on the CPU decoder. Throws
 * UnsupportedGraphError for graphs it does not recognise; InferenceError for broken files.
 */
export async function loadCpuEngine(
  files: ModelFiles,
  opts: CpuEngineOptions = {},
): Promise<CpuEngine> {
  let graphPath: string;
  let layout: 'genai' | 'web';
  let dtype: string;
  let eosLists: unknown[];
  let defaults: GenerationParams;
  let configContext = Infinity;
  if (await files.has('genai_config.json')) {
    const config = parseGenaiConfig(await readJson(files, 'genai_config.json'));
    if (config.type !== 'phi3' && config.type !== 'phi3small' && config.type !== 'unknown') {
      throw new UnsupportedGraphError(`${files.name}: model type ${config.type} is not Phi-3`);
    }
    graphPath = config.graph;
    layout = 'genai';
    dtype = 'int4';
    eosLists = [config.eosTokenIds];
    defaults = config.search;
    configContext = config.layout.contextLength;
  } else if (await files.has('config.json')) {
    const config = await readJson(files, 'config.json');
    const gen = (await files.has('generation_config.json'))
      ? await readJson(files, 'generation_config.json')
      : {};
    const want = opts.webDtype ?? ((await files.has('onnx/model_q4.onnx')) ? 'q4' : 'q4f16');
    graphPath = `onnx/model_${want}.onnx`;
    if (!(await files.has(graphPath))) {
      throw new InferenceError('load-failed', `${files.name}: ${graphPath} is missing`);
    }
    layout = 'web';
    dtype = want;
    eosLists = [gen.eos_token_id, config.eos_token_id];
    defaults = generationDefaults(gen);
    if (Number.isInteger(config.max_position_embeddings)) {
      configContext = config.max_position_embeddings as number;
    }
  } else {
    throw new InferenceError(
      'load-failed',
      `${files.name}: neither genai_config.json nor config.json: not a model folder`,
    );
  }

  const g = await recogniseModel(files, graphPath);
  const tokenizer = await loadTokenizer(files);
  const threads = Math.max(1, Math.floor(opts.threads ?? 1));
  const kernels = await compileKernels(opts.loadKernel ?? fetchKernel, {
    shared: threads > 1,
    variant: opts.variant ?? 'auto',
  });
  const activations = opts.activations ?? 'int8';
  const dir = graphPath.includes('/') ? graphPath.slice(0, graphPath.lastIndexOf('/') + 1) : '';
  const lm = await CpuCausalLM.create(files, dir, g, kernels, {
    activations,
    contextLimit: Math.min(configContext, g.maxPositions, opts.maxContext ?? Infinity),
    kvCache: opts.kvCache ?? 'auto',
    onProgress: opts.onProgress,
    threads,
    spawnThread: opts.spawnThread ?? browserThread,
  });
  return {
    lm,
    tokenizer,
    eosIds: collectEosIds(tokenizer, ...eosLists),
    layout,
    dtype,
    defaults,
    dispose: () => lm.dispose(),
    cpu: {
      variant: kernels.variant,
      relaxed: kernels.relaxed,
      activations,
      threads,
      contextCapacity: lm.contextLength,
      kvCache: lm.kvCache,
      wasmBytes: lm.wasmBytes,
      weightBytesPerToken: lm.weightBytesPerToken,
      graph: graphPath,
    },
  };
}

/**
 * Picks the KV cache's element type and the context it holds in `room` bytes (what wasm32 leaves
 * after the weights and buffers). Per token the cache takes keys and values of every layer, and
 * each thread's attention scores take 4 bytes. `auto` keeps fp32 when the asked-for context fits
 * that way, else takes fp16 (half the bytes).
 */
export function planKvCache(p: {
  room: number;
  layers: number;
  kvHeads: number;
  headSize: number;
  threads: number;
  context: number;
  want: KvCacheType | 'auto';
}): { kvCache: KvCacheType; capacity: number; perToken: (t: KvCacheType) => number } {
  const perToken = (t: KvCacheType) =>
    p.layers * 2 * p.kvHeads * p.headSize * (t === 'f16' ? 2 : 4) + 4 * p.threads;
  const fits = (t: KvCacheType) => Math.max(0, Math.floor(p.room / perToken(t)));
  const kvCache: KvCacheType =
    p.want !== 'auto' ? p.want : fits('f32') >= p.context ? 'f32' : 'f16';
  return { kvCache, capacity: Math.min(p.context, fits(kvCache)), perToken };
}

/** The decoder itself: weights, KV cache and activation buffers in one wasm memory. */
export class CpuCausalLM implements CausalLM {
  private past = 0;
  private disposed = false;

  private constructor(
    private readonly g: Phi3Graph,
    private readonly k: KernelExports,
    private readonly arena: Arena,
    private readonly layers: LayerW[],
    private readonly lmHead: MatW,
    private readonly finalNorm: number,
    private readonly cos: number,
    private readonly sin: number,
    private readonly embed: Float32Array | Uint16Array,
    private readonly capacity: number,
    private readonly bufs: Record<
      | 'x'
      | 'normed'
      | 'qkv'
      | 'attn'
      | 'proj'
      | 'gateUp'
      | 'act'
      | 'xq'
      | 'xs'
      | 'xc'
      | 'xf'
      | 'logits'
      | 'scores',
      number
    >,
    private readonly activations: 'int8' | 'f32',
    readonly weightBytesPerToken: number,
    private readonly pool: ThreadPool | null,
    readonly kvCache: KvCacheType,
  ) {}

  static async create(
    files: ModelFiles,
    dir: string,
    g: Phi3Graph,
    kernels: KernelSet,
    o: {
      activations: 'int8' | 'f32';
      contextLimit: number;
      kvCache: KvCacheType | 'auto';
      onProgress?: LoadProgress | undefined;
      threads: number;
      spawnThread: () => ThreadHandle;
    },
  ): Promise<CpuCausalLM> {
    const H = g.hidden;
    const hs = g.headSize;
    const qkvN = (g.heads + 2 * g.kvHeads) * hs;
    const I = g.intermediate;
    const maxK = Math.max(H, I);
    const nbMax = Math.ceil(maxK / 32);
    const qb = kernels.variant === 'relaxed' ? 32 : 64;

    // Weight bytes as laid out here (scales always fp32).
    const q4Bytes = (w: Q4Weight) => w.n * Math.ceil(w.k / 32) * (16 + 4);
    let weightBytes = q4Bytes(g.lmHead);
    for (const l of g.layers) {
      for (const w of [...l.qkv, l.o, l.gate, l.up, l.down]) weightBytes += q4Bytes(w);
    }
    const smallBytes =
      (g.layers.length * 2 + 1) * H * 4 + 2 * g.maxPositions * (hs / 2) * 4 + 64 * 64;
    const scratchBytes =
      4 * (CHUNK * (3 * H + qkvN + 3 * I) + g.vocab) +
      CHUNK * nbMax * (qb + 8) +
      (o.activations === 'f32' ? CHUNK * nbMax * 128 : 0) +
      64 * 16 +
      CONTROL_INTS * 4;
    const fixed = PAGE + weightBytes + smallBytes + scratchBytes;
    const room = MAX_PAGES * PAGE - HEADROOM - fixed;
    const { kvCache, capacity, perToken } = planKvCache({
      room,
      layers: g.layers.length,
      kvHeads: g.kvHeads,
      headSize: hs,
      threads: o.threads,
      context: o.contextLimit,
      want: o.kvCache,
    });
    const elem = kvCache === 'f16' ? 2 : 4;
    if (!(capacity >= 16)) {
      checkWasmFit({
        weightBytes,
        minKvBytes: 16 * perToken(kvCache),
        overheadBytes: fixed - weightBytes + HEADROOM,
        limitBytes: MAX_PAGES * PAGE,
      });
      throw new InferenceError('too-large', 'The model does not fit in wasm32 memory');
    }
    const total = fixed + capacity * perToken(kvCache);
    const memory = createMemory(Math.ceil(total / PAGE), kernels.shared);
    const arena = new Arena(memory);
    const k = instantiateKernels(kernels, memory);

    const reads: TensorRead[] = [];
    const floats = (t: OnnxTensor, count: number): number => {
      const ptr = arena.alloc(count * 4);
      reads.push(collect(t, (b) => arena.f32(ptr, count).set(toFloat32(b, t.dataType))));
      return ptr;
    };
    /** Several MatMulNBits weights with the same K as one matrix (rows stacked). */
    const mat = (parts: Q4Weight[]): MatW => {
      const kk = parts[0]!.k;
      const nb = Math.ceil(kk / 32);
      const n = parts.reduce((a, p) => a + p.n, 0);
      const w = arena.alloc(n * nb * 16);
      const s = arena.alloc(n * nb * 4);
      let row = 0;
      for (const p of parts) {
        reads.push(intoArena(p.packed, arena, w + row * nb * 16));
        const at = s + row * nb * 4;
        const count = p.n * nb;
        reads.push(
          collect(p.scales, (b) => arena.f32(at, count).set(toFloat32(b, p.scales.dataType))),
        );
        row += p.n;
      }
      return { w, s, k: kk, n, nb };
    };

    const layers: LayerW[] = g.layers.map((l) => ({
      inputNorm: floats(l.inputNorm, H),
      qkv: mat(l.qkv),
      o: mat([l.o]),
      postNorm: floats(l.postNorm, H),
      gateUp: mat([l.gate, l.up]),
      down: mat([l.down]),
      kCache: 0,
      vCache: 0,
    }));
    const lmHead = mat([g.lmHead]);
    const finalNorm = floats(g.finalNorm, H);
    const half = hs / 2;
    const cos = floats(g.cos, g.maxPositions * half);
    const sin = floats(g.sin, g.maxPositions * half);
    let embed: Float32Array | Uint16Array = new Float32Array(0);
    reads.push(
      collect(g.embed, (b) => {
        if (g.embed.dataType === DataType.FLOAT)
          embed = new Float32Array(b.buffer, b.byteOffset, b.length / 4);
        else embed = new Uint16Array(b.buffer, b.byteOffset, b.length / 2);
      }),
    );
    if (bytesOf(g.embed) % 4 !== 0 && g.embed.dataType === DataType.FLOAT) {
      throw new InferenceError('load-failed', `${g.embed.name}: truncated`);
    }
    for (const l of layers) {
      l.kCache = arena.alloc(g.kvHeads * capacity * hs * elem);
      l.vCache = arena.alloc(g.kvHeads * capacity * hs * elem);
    }
    const bufs = {
      x: arena.alloc(CHUNK * H * 4),
      normed: arena.alloc(CHUNK * H * 4),
      qkv: arena.alloc(CHUNK * qkvN * 4),
      attn: arena.alloc(CHUNK * H * 4),
      proj: arena.alloc(CHUNK * H * 4),
      gateUp: arena.alloc(CHUNK * 2 * I * 4),
      act: arena.alloc(CHUNK * I * 4),
      xq: arena.alloc(CHUNK * nbMax * qb),
      xs: arena.alloc(CHUNK * nbMax * 4),
      xc: arena.alloc(CHUNK * nbMax * 4),
      xf: o.activations === 'f32' ? arena.alloc(CHUNK * nbMax * 128) : 0,
      logits: arena.alloc(g.vocab * 4),
      scores: arena.alloc(capacity * 4 * o.threads),
      control: arena.alloc(CONTROL_INTS * 4),
    };

    await readTensors(files, dir, reads, (file) => progressFor(file, o.onProgress)!);
    if (embed.length !== g.vocab * H) {
      throw new InferenceError('load-failed', `${g.embed.name}: expected ${g.vocab} x ${H} values`);
    }
    let pool: ThreadPool | null = null;
    if (o.threads > 1) {
      const helpers: ThreadHandle[] = [];
      try {
        for (let i = 1; i < o.threads; i++) helpers.push(o.spawnThread());
        pool = await ThreadPool.start(k, kernels, memory, bufs.control, helpers);
      } catch (e) {
        for (const t of helpers) t.terminate();
        throw new InferenceError('load-failed', `CPU decoder threads: ${(e as Error).message}`, {
          cause: e,
        });
      }
    }
    return new CpuCausalLM(
      g,
      k,
      arena,
      layers,
      lmHead,
      finalNorm,
      cos,
      sin,
      embed,
      capacity,
      bufs,
      o.activations,
      weightBytes,
      pool,
      kvCache,
    );
  }

  get contextLength(): number {
    return this.capacity;
  }

  get wasmBytes(): number {
    return this.arena.used;
  }

  /** y[m, n] = x[m, k] W; x at `input` (m rows of k floats). */
  private matmul(w: MatW, input: number, m: number, out: number): void {
    const b = this.bufs;
    const p = this.pool;
    if (this.activations === 'f32') {
      this.k.deinterleaveRows(input, m, w.k, b.xf);
      if (p) p.matmulQ4F32(w.w, w.s, b.xf, m, w.nb, w.n, out, w.n);
      else this.k.matmulQ4F32(w.w, w.s, b.xf, m, w.nb, 0, w.n, out, w.n);
    } else {
      this.k.quantizeRows(input, m, w.k, b.xq, b.xs, b.xc);
      if (p) p.matmulQ4(w.w, w.s, b.xq, b.xs, b.xc, m, w.nb, w.n, out, w.n);
      else this.k.matmulQ4(w.w, w.s, b.xq, b.xs, b.xc, m, w.nb, 0, w.n, out, w.n);
    }
  }

  async forward(ids: number[]): Promise<Float32Array> {
    if (this.disposed) throw new InferenceError('not-loaded', 'The CPU decoder was unloaded');
    const g = this.g;
    if (ids.length === 0)
      throw new InferenceError('bad-request', 'forward() needs at least one token');
    if (this.past + ids.length > this.capacity) {
      throw new InferenceError(
        'bad-request',
        `The sequence needs ${this.past + ids.length} tokens; the CPU decoder holds ${this.capacity} here`,
      );
    }
    for (const id of ids) {
      if (!(Number.isInteger(id) && id >= 0 && id < g.vocab)) {
        throw new InferenceError(
          'bad-request',
          `Token id ${id} is outside the vocabulary (0..${g.vocab - 1})`,
        );
      }
    }
    for (let start = 0; start < ids.length; start += CHUNK) {
      this.step(ids.slice(start, start + CHUNK), start + CHUNK >= ids.length);
    }
    return this.arena.f32(this.bufs.logits, g.vocab).slice();
  }

  private step(ids: number[], wantLogits: boolean): void {
    const { g, k, bufs: b } = this;
    const H = g.hidden;
    const hs = g.headSize;
    const m = ids.length;
    const qkvN = (g.heads + 2 * g.kvHeads) * hs;
    const I = g.intermediate;
    const cap = this.capacity;
    const x = this.arena.f32(b.x, m * H);
    for (let r = 0; r < m; r++) {
      const off = ids[r]! * H;
      if (this.embed instanceof Float32Array) x.set(this.embed.subarray(off, off + H), r * H);
      else {
        const e = this.embed;
        for (let i = 0; i < H; i++) x[r * H + i] = halfToFloat(e[off + i]!);
      }
    }
    k.rmsNorm(b.x, this.layers[0]!.inputNorm, b.normed, m, H, g.eps);
    for (let l = 0; l < this.layers.length; l++) {
      const L = this.layers[l]!;
      this.matmul(L.qkv, b.normed, m, b.qkv);
      const inter = g.rotaryInterleaved ? 1 : 0;
      k.rotary(b.qkv, m, qkvN, g.heads, hs, g.rotaryDim, this.past, this.cos, this.sin, inter);
      k.rotary(
        b.qkv + g.heads * hs * 4,
        m,
        qkvN,
        g.kvHeads,
        hs,
        g.rotaryDim,
        this.past,
        this.cos,
        this.sin,
        inter,
      );
      const half = this.kvCache === 'f16' ? 1 : 0;
      const kFrom = b.qkv + g.heads * hs * 4;
      const vFrom = kFrom + g.kvHeads * hs * 4;
      k.cacheRows(kFrom, m, qkvN, g.kvHeads, hs, L.kCache, cap, this.past, half);
      k.cacheRows(vFrom, m, qkvN, g.kvHeads, hs, L.vCache, cap, this.past, half);
      const attnArgs = [
        b.qkv,
        qkvN,
        L.kCache,
        L.vCache,
        b.attn,
        m,
        this.past,
        g.heads,
        g.kvHeads,
        hs,
        cap,
      ] as const;
      if (this.pool) this.pool.attention(...attnArgs, g.scale, b.scores, half);
      else k.attention(...attnArgs, g.scale, 0, g.heads, b.scores, half);
      this.matmul(L.o, b.attn, m, b.proj);
      k.addRmsNorm(b.x, b.proj, L.postNorm, b.normed, m, H, g.eps);
      this.matmul(L.gateUp, b.normed, m, b.gateUp);
      for (let r = 0; r < m; r++) {
        const row = b.gateUp + r * 2 * I * 4;
        k.siluMul(row, row + I * 4, b.act + r * I * 4, I);
      }
      this.matmul(L.down, b.act, m, b.proj);
      const nextNorm = l + 1 < this.layers.length ? this.layers[l + 1]!.inputNorm : this.finalNorm;
      k.addRmsNorm(b.x, b.proj, nextNorm, b.normed, m, H, g.eps);
    }
    this.past += m;
    if (wantLogits) this.matmul(this.lmHead, b.normed + (m - 1) * H * 4, 1, b.logits);
  }

  async reset(): Promise<void> {
    this.past = 0;
  }

  async dispose(): Promise<void> {
    if (!this.disposed) this.pool?.stop();
    this.disposed = true;
    this.past = 0;
  }
}
