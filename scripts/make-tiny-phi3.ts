// Writes a seeded random-weight Phi-3 with the real exports' graph shape, in both layouts the app
// serves: the transformers.js web layout (config.json, tokenizer, onnx/model_q4{,f16}.onnx) and the
// onnxruntime-genai layout (genai_config.json, int4 .onnx + .onnx.data, tokenizer files).
//
//   npx tsx scripts/make-tiny-phi3.ts [--preset tiny|full] [--out DIR] [--seed N]
//                                     [--layouts web,genai] [--web-dtypes q4,q4f16]
//                                     [--genai-filename NAME.onnx]
//                                     [--web-attention gqa|mha] [--kv-heads N] [--web-dir NAME]
// (also `npm run fixtures -- ...`). The full preset defaults to fixtures/generated/phi3-mini-random.
//
// The graph follows onnxruntime-genai's model builder for the CPU int4 path: Gather embedding,
// SimplifiedLayerNormalization / SkipSimplifiedLayerNormalization, MatMulNBits (4 bits, block 32,
// accuracy level 4, symmetric, packed QKV), GroupQueryAttention with rotary inside and cos/sin
// caches, seqlens_k and total_sequence_length derived from attention_mask, SiLU as Sigmoid*Mul.
// The web files use the same graph (GroupQueryAttention, no position_ids: the form of the builder's
// webgpu exports, which transformers.js feeds without position_ids), with fp16 I/O and KV for q4f16.
// `--web-attention mha` writes the web files in the older builder's `-e web` form instead: a
// position_ids input, separate Q/K/V MatMulNBits, com.microsoft RotaryEmbedding on Q and K, and
// com.microsoft MultiHeadAttention with past/present KV and an additive causal mask built from
// attention_mask. MultiHeadAttention has no KV-head sharing, so that form needs as many KV heads
// as attention heads (Phi-3-mini has; the tiny preset needs `--kv-heads 4`), and goes to
// `web-mha/` unless --web-dir says otherwise, e.g.
//   npx tsx scripts/make-tiny-phi3.ts --layouts web --web-attention mha --kv-heads 4 --out DIR
// Every weight is drawn from a generator seeded by (seed, tensor name), so each file is written
// independently, streamed to disk, and all files carry identical weights. The separate Q/K/V
// weights are the row ranges of the packed QKV weight's stream, so both attention forms of one
// shape and seed hold the same numbers.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  DataType,
  ExternalDataFile,
  GraphBuilder,
  float,
  int,
  type DataTypeCode,
  type NodeSpec,
  type ValueInfo,
} from './onnx/onnx.ts';
import {
  addedTokensJson,
  specialTokensMapJson,
  tokenizerConfigJson,
  tokenizerJson,
  trainBpe,
  type TrainedBpe,
} from './tokenizer/bpe.ts';

export interface Phi3Shape {
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  intermediateSize: number;
  vocabSize: number;
  contextLength: number;
  ropeTheta: number;
}

export const PRESETS: Record<'tiny' | 'full', Phi3Shape> = {
  tiny: {
    hiddenSize: 64,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    intermediateSize: 128,
    vocabSize: 32064,
    contextLength: 512,
    ropeTheta: 10000,
  },
  // microsoft/Phi-3-mini-4k-instruct: 32 KV heads (no sharing), head size 96.
  full: {
    hiddenSize: 3072,
    numLayers: 32,
    numHeads: 32,
    numKvHeads: 32,
    intermediateSize: 8192,
    vocabSize: 32064,
    contextLength: 4096,
    ropeTheta: 10000,
  },
};

export type WebDtype = 'q4' | 'q4f16';
/** How the web files express attention: GroupQueryAttention with rotary inside, or MHA + rotary. */
export type WebAttention = 'gqa' | 'mha';

export interface GenerateOptions {
  outDir: string;
  preset?: keyof typeof PRESETS;
  seed?: number;
  layouts?: ('web' | 'genai')[];
  webDtypes?: WebDtype[];
  /** File name of the genai .onnx (genai_config.json's decoder.filename points at it). */
  genaiFilename?: string;
  /** Largest web external-data file before a new `_data_N` chunk starts. */
  webChunkBytes?: number;
  /** Attention form of the web files (default gqa; the genai files are always gqa). */
  webAttention?: WebAttention;
  /** Overrides the preset's KV head count (mha needs it equal to the head count). */
  numKvHeads?: number;
  /** Folder name of the web layout under outDir (default `web`, or `web-mha` for mha). */
  webDir?: string;
  log?: (line: string) => void;
}

