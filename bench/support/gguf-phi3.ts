// The project's Phi-3 int4 ONNX (either layout) as a GGUF for llama.cpp's `phi3` architecture, so
// that wllama (llama.cpp in wasm) can be measured on exactly the same weights. The graph is
// recognised by the CPU decoder's own walker; the int4 blocks are repacked, not requantised.
import { closeSync, existsSync, openSync, readFileSync, readSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { DataType, parseOnnx, type OnnxTensor } from '../../src/lib/inference/cpu/onnx-graph.ts';
import { recognisePhi3, type Q4Weight } from '../../src/lib/inference/cpu/phi3-graph.ts';
import { toFloat32 } from '../../src/lib/inference/cpu/weights.ts';
import {
  GGML_TYPE,
  concatBytes,
  f32,
  matMulNBitsToQ4_0,
  str,
  u32,
  writeGguf,
  type GgufTensor,
  type GgufValue,
} from './gguf.ts';

/** Why a graph cannot be written for llama.cpp's phi3 (its graph has fewer knobs than ONNX). */
export class GgufConversionError extends Error {
  override name = 'GgufConversionError';
}

// llama.cpp's token types (llama_token_type).
const NORMAL = 1;
const UNKNOWN = 2;
const CONTROL = 3;
const USER_DEFINED = 4;
const UNUSED = 5;
const BYTE = 6;

interface TokenizerJson {
  model?: { type?: string; vocab?: Record<string, number>; merges?: (string | string[])[] };
  added_tokens?: { id: number; content: string; special: boolean }[];
}

/**
 * The tokenizer.ggml.* keys for a SentencePiece-style BPE with byte fallback (Phi-3's), from
 * tokenizer.json. llama.cpp's "llama" tokenizer merges by score, highest first, so a token made by
 * merge r scores -r; others score 0. Rows of the embedding past the tokenizer's ids are padding.
 */
export function phi3TokenizerMetadata(
  tokenizerJson: string,
  vocabSize: number,
  ids: { bos: number; eos: number; pad: number; unk: number },
  file = 'tokenizer.json',
  add: { bos: boolean; eos: boolean } = { bos: false, eos: false },
): Map<string, GgufValue> {
  let tj: TokenizerJson;
  try {
    tj = JSON.parse(tokenizerJson) as TokenizerJson;
  } catch (e) {
    throw new GgufConversionError(`${file}: not JSON (${(e as Error).message})`);
  }
  if (tj.model?.type !== 'BPE' || !tj.model.vocab)
    throw new GgufConversionError(`${file}: model.type must be "BPE" with a vocab`);
  const tokens: (string | undefined)[] = new Array(vocabSize);
  const types = new Int32Array(vocabSize).fill(UNUSED);
  const scores = new Float32Array(vocabSize);
  for (const [text, id] of Object.entries(tj.model.vocab)) {
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize)
      throw new GgufConversionError(
        `${file}: model.vocab["${text}"] = ${id} is outside 0..${vocabSize - 1}`,
      );
    tokens[id] = text;
    types[id] = /^<0x[0-9A-F]{2}>$/.test(text) ? BYTE : NORMAL;
  }
  (tj.model.merges ?? []).forEach((m, rank) => {
    const merged = Array.isArray(m) ? m.join('') : m.replace(' ', '');
    const id = tj.model!.vocab![merged];
    if (id !== undefined) scores[id] = -(rank + 1);
  });
  for (const t of tj.added_tokens ?? []) {
    if (t.id < 0 || t.id >= vocabSize)
      throw new GgufConversionError(
        `${file}: added token "${t.content}" has id ${t.id} outside the vocab`,
      );
    tokens[t.id] = t.content;
    types[t.id] = t.special ? CONTROL : USER_DEFINED;
  }
  types[ids.unk] = UNKNOWN;
  for (let i = 0; i < vocabSize; i++) {
    if (tokens[i] === undefined) {
      tokens[i] = `[PAD${i}]`;
      types[i] = UNUSED;
    }
  }
  return new Map<string, GgufValue>([
    ['tokenizer.ggml.model', str('llama')],
    ['tokenizer.ggml.tokens', { type: 'string[]', value: tokens as string[] }],
    ['tokenizer.ggml.scores', { type: 'f32[]', value: scores }],
    ['tokenizer.ggml.token_type', { type: 'i32[]', value: types }],
    ['tokenizer.ggml.bos_token_id', u32(ids.bos)],
    ['tokenizer.ggml.eos_token_id', u32(ids.eos)],
    ['tokenizer.ggml.unknown_token_id', u32(ids.unk)],
    ['tokenizer.ggml.padding_token_id', u32(ids.pad)],
    ['tokenizer.ggml.add_bos_token', { type: 'bool', value: add.bos }],
    ['tokenizer.ggml.add_eos_token', { type: 'bool', value: add.eos }],
  ]);
}

