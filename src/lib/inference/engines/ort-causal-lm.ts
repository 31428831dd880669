import type { CausalLM } from '../generate.ts';
import { InferenceError } from '../protocol.ts';

/*
 * The few parts of onnxruntime's API the engines use, written structurally so that the same
 * code runs on onnxruntime-web (browser, or wasm in Node) and onnxruntime-node (unit tests).
 */

export interface OrtTensorLike {
  readonly type: string;
  readonly dims: readonly number[];
  /** Throws for tensors that live on the GPU. */
  readonly data: unknown;
  readonly location?: string;
  dispose?(): void;
}

export interface OrtValueMetadata {
  readonly name: string;
  readonly isTensor?: boolean;
  readonly type?: string;
  readonly shape?: readonly (number | string)[];
}

export interface OrtSessionLike {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly inputMetadata?: readonly OrtValueMetadata[];
  run(feeds: Record<string, OrtTensorLike>): Promise<Record<string, OrtTensorLike>>;
  release(): Promise<void>;
}

export interface SessionRequest {
  /** Graph path within the model folder. */
  graph: string;
  /** External data files as named inside the graph (relative to the graph's folder). */
  externalData: string[];
  /** Outputs to keep in GPU memory (the KV cache on WebGPU). */
  gpuOutputs?: string[];
  onProgress?: (file: string, loaded: number, total: number) => void;
}

/** A session factory: one per backend (onnxruntime-web WebGPU/WASM, onnxruntime-node CPU). */
export interface OrtRuntime {
  readonly backend: 'webgpu' | 'wasm' | 'cpu';
  readonly threads: number;
  createSession(request: SessionRequest): Promise<OrtSessionLike>;
  tensor(
    type: 'int64' | 'float32' | 'float16',
    data: unknown,
    dims: readonly number[],
  ): OrtTensorLike;
}

export interface KvLayout {
  inputIds: string;
  attentionMask: string;
  /** Fed only when the graph declares it (GroupQueryAttention graphs derive positions themselves). */
  positionIds?: string;
  logits: string;
  pastKeys: string[];
  pastValues: string[];
  presentKeys: string[];
  presentValues: string[];
  numKvHeads: number;
  headSize: number;
  contextLength: number;
}

/** Converts IEEE half floats to float32 (onnxruntime-node hands fp16 over as Uint16Array). */
export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

/** The logits of the last position of a [1, seq, vocab] tensor, as float32. */
export function lastRowLogits(t: OrtTensorLike): Float32Array {
  const dims = t.dims;
  const vocab = dims[dims.length - 1]!;
  const seq = dims.length >= 2 ? dims[dims.length - 2]! : 1;
  const start = (seq - 1) * vocab;
  const data = t.data as ArrayLike<number> & {
    subarray?: (a: number, b: number) => ArrayLike<number>;
  };
  if (data instanceof Float32Array) return data.slice(start, start + vocab);
  const out = new Float32Array(vocab);
  if (data instanceof Uint16Array) {
    for (let i = 0; i < vocab; i++) out[i] = halfToFloat(data[start + i]!);
  } else {
    // Float16Array (Chromium) and anything else array-like.
    for (let i = 0; i < vocab; i++) out[i] = Number(data[start + i]);
  }
  return out;
}

/**
 * The most new tokens one WebGPU run may take. onnxruntime-web's WebGPU kernels (1.31.0-dev)
 * compute this decoder wrongly once a run has 32 or more new tokens: the last position's logits
 * are off by 12-35% of the largest |logit| against onnxruntime-node and onnxruntime-web's own
 * wasm, on the same feeds, while every run of up to 31 tokens agrees to ~5e-7 (prefill or with
 * a past, see tests/browser/webgpu-parity.spec.ts). Longer prompts are therefore fed in chunks,
 * each appended to the KV cache of the ones before.
 */
export const WEBGPU_MAX_TOKENS_PER_RUN = 16;

/** `ids` in consecutive pieces of at most `max` tokens (all of them at once without a max). */
export function chunked(ids: number[], max?: number): number[][] {
  if (!max || ids.length <= max) return [ids];
  const out: number[][] = [];
  for (let i = 0; i < ids.length; i += max) out.push(ids.slice(i, i + max));
  return out;
}

function emptyData(type: string): unknown {
  if (type === 'float16') return new Uint16Array(0);
  if (type === 'float32') return new Float32Array(0);
  throw new InferenceError('load-failed', `Unsupported KV cache type ${type}`);
}