export const BLOCK_SIZE = 32;
export const RMS_EPS = 1e-5;
export const EOS_TOKEN_IDS = [32000, 32001, 32007];
// Browsers and wasm32 handle one ArrayBuffer per data file; keep each under 2 GiB.
export const WEB_CHUNK_BYTES = 2 ** 31 - 2 ** 26;
export const DEFAULT_GENAI_FILENAME = 'phi3-tiny-cpu-int4-rtn-block-32-acc-level-4.onnx';
const FULL_GENAI_FILENAME = 'phi3-mini-4k-instruct-cpu-int4-rtn-block-32-acc-level-4.onnx';

// ---------------------------------------------------------------------------------------------
// Deterministic randomness and fp16

function hashSeed(seed: number, name: string): number {
  let h = 0x811c9dc5 ^ seed;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0 || 0x9e3779b9;
}

/** xorshift128: fast, seeded, good enough for weights. */
class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  constructor(seed: number) {
    this.a = seed | 0 || 1;
    this.b = Math.imul(seed, 0x6c078965) ^ 0x2545f491;
    this.c = Math.imul(this.b, 0x6c078965) ^ 0x9e3779b9;
    this.d = Math.imul(this.c, 0x6c078965) ^ 0x7f4a7c15;
    for (let i = 0; i < 16; i++) this.u32();
  }
  u32(): number {
    let t = this.d;
    const s = this.a;
    this.d = this.c;
    this.c = this.b;
    this.b = s;
    t ^= t << 11;
    t ^= t >>> 8;
    this.a = t ^ s ^ (s >>> 19);
    return this.a >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    return this.u32() / 4294967296;
  }
  fill(words: Uint32Array): void {
    for (let i = 0; i < words.length; i++) words[i] = this.u32();
  }
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE half bits of a float, round to nearest even (inputs here are finite and small). */
export function toHalf(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}

export function fromHalf(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Rounds to the nearest fp16 value, so fp32 and fp16 files hold the same numbers. */
const roundHalf = (v: number): number => fromHalf(toHalf(v));

// ---------------------------------------------------------------------------------------------
// Weights

type FloatKind = 'f32' | 'f16';

const ROWS_PER_CHUNK = 4096;

/** Writes `count` floats from `value(i)` in chunks, as fp32 or fp16. */
function streamFloats(
  write: (b: Uint8Array) => void,
  count: number,
  kind: FloatKind,
  value: (rng: Rng) => number,
  rng: Rng,
): void {
  const chunk = 1 << 20;
  for (let start = 0; start < count; start += chunk) {
    const n = Math.min(chunk, count - start);
    if (kind === 'f32') {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = roundHalf(value(rng));
      write(new Uint8Array(out.buffer));
    } else {
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) out[i] = toHalf(value(rng));
      write(new Uint8Array(out.buffer));
    }
  }
}

const floatType = (kind: FloatKind): DataTypeCode =>
  kind === 'f32' ? DataType.FLOAT : DataType.FLOAT16;

/**
 * Maps a random byte to one whose two nibbles avoid 0 (= -8 after the zero point): the values
 * -7..7 then have mean zero. With -8 allowed, every weight has a -0.5 mean, and over 32 layers
 * that bias grows into one direction that dominates the full preset's logits.
 */
const SYMMETRIC_NIBBLES = Uint8Array.from({ length: 256 }, (_, b) => {
  const lo = b & 15 || 8;
  const hi = b >> 4 || 8;
  return lo | (hi << 4);
});

/**
 * Where a weight's random numbers come from: by default its own stream; with `stream`, rows
 * `firstRow..` of another weight's stream (so separate Q/K/V equal the packed QKV's rows).
 */
interface WeightSource {
  stream: string;
  firstRow: number;
}

/**
 * Adds one int4 weight for y = x W with W logically [K, N], stored as MatMulNBits wants it:
 * B uint8 [N, K/32, 16] (two 4-bit values per byte, low nibble first, zero point 8) and one
 * scale per block [N * K/32]. `columnGain(n)` scales output column n.
 */
function addInt4Weight(
  g: GraphBuilder,
  prefix: string,
  k: number,
  n: number,
  kind: FloatKind,
  seed: number,
  columnGain: (col: number) => number = () => 1,
  source: WeightSource = { stream: prefix, firstRow: 0 },
): { qweight: string; scales: string } {
  const blocks = k / BLOCK_SIZE;
  const qweight = g.big(
    `${prefix}.weight_Q4`,
    DataType.UINT8,
    [n, blocks, BLOCK_SIZE / 2],
    (write) => {
      const rng = new Rng(hashSeed(seed, `${source.stream}.weight_Q4`));
      const rowBytes = blocks * (BLOCK_SIZE / 2);
      for (let i = 0; i < (source.firstRow * rowBytes) / 4; i++) rng.u32();
      for (let row = 0; row < n; row += ROWS_PER_CHUNK) {
        const rows = Math.min(ROWS_PER_CHUNK, n - row);
        const words = new Uint32Array((rows * rowBytes) / 4);
        rng.fill(words);
        const bytes = new Uint8Array(words.buffer);
        for (let i = 0; i < bytes.length; i++) bytes[i] = SYMMETRIC_NIBBLES[bytes[i]!]!;
        write(bytes);
      }
    },
  );
  // Nibbles in -7..7 have std ~4.18; scale so each output has unit variance for unit-variance
  // inputs, with some spread between blocks.
  const base = 1 / (4.18 * Math.sqrt(k));
  const scales = g.big(`${prefix}.weight_scales`, floatType(kind), [n * blocks], (write) => {
    const rng = new Rng(hashSeed(seed, `${source.stream}.weight_scales`));
    for (let i = 0; i < source.firstRow * blocks; i++) rng.next();
    let col = 0;
    let inBlock = 0;
    streamFloats(
      write,
      n * blocks,
      kind,
      (r) => {
        const v = base * columnGain(col) * (0.75 + 0.5 * r.next());
        if (++inBlock === blocks) {
          inBlock = 0;
          col++;
        }
        return v;
      },
      rng,
    );
  });
  return { qweight, scales };
}