/** Reads initializer bytes, inline or from the graph's external data files. */
class TensorReader {
  private fds = new Map<string, number>();
  constructor(private readonly dir: string) {}

  bytes(t: OnnxTensor): Uint8Array {
    if (t.data.kind === 'inline') return t.data.bytes;
    const { file, offset, length } = t.data;
    let fd = this.fds.get(file);
    if (fd === undefined) {
      fd = openSync(join(this.dir, file), 'r');
      this.fds.set(file, fd);
    }
    const out = new Uint8Array(length);
    for (let got = 0; got < length;) {
      const n = readSync(fd, out, got, length - got, offset + got);
      if (n === 0)
        throw new GgufConversionError(`${file}: ends before byte ${offset + length} (${t.name})`);
      got += n;
    }
    return out;
  }

  floats(t: OnnxTensor): Float32Array {
    return toFloat32(this.bytes(t), t.dataType);
  }

  close() {
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
  }
}

/**
 * The rotary base that produced the graph's cos/sin caches (llama.cpp computes its own from
 * phi3.rope.freq_base): read from position 1, then every cached angle is checked against it, so
 * a graph with scaled or per-dimension factors is refused instead of silently mis-rotated.
 */
export function ropeBaseFromCaches(
  cos: Float32Array,
  sin: Float32Array,
  positions: number,
  half: number,
  rotaryDim: number,
): number {
  if (positions < 2 || half < 2) throw new GgufConversionError('rotary caches are too small');
  const angle = Math.atan2(sin[half + 1]!, cos[half + 1]!); // position 1, frequency index 1
  const base = angle ** (-rotaryDim / 2);
  if (!Number.isFinite(base) || base <= 1)
    throw new GgufConversionError(`rotary caches give no usable base (angle ${angle})`);
  const step = Math.max(1, Math.floor(positions / 64));
  for (let p = 0; p < positions; p += step) {
    for (let i = 0; i < half; i++) {
      const a = p * base ** ((-2 * i) / rotaryDim);
      const dc = Math.abs(Math.cos(a) - cos[p * half + i]!);
      const ds = Math.abs(Math.sin(a) - sin[p * half + i]!);
      if (dc > 2e-3 || ds > 2e-3) {
        throw new GgufConversionError(
          `rotary cache at position ${p}, index ${i} does not follow base ${base.toFixed(1)} (scaled rotary is not supported)`,
        );
      }
    }
  }
  return base;
}

export interface Phi3GgufPlan {
  metadata: Map<string, GgufValue>;
  tensors: GgufTensor[];
  /** Close the data files once written. */
  close(): void;
  summary: { layers: number; hidden: number; heads: number; kvHeads: number; vocab: number };
}

/**
 * Plans the GGUF of an onnxruntime-genai folder (genai_config.json, the decoder graph and its
 * external data, tokenizer.json): metadata now, tensor bytes read and repacked as each is written.
 */