/**
 * A decoder graph with inputs `input_ids`, `attention_mask` (all ones, past + new), optional
 * `position_ids`, and `past_key_values.N.key|value`; outputs `logits` and `present.N.key|value`.
 * The first step starts from empty past tensors [1, n_kv, 0, head_size]; each step's presents
 * are fed back as the next step's past, and GPU-resident ones are disposed once replaced.
 */
export class OrtCausalLM implements CausalLM {
  private past: OrtTensorLike[] | null = null;
  private pastLength = 0;
  private readonly kvType: string;

  constructor(
    private readonly runtime: OrtRuntime,
    private readonly session: OrtSessionLike,
    private readonly layout: KvLayout,
    /** Longer inputs are run in chunks of this many tokens (WEBGPU_MAX_TOKENS_PER_RUN). */
    private readonly maxTokensPerRun?: number,
  ) {
    const meta = session.inputMetadata?.find((m) => m.name === layout.pastKeys[0]);
    this.kvType = meta?.type ?? 'float32';
    for (const name of [
      layout.inputIds,
      layout.attentionMask,
      ...layout.pastKeys,
      ...layout.pastValues,
    ]) {
      if (!session.inputNames.includes(name)) {
        throw new InferenceError(
          'load-failed',
          `The model graph has no input "${name}" (inputs: ${session.inputNames.join(', ')})`,
        );
      }
    }
    for (const name of [layout.logits, ...layout.presentKeys, ...layout.presentValues]) {
      if (!session.outputNames.includes(name)) {
        throw new InferenceError(
          'load-failed',
          `The model graph has no output "${name}" (outputs: ${session.outputNames.join(', ')})`,
        );
      }
    }
  }

  get contextLength(): number {
    return this.layout.contextLength;
  }

  async forward(ids: number[]): Promise<Float32Array> {
    let logits: Float32Array | null = null;
    for (const piece of chunked(ids, this.maxTokensPerRun)) logits = await this.run(piece);
    return logits!;
  }

  private async run(ids: number[]): Promise<Float32Array> {
    const L = this.layout;
    const n = ids.length;
    const total = this.pastLength + n;
    if (total > L.contextLength) {
      throw new InferenceError(
        'bad-request',
        `Sequence longer than the context (${L.contextLength})`,
      );
    }
    const feeds: Record<string, OrtTensorLike> = {
      [L.inputIds]: this.runtime.tensor('int64', BigInt64Array.from(ids, BigInt), [1, n]),
      [L.attentionMask]: this.runtime.tensor('int64', new BigInt64Array(total).fill(1n), [
        1,
        total,
      ]),
    };
    if (L.positionIds && this.session.inputNames.includes(L.positionIds)) {
      const pos = new BigInt64Array(n);
      for (let i = 0; i < n; i++) pos[i] = BigInt(this.pastLength + i);
      feeds[L.positionIds] = this.runtime.tensor('int64', pos, [1, n]);
    }
    const layers = L.pastKeys.length;
    for (let i = 0; i < layers; i++) {
      feeds[L.pastKeys[i]!] = this.past?.[2 * i] ?? this.emptyPast();
      feeds[L.pastValues[i]!] = this.past?.[2 * i + 1] ?? this.emptyPast();
    }
    const out = await this.session.run(feeds);
    const logitsT = out[L.logits]!;
    const logits = lastRowLogits(logitsT);
    logitsT.dispose?.();
    const next: OrtTensorLike[] = [];
    for (let i = 0; i < layers; i++) next.push(out[L.presentKeys[i]!]!, out[L.presentValues[i]!]!);
    this.releasePast();
    this.past = next;
    this.pastLength = total;
    return logits;
  }

  async reset(): Promise<void> {
    this.releasePast();
    this.past = null;
    this.pastLength = 0;
  }

  async dispose(): Promise<void> {
    await this.reset();
    await this.session.release();
  }

  private emptyPast(): OrtTensorLike {
    return this.runtime.tensor(this.kvType as 'float32', emptyData(this.kvType), [
      1,
      this.layout.numKvHeads,
      0,
      this.layout.headSize,
    ]);
  }

  private releasePast(): void {
    // CPU tensors are garbage collected; GPU buffers must be given back explicitly.
    for (const t of this.past ?? []) if (t.location === 'gpu-buffer') t.dispose?.();
  }
}