function matMulNBits(
  g: GraphBuilder,
  name: string,
  input: string,
  w: { qweight: string; scales: string },
  k: number,
  n: number,
): string {
  const out = `${name}/output_0`;
  g.node({
    opType: 'MatMulNBits',
    domain: 'com.microsoft',
    name,
    inputs: [input, w.qweight, w.scales],
    outputs: [out],
    attributes: {
      K: int(k),
      N: int(n),
      bits: int(4),
      block_size: int(BLOCK_SIZE),
      accuracy_level: int(4),
    },
  });
  return out;
}

function addNormWeight(g: GraphBuilder, name: string, size: number, kind: FloatKind, seed: number) {
  return g.big(name, floatType(kind), [size], (write) =>
    streamFloats(write, size, kind, (r) => 0.8 + 0.4 * r.next(), new Rng(hashSeed(seed, name))),
  );
}

// ---------------------------------------------------------------------------------------------
// The decoder graph

export interface GraphOptions {
  shape: Phi3Shape;
  kind: FloatKind;
  seed: number;
  /** Ids whose lm_head columns keep full gain; the rest are damped (see below). */
  liveTokenIds: (id: number) => boolean;
  /** gqa (default): GroupQueryAttention with rotary inside; mha: see the file header. */
  attention?: WebAttention;
}

export function headSize(s: Phi3Shape): number {
  return s.hiddenSize / s.numHeads;
}

/** attention_mask [B, total] -> seqlens_k = sum - 1 (int32 [B]) and total_sequence_length (int32). */
function gqaMaskInputs(g: GraphBuilder): string {
  const m = '/model/attn_mask_reformat/attn_mask_subgraph';
  const axes = g.int64('/model/constants/INT64/[1]', [1]);
  const one = g.int64('/model/constants/INT64/1', [1], []);
  g.node({
    opType: 'ReduceSum',
    name: `${m}/ReduceSum`,
    inputs: ['attention_mask', axes],
    outputs: [`${m}/ReduceSum/output_0`],
    attributes: { keepdims: int(0) },
  });
  g.node({
    opType: 'Sub',
    name: `${m}/Sub`,
    inputs: [`${m}/ReduceSum/output_0`, one],
    outputs: [`${m}/Sub/output_0`],
  });
  g.node({
    opType: 'Cast',
    name: `${m}/Sub/Cast`,
    inputs: [`${m}/Sub/output_0`],
    outputs: [`${m}/seqlens_k`],
    attributes: { to: int(DataType.INT32) },
  });
  g.node({
    opType: 'Shape',
    name: `${m}/Shape`,
    inputs: ['attention_mask'],
    outputs: [`${m}/Shape/output_0`],
  });
  g.node({
    opType: 'Gather',
    name: `${m}/Gather`,
    inputs: [`${m}/Shape/output_0`, one],
    outputs: [`${m}/Gather/output_0`],
    attributes: { axis: int(0) },
  });
  g.node({
    opType: 'Cast',
    name: `${m}/Gather/Cast`,
    inputs: [`${m}/Gather/output_0`],
    outputs: [`${m}/total_seq_len`],
    attributes: { to: int(DataType.INT32) },
  });

  return m;
}

/**
 * The additive attention bias MultiHeadAttention takes, built from attention_mask and the new
 * tokens' count as the builder's mask subgraph does: 0 where query i (at position past + i) may
 * see key j (j <= past + i and attention_mask[j] = 1), the type's lowest value elsewhere, shaped
 * [batch, 1, sequence, total]. Unlike the builder's (which covers a prefill without past or one
 * new token at a time) it also serves a prompt fed in chunks after a past.
 */