export function planPhi3Gguf(folder: string, name = 'phi3'): Phi3GgufPlan {
  const cfgFile = join(folder, 'genai_config.json');
  const cfg = JSON.parse(readFileSync(cfgFile, 'utf8')) as {
    model?: {
      context_length?: number;
      bos_token_id?: number;
      eos_token_id?: number | number[];
      pad_token_id?: number;
      decoder?: { filename?: string };
    };
  };
  const graphName = cfg.model?.decoder?.filename;
  if (!graphName) throw new GgufConversionError(`${cfgFile}: model.decoder.filename is missing`);
  const graphPath = join(folder, graphName);
  const model = parseOnnx(readFileSync(graphPath), graphName);
  const g = recognisePhi3(model, graphName);
  if (g.rotaryInterleaved)
    throw new GgufConversionError(
      `${graphName}: interleaved rotary (llama.cpp's phi3 uses NeoX rotary)`,
    );
  if (Math.abs(g.scale * Math.sqrt(g.headSize) - 1) > 1e-6)
    throw new GgufConversionError(
      `${graphName}: attention scale ${g.scale} is not 1/sqrt(head size), which llama.cpp's phi3 assumes`,
    );
  const reader = new TensorReader(dirname(graphPath));
  const half = g.rotaryDim / 2;
  const base = ropeBaseFromCaches(
    reader.floats(g.cos),
    reader.floats(g.sin),
    g.maxPositions,
    half,
    g.rotaryDim,
  );

  const eosList = cfg.model?.eos_token_id;
  const eos = Array.isArray(eosList) ? eosList[0] : eosList;
  const arch = 'phi3';
  const metadata = new Map<string, GgufValue>([
    ['general.architecture', str(arch)],
    ['general.name', str(name)],
    ['general.file_type', u32(2)], // MOSTLY_Q4_0
    ['general.quantization_version', u32(2)],
    [`${arch}.context_length`, u32(cfg.model?.context_length ?? g.maxPositions)],
    [`${arch}.embedding_length`, u32(g.hidden)],
    [`${arch}.feed_forward_length`, u32(g.intermediate)],
    [`${arch}.block_count`, u32(g.layers.length)],
    [`${arch}.attention.head_count`, u32(g.heads)],
    [`${arch}.attention.head_count_kv`, u32(g.kvHeads)],
    [`${arch}.attention.layer_norm_rms_epsilon`, f32(g.eps)],
    [`${arch}.rope.dimension_count`, u32(g.rotaryDim)],
    [`${arch}.rope.freq_base`, f32(base)],
  ]);
  // Whether a prompt starts with <s> is tokenizer_config.json's call (the fixtures differ).
  const tcFile = join(folder, 'tokenizer_config.json');
  const tc = existsSync(tcFile)
    ? (JSON.parse(readFileSync(tcFile, 'utf8')) as {
        add_bos_token?: boolean;
        add_eos_token?: boolean;
      })
    : {};
  const tokenizerFile = join(folder, 'tokenizer.json');
  for (const [k, v] of phi3TokenizerMetadata(
    readFileSync(tokenizerFile, 'utf8'),
    g.vocab,
    {
      bos: cfg.model?.bos_token_id ?? 1,
      eos: eos ?? 32000,
      pad: cfg.model?.pad_token_id ?? eos ?? 32000,
      unk: 0,
    },
    tokenizerFile,
    { bos: tc.add_bos_token === true, eos: tc.add_eos_token === true },
  ))
    metadata.set(k, v);

  const q4 =
    (parts: Q4Weight[]): (() => Uint8Array) =>
    () =>
      concatBytes(
        parts.map((p) =>
          matMulNBitsToQ4_0(reader.bytes(p.packed), reader.floats(p.scales), p.n, p.k),
        ),
      );
  const rowsOf = (parts: Q4Weight[]) => parts.reduce((a, p) => a + p.n, 0);
  const norm = (t: OnnxTensor) => () => new Uint8Array(reader.floats(t).buffer);
  const q4Tensor = (tensorName: string, parts: Q4Weight[]): GgufTensor => {
    const k = parts[0]!.k;
    if (k % 32 !== 0)
      throw new GgufConversionError(
        `${tensorName}: K = ${k} is not a multiple of 32 (Q4_0 blocks)`,
      );
    return { name: tensorName, dims: [k, rowsOf(parts)], type: GGML_TYPE.Q4_0, data: q4(parts) };
  };

  // The embedding keeps the graph's own precision (llama.cpp gathers rows from F32 or F16).
  const embedType = g.embed.dataType === DataType.FLOAT16 ? GGML_TYPE.F16 : GGML_TYPE.F32;
  const tensors: GgufTensor[] = [
    {
      name: 'token_embd.weight',
      dims: [g.hidden, g.vocab],
      type: embedType,
      data: () => reader.bytes(g.embed),
    },
  ];
  g.layers.forEach((l, i) => {
    const p = `blk.${i}`;
    tensors.push(
      {
        name: `${p}.attn_norm.weight`,
        dims: [g.hidden],
        type: GGML_TYPE.F32,
        data: norm(l.inputNorm),
      },
      q4Tensor(`${p}.attn_qkv.weight`, l.qkv),
      q4Tensor(`${p}.attn_output.weight`, [l.o]),
      {
        name: `${p}.ffn_norm.weight`,
        dims: [g.hidden],
        type: GGML_TYPE.F32,
        data: norm(l.postNorm),
      },
      // llama.cpp's phi3 reads one fused up projection and splits it in half for SwiGLU: the
      // first half goes through SiLU (gate), the second multiplies it (up).
      q4Tensor(`${p}.ffn_up.weight`, [l.gate, l.up]),
      q4Tensor(`${p}.ffn_down.weight`, [l.down]),
    );
  });
  tensors.push(
    { name: 'output_norm.weight', dims: [g.hidden], type: GGML_TYPE.F32, data: norm(g.finalNorm) },
    q4Tensor('output.weight', [g.lmHead]),
  );
  return {
    metadata,
    tensors,
    close: () => reader.close(),
    summary: {
      layers: g.layers.length,
      hidden: g.hidden,
      heads: g.heads,
      kvHeads: g.kvHeads,
      vocab: g.vocab,
    },
  };
}

/**
 * Converts a genai folder to `<prefix>.gguf`, or to gguf-split files `<prefix>-0000i-of-0000n.gguf`
 * of at most `maxSplitBytes` each (wllama reads each file as one Blob; its guide asks for
 * splits of 512 MB or less). Returns the written paths in split order.
 */
export function convertPhi3ToGguf(
  folder: string,
  prefix: string,
  opts: { name?: string; maxSplitBytes?: number } = {},
): string[] {
  const plan = planPhi3Gguf(folder, opts.name);
  try {
    return writeGguf(prefix, plan.metadata, plan.tensors, opts.maxSplitBytes);
  } finally {
    plan.close();
  }
}