function causalMask(g: GraphBuilder, kind: FloatKind): string {
  const m = '/model/attn_mask_reformat/attn_mask_subgraph';
  const T = floatType(kind);
  const zero = g.int64('/model/constants/INT64/0', [0], []);
  const one = g.int64('/model/constants/INT64/1', [1], []);
  const axis1 = g.int64('/model/constants/INT64/[1]', [1]);
  const axes12 = g.int64('/model/constants/INT64/[1, 2]', [1, 2]);
  const scalar = (name: string, v: number) =>
    g.inline(
      name,
      T,
      [],
      kind === 'f32'
        ? new Uint8Array(Float32Array.of(v).buffer)
        : new Uint8Array(Uint16Array.of(toHalf(v)).buffer),
    );
  const open = scalar(`/model/constants/${kind}/0`, 0);
  const closed = scalar(
    `/model/constants/${kind}/lowest`,
    kind === 'f32' ? -3.4028234663852886e38 : -65504,
  );
  const op = (
    opType: string,
    name: string,
    inputs: string[],
    attributes?: NodeSpec['attributes'],
  ) => {
    const out = `${m}/${name}/output_0`;
    g.node({ opType, name: `${m}/${name}`, inputs, outputs: [out], attributes });
    return out;
  };
  const ids = op('Shape', 'Shape', ['input_ids']);
  const seq = op('Gather', 'Gather', [ids, one], { axis: int(0) });
  const mask = op('Shape', 'Shape_1', ['attention_mask']);
  const total = op('Gather', 'Gather_1', [mask, one], { axis: int(0) });
  const past = op('Sub', 'Sub', [total, seq]);
  const rows = op('Range', 'Range', [zero, seq, one]);
  const queryPos = op('Add', 'Add', [rows, past]);
  const queryCol = op('Unsqueeze', 'Unsqueeze', [queryPos, axis1]);
  const keyPos = op('Range', 'Range_1', [zero, total, one]);
  const causal = op('LessOrEqual', 'LessOrEqual', [keyPos, queryCol]);
  const kept = op('Cast', 'Cast', ['attention_mask'], { to: int(DataType.BOOL) });
  const keptRow = op('Unsqueeze', 'Unsqueeze_1', [kept, axes12]);
  const allowed = op('And', 'And', [causal, keptRow]);
  return op('Where', 'Where', [allowed, open, closed]);
}

/**
 * One layer's attention in the builder's MultiHeadAttention form: Q, K, V MatMulNBits (the packed
 * QKV's rows, so the numbers equal the GroupQueryAttention form's), RotaryEmbedding on Q and K fed
 * by position_ids, MultiHeadAttention with the causal bias and past/present KV. Returns its output.
 */
function mhaAttention(
  g: GraphBuilder,
  o: GraphOptions,
  l: number,
  normed: string,
  cos: string,
  sin: string,
  bias: string,
): string {
  const { shape: s, kind, seed } = o;
  const hs = headSize(s);
  const H = s.hiddenSize;
  const p = `/model/layers.${l}`;
  const w = `model.layers.${l}`;
  const stream = `${w}.attn.qkv_proj.MatMul`;
  let firstRow = 0;
  const [q, k, v] = (
    [
      ['q', s.numHeads],
      ['k', s.numKvHeads],
      ['v', s.numKvHeads],
    ] as const
  ).map(([which, heads]) => {
    const n = heads * hs;
    const weight = addInt4Weight(g, `${w}.attn.${which}_proj.MatMul`, H, n, kind, seed, undefined, {
      stream,
      firstRow,
    });
    firstRow += n;
    return matMulNBits(g, `${p}/attn/${which}_proj/MatMul`, normed, weight, H, n);
  }) as [string, string, string];
  const rotary = (which: string, input: string) => {
    const name = `${p}/attn/${which}_rotary/RotaryEmbedding`;
    g.node({
      opType: 'RotaryEmbedding',
      domain: 'com.microsoft',
      name,
      inputs: [input, 'position_ids', cos, sin],
      outputs: [`${name}/output_0`],
      attributes: { interleaved: int(0) },
    });
    return `${name}/output_0`;
  };
  const name = `${p}/attn/MultiHeadAttention`;
  g.node({
    opType: 'MultiHeadAttention',
    domain: 'com.microsoft',
    name,
    inputs: [
      rotary('q', q),
      rotary('k', k),
      v,
      '',
      '',
      bias,
      `past_key_values.${l}.key`,
      `past_key_values.${l}.value`,
    ],
    outputs: [`${name}/output_0`, `present.${l}.key`, `present.${l}.value`],
    attributes: { num_heads: int(s.numHeads), scale: float(1 / Math.sqrt(hs)) },
  });
  return `${name}/output_0`;
}

function buildDecoder(g: GraphBuilder, o: GraphOptions): void {
  const options = o; // `o` is shadowed by each layer's o_proj below
  const { shape: s, kind, seed } = o;
  const hs = headSize(s);
  const H = s.hiddenSize;
  const T = floatType(kind);

  const mha = o.attention === 'mha';
  if (mha && s.numKvHeads !== s.numHeads) {
    throw new Error(
      `MultiHeadAttention needs as many KV heads as attention heads (${s.numKvHeads} vs ${s.numHeads})`,
    );
  }
  g.inputs.push(
    { name: 'input_ids', elemType: DataType.INT64, dims: ['batch_size', 'sequence_length'] },
    {
      name: 'attention_mask',
      elemType: DataType.INT64,
      dims: ['batch_size', 'total_sequence_length'],
    },
  );
  if (mha)
    g.inputs.push({
      name: 'position_ids',
      elemType: DataType.INT64,
      dims: ['batch_size', 'sequence_length'],
    });
  for (let l = 0; l < s.numLayers; l++)
    for (const kv of ['key', 'value'])
      g.inputs.push({
        name: `past_key_values.${l}.${kv}`,
        elemType: T,
        dims: ['batch_size', s.numKvHeads, 'past_sequence_length', hs],
      });
  g.outputs.push({
    name: 'logits',
    elemType: T,
    dims: ['batch_size', 'sequence_length', s.vocabSize],
  });
  for (let l = 0; l < s.numLayers; l++)
    for (const kv of ['key', 'value'])
      g.outputs.push({
        name: `present.${l}.${kv}`,
        elemType: T,
        dims: ['batch_size', s.numKvHeads, 'total_sequence_length', hs],
      } satisfies ValueInfo);

  const m = '/model/attn_mask_reformat/attn_mask_subgraph';
  const maskOut = mha ? causalMask(g, kind) : gqaMaskInputs(g);

  // Rotary caches [context, head_size / 2], as the builder precomputes them.
  const half = hs / 2;
  const cosName = 'cos_cache';
  const sinName = 'sin_cache';
  for (const [name, fn] of [
    [cosName, Math.cos],
    [sinName, Math.sin],
  ] as const) {
    g.big(name, T, [s.contextLength, half], (write) => {
      const vals = new Float32Array(s.contextLength * half);
      for (let p = 0; p < s.contextLength; p++)
        for (let i = 0; i < half; i++) vals[p * half + i] = fn(p / s.ropeTheta ** ((2 * i) / hs));
      if (kind === 'f32') write(new Uint8Array(vals.buffer));
      else write(new Uint8Array(Uint16Array.from(vals, toHalf).buffer));
    });
  }

  const embed = g.big('model.embed_tokens.weight', T, [s.vocabSize, H], (write) =>
    streamFloats(
      write,
      s.vocabSize * H,
      kind,
      (r) => (r.next() * 2 - 1) * Math.sqrt(3),
      new Rng(hashSeed(seed, 'model.embed_tokens.weight')),
    ),
  );
  g.node({
    opType: 'Gather',
    name: '/model/embed_tokens/Gather',
    inputs: [embed, 'input_ids'],
    outputs: ['/model/embed_tokens/Gather/output_0'],
  });

  let residual = '/model/embed_tokens/Gather/output_0';
  let pending: string | null = null; // output of the previous block, not yet added to residual
  const qkvN = (s.numHeads + 2 * s.numKvHeads) * hs;

  const skipNorm = (
    name: string,
    input: string,
    skip: string,
    weight: string,
  ): [string, string] => {
    g.node({
      opType: 'SkipSimplifiedLayerNormalization',
      domain: 'com.microsoft',
      name,
      inputs: [input, skip, weight],
      outputs: [`${name}/output_0`, '', '', `${name}/output_3`],
      attributes: { epsilon: float(RMS_EPS) },
    });
    return [`${name}/output_0`, `${name}/output_3`];
  };

  for (let l = 0; l < s.numLayers; l++) {
    const p = `/model/layers.${l}`;
    const w = `model.layers.${l}`;
    const ln1 = addNormWeight(g, `${w}.input_layernorm.weight`, H, kind, seed);
    let normed: string;
    if (pending === null) {
      normed = `${p}/input_layernorm/LayerNorm/output_0`;
      g.node({
        opType: 'SimplifiedLayerNormalization',
        name: `${p}/input_layernorm/LayerNorm`,
        inputs: [residual, ln1],
        outputs: [normed],
        attributes: { axis: int(-1), epsilon: float(RMS_EPS), stash_type: int(1) },
      });
    } else {
      [normed, residual] = skipNorm(`${p}/input_layernorm/SkipLayerNorm`, pending, residual, ln1);
    }

    let attnOut: string;
    if (mha) attnOut = mhaAttention(g, options, l, normed, cosName, sinName, maskOut);
    else {
      const qkvW = addInt4Weight(g, `${w}.attn.qkv_proj.MatMul`, H, qkvN, kind, seed);
      const qkv = matMulNBits(g, `${p}/attn/qkv_proj/MatMul`, normed, qkvW, H, qkvN);
      attnOut = `${p}/attn/GroupQueryAttention/output_0`;
      g.node({
        opType: 'GroupQueryAttention',
        domain: 'com.microsoft',
        name: `${p}/attn/GroupQueryAttention`,
        inputs: [
          qkv,
          '',
          '',
          `past_key_values.${l}.key`,
          `past_key_values.${l}.value`,
          `${m}/seqlens_k`,
          `${m}/total_seq_len`,
          cosName,
          sinName,
        ],
        outputs: [attnOut, `present.${l}.key`, `present.${l}.value`],
        attributes: {
          num_heads: int(s.numHeads),
          kv_num_heads: int(s.numKvHeads),
          scale: float(1 / Math.sqrt(hs)),
          local_window_size: int(-1),
          softcap: float(0),
          do_rotary: int(1),
          rotary_interleaved: int(0),
        },
      });
    }
    const oW = addInt4Weight(g, `${w}.attn.o_proj.MatMul`, H, H, kind, seed);
    const o = matMulNBits(g, `${p}/attn/o_proj/MatMul`, attnOut, oW, H, H);

    const ln2 = addNormWeight(g, `${w}.post_attention_layernorm.weight`, H, kind, seed);
    const [normed2, residual2] = skipNorm(
      `${p}/post_attention_layernorm/SkipLayerNorm`,
      o,
      residual,
      ln2,
    );
    residual = residual2;

    const I = s.intermediateSize;
    const gateW = addInt4Weight(g, `${w}.mlp.gate_proj.MatMul`, H, I, kind, seed);
    const upW = addInt4Weight(g, `${w}.mlp.up_proj.MatMul`, H, I, kind, seed);
    const gate = matMulNBits(g, `${p}/mlp/gate_proj/MatMul`, normed2, gateW, H, I);
    const up = matMulNBits(g, `${p}/mlp/up_proj/MatMul`, normed2, upW, H, I);
    g.node({
      opType: 'Sigmoid',
      name: `${p}/mlp/act_fn/Sigmoid`,
      inputs: [gate],
      outputs: [`${p}/mlp/act_fn/Sigmoid/output_0`],
    });
    g.node({
      opType: 'Mul',
      name: `${p}/mlp/act_fn/Mul`,
      inputs: [gate, `${p}/mlp/act_fn/Sigmoid/output_0`],
      outputs: [`${p}/mlp/act_fn/Mul/output_0`],
    });
    g.node({
      opType: 'Mul',
      name: `${p}/mlp/Mul`,
      inputs: [`${p}/mlp/act_fn/Mul/output_0`, up],
      outputs: [`${p}/mlp/Mul/output_0`],
    });
    const downW = addInt4Weight(g, `${w}.mlp.down_proj.MatMul`, I, H, kind, seed);
    pending = matMulNBits(g, `${p}/mlp/down_proj/MatMul`, `${p}/mlp/Mul/output_0`, downW, I, H);
  }

  const finalW = addNormWeight(g, 'model.norm.weight', H, kind, seed);
  const [finalNormed] = skipNorm(
    '/model/layers.final_norm_layernorm/SkipLayerNorm',
    pending!,
    residual,
    finalW,
  );
  // Logit spread: live tokens get a gain of 4 so step-0 logits are far from flat; the padding
  // and special ids are damped so greedy output stays readable text, as a trained model's would.
  const lmW = addInt4Weight(g, 'lm_head.MatMul', H, s.vocabSize, kind, seed, (id) =>
    o.liveTokenIds(id) ? 4 : 0.5,
  );
  const logitsRaw = matMulNBits(g, '/lm_head/MatMul', finalNormed, lmW, H, s.vocabSize);
  g.node({
    opType: 'Identity',
    name: '/lm_head/Identity',
    inputs: [logitsRaw],
    outputs: ['logits'],
  });
}

const OPSETS = [
  { domain: '', version: 17 },
  { domain: 'com.microsoft', version: 1 },
];

/**
 * Writes one .onnx file and its external data (`dataName(i)` for chunk i); returns the number
 * of data files written.
 */
function writeOnnx(
  dir: string,
  file: string,
  dataName: (index: number) => string,
  o: GraphOptions,
  maxChunkBytes?: number,
): number {
  const ext = new ExternalDataFile(dir, dataName, maxChunkBytes);
  try {
    const g = new GraphBuilder('main_graph', ext);
    buildDecoder(g, o);
    writeFileSync(join(dir, file), g.toBytes(OPSETS, 'tabflow make-tiny-phi3'));
  } finally {
    ext.close();
  }
  return ext.locations.length;
}

// ---------------------------------------------------------------------------------------------
// Layout files

const json = (value: unknown) => JSON.stringify(value, null, 2) + '\n';

/** `chunks`: number of external-data files per dtype (transformers.js needs the count). */
export function webConfigJson(
  s: Phi3Shape,
  chunks: Partial<Record<WebDtype, number>>,
): Record<string, unknown> {
  return {
    architectures: ['Phi3ForCausalLM'],
    model_type: 'phi3',
    attention_bias: false,
    bos_token_id: 1,
    eos_token_id: 32000,
    pad_token_id: 32000,
    hidden_act: 'silu',
    hidden_size: s.hiddenSize,
    intermediate_size: s.intermediateSize,
    num_attention_heads: s.numHeads,
    num_hidden_layers: s.numLayers,
    num_key_value_heads: s.numKvHeads,
    head_dim: headSize(s),
    max_position_embeddings: s.contextLength,
    original_max_position_embeddings: s.contextLength,
    rms_norm_eps: RMS_EPS,
    rope_scaling: null,
    rope_theta: s.ropeTheta,
    sliding_window: null,
    tie_word_embeddings: false,
    torch_dtype: 'bfloat16',
    use_cache: true,
    vocab_size: s.vocabSize,
    'transformers.js_config': {
      use_external_data_format: Object.fromEntries(
        Object.entries(chunks).map(([d, n]) => [`model_${d}.onnx`, n]),
      ),
      kv_cache_dtype: { q4f16: 'float16', fp16: 'float16' },
    },
  };
}

export function generationConfigJson(): Record<string, unknown> {
  return { bos_token_id: 1, eos_token_id: EOS_TOKEN_IDS, pad_token_id: 32000 };
}

export function genaiConfigJson(s: Phi3Shape, filename: string): Record<string, unknown> {
  return {
    model: {
      bos_token_id: 1,
      context_length: s.contextLength,
      decoder: {
        session_options: { log_id: 'onnxruntime-genai', provider_options: [] },
        filename,
        head_size: headSize(s),
        hidden_size: s.hiddenSize,
        inputs: {
          input_ids: 'input_ids',
          attention_mask: 'attention_mask',
          past_key_names: 'past_key_values.%d.key',
          past_value_names: 'past_key_values.%d.value',
        },
        outputs: {
          logits: 'logits',
          present_key_names: 'present.%d.key',
          present_value_names: 'present.%d.value',
        },
        num_attention_heads: s.numHeads,
        num_hidden_layers: s.numLayers,
        num_key_value_heads: s.numKvHeads,
      },
      eos_token_id: EOS_TOKEN_IDS,
      pad_token_id: 32000,
      type: 'phi3',
      vocab_size: s.vocabSize,
    },
    search: {
      diversity_penalty: 0.0,
      do_sample: false,
      early_stopping: true,
      length_penalty: 1.0,
      max_length: s.contextLength,
      min_length: 0,
      no_repeat_ngram_size: 0,
      num_beams: 1,
      num_return_sequences: 1,
      past_present_share_buffer: true,
      repetition_penalty: 1.0,
      temperature: 1.0,
      top_k: 1,
      top_p: 1.0,
    },
  };
}

function writeTokenizerFiles(dir: string, bpe: TrainedBpe, s: Phi3Shape, withExtras: boolean) {
  writeFileSync(join(dir, 'tokenizer.json'), json(tokenizerJson(bpe)));
  writeFileSync(join(dir, 'tokenizer_config.json'), json(tokenizerConfigJson(s.contextLength)));
  if (withExtras) {
    writeFileSync(join(dir, 'special_tokens_map.json'), json(specialTokensMapJson()));
    writeFileSync(join(dir, 'added_tokens.json'), json(addedTokensJson()));
  }
}

export interface GeneratedPaths {
  web: string;
  genai: string;
  genaiFilename: string;
}

export function generatePhi3(opts: GenerateOptions): GeneratedPaths {
  const presetName = opts.preset ?? 'tiny';
  const s = {
    ...PRESETS[presetName],
    numKvHeads: opts.numKvHeads ?? PRESETS[presetName].numKvHeads,
  };
  const webAttention = opts.webAttention ?? 'gqa';
  const seed = opts.seed ?? 1234;
  const layouts = opts.layouts ?? ['web', 'genai'];
  const webDtypes = opts.webDtypes ?? ['q4', 'q4f16'];
  const genaiFilename =
    opts.genaiFilename ?? (presetName === 'full' ? FULL_GENAI_FILENAME : DEFAULT_GENAI_FILENAME);
  const log = opts.log ?? (() => {});
  if (headSize(s) % 16 !== 0) throw new Error('CPU GroupQueryAttention needs head_size % 16 == 0');
  if (s.hiddenSize % BLOCK_SIZE || s.intermediateSize % BLOCK_SIZE)
    throw new Error(`hidden and intermediate sizes must be multiples of ${BLOCK_SIZE}`);
  if (!(s.numKvHeads > 0 && s.numHeads % s.numKvHeads === 0))
    throw new Error(`${s.numHeads} heads cannot share ${s.numKvHeads} KV heads`);
  if (webAttention === 'mha' && layouts.includes('web') && s.numKvHeads !== s.numHeads) {
    throw new Error(
      `--web-attention mha: MultiHeadAttention has no KV-head sharing, so it needs --kv-heads ${s.numHeads} (the ${presetName} preset has ${s.numKvHeads})`,
    );
  }

  const bpe = trainBpe();
  const live = (id: number) => id >= 3 + 256 && id < bpe.learnedCount;
  // The MultiHeadAttention form goes beside the default web folder rather than over it.
  const web = join(opts.outDir, opts.webDir ?? (webAttention === 'mha' ? 'web-mha' : 'web'));
  const genai = join(opts.outDir, 'genai');

  if (layouts.includes('genai')) {
    rmSync(genai, { recursive: true, force: true });
    mkdirSync(genai, { recursive: true });
    log(`genai: ${genaiFilename}`);
    // The genai CPU folder keeps all weights in one .onnx.data file, even at 2.7 GB.
    writeOnnx(genai, genaiFilename, () => `${genaiFilename}.data`, {
      shape: s,
      kind: 'f32',
      seed,
      liveTokenIds: live,
    });
    writeFileSync(join(genai, 'genai_config.json'), json(genaiConfigJson(s, genaiFilename)));
    writeTokenizerFiles(genai, bpe, s, true);
  }
  if (layouts.includes('web')) {
    rmSync(web, { recursive: true, force: true });
    mkdirSync(join(web, 'onnx'), { recursive: true });
    const chunks: Partial<Record<WebDtype, number>> = {};
    for (const dtype of webDtypes) {
      log(`web: onnx/model_${dtype}.onnx`);
      const base = `model_${dtype}.onnx_data`;
      chunks[dtype] = writeOnnx(
        join(web, 'onnx'),
        `model_${dtype}.onnx`,
        (i) => (i === 0 ? base : `${base}_${i}`),
        {
          shape: s,
          kind: dtype === 'q4f16' ? 'f16' : 'f32',
          seed,
          liveTokenIds: live,
          attention: webAttention,
        },
        opts.webChunkBytes ?? WEB_CHUNK_BYTES,
      );
    }
    writeFileSync(join(web, 'config.json'), json(webConfigJson(s, chunks)));
    writeFileSync(join(web, 'generation_config.json'), json(generationConfigJson()));
    writeTokenizerFiles(web, bpe, s, true);
  }
  return { web, genai, genaiFilename };
}

// ---------------------------------------------------------------------------------------------
// CLI

function parseArgs(argv: string[]): GenerateOptions {
  const opts: GenerateOptions = { outDir: 'fixtures/generated/tiny-phi3' };
  let outGiven = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg === '--preset') {
      const v = value();
      if (v !== 'tiny' && v !== 'full')
        throw new Error(`--preset: expected tiny or full, got ${v}`);
      opts.preset = v;
    } else if (arg === '--out') {
      opts.outDir = value();
      outGiven = true;
    } else if (arg === '--seed') opts.seed = Number.parseInt(value(), 10);
    else if (arg === '--layouts')
      opts.layouts = value()
        .split(',')
        .map((l) => {
          if (l !== 'web' && l !== 'genai') throw new Error(`--layouts: unknown layout ${l}`);
          return l;
        });
    else if (arg === '--web-dtypes')
      opts.webDtypes = value()
        .split(',')
        .map((d) => {
          if (d !== 'q4' && d !== 'q4f16') throw new Error(`--web-dtypes: unknown dtype ${d}`);
          return d;
        });
    else if (arg === '--genai-filename') opts.genaiFilename = value();
    else if (arg === '--web-attention') {
      const v = value();
      if (v !== 'gqa' && v !== 'mha')
        throw new Error(`--web-attention: expected gqa or mha, got ${v}`);
      opts.webAttention = v;
    } else if (arg === '--kv-heads') {
      const v = value();
      const n = Number(v);
      if (!Number.isInteger(n) || n <= 0)
        throw new Error(`--kv-heads: expected a positive integer, got ${v}`);
      opts.numKvHeads = n;
    } else if (arg === '--web-dir') {
      const v = value();
      if (!/^[\w.-]+$/.test(v) || v === '.' || v === '..')
        throw new Error(`--web-dir: expected a plain folder name, got ${v}`);
      opts.webDir = v;
    } else throw new Error(`unknown argument ${arg}`);
  }
  if (opts.preset === 'full' && !outGiven) opts.outDir = 'fixtures/generated/phi3-mini-random';
  return opts;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const opts = parseArgs(process.argv.slice(2));
  const started = performance.now();
  const paths = generatePhi3({ ...opts, log: (l) => console.log(l) });
  const written = (opts.layouts ?? ['web', 'genai']).map((l) => paths[l]).join(' and ');
  console.log(`wrote ${written} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}
