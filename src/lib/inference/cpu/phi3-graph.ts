// Recognises a Phi-3-family decoder in an ONNX graph by walking it from `input_ids` to
// `logits` (ops, attributes, initializer names and shapes) and maps its weights. Anything else
// is refused with the reason, so the caller can serve the model with onnxruntime instead.
import {
  DataType,
  elementSize,
  evaluateSmall,
  type SmallTensor,
  tensorByteLength,
  type OnnxModel,
  type OnnxNode,
  type OnnxTensor,
} from './onnx-graph.ts';

export class UnsupportedGraphError extends Error {
  override name = 'UnsupportedGraphError';
}

/** An int4 MatMulNBits weight: y[N] = x[K] W, B [N, ceil(K/32), 16], one scale per block. */
export interface Q4Weight {
  k: number;
  n: number;
  packed: OnnxTensor;
  scales: OnnxTensor;
}

export interface Phi3Layer {
  inputNorm: OnnxTensor;
  /** Q, K and V rows, in that order: one packed weight or three separate ones. */
  qkv: Q4Weight[];
  o: Q4Weight;
  postNorm: OnnxTensor;
  gate: Q4Weight;
  up: Q4Weight;
  down: Q4Weight;
}

export interface Phi3Graph {
  hidden: number;
  heads: number;
  kvHeads: number;
  headSize: number;
  intermediate: number;
  vocab: number;
  eps: number;
  scale: number;
  rotaryInterleaved: boolean;
  rotaryDim: number;
  /** Positions the cos/sin caches cover. */
  maxPositions: number;
  embed: OnnxTensor;
  cos: OnnxTensor;
  sin: OnnxTensor;
  layers: Phi3Layer[];
  finalNorm: OnnxTensor;
  lmHead: Q4Weight;
  /** The element type of the graph's logits and KV cache (fp32 or fp16). */
  ioType: 'float32' | 'float16';
}

const MS = 'com.microsoft';

class Walker {
  private readonly consumers = new Map<string, OnnxNode[]>();
  private readonly producers = new Map<string, OnnxNode>();

  constructor(
    readonly model: OnnxModel,
    readonly file: string,
  ) {
    for (const node of model.nodes) {
      for (const input of node.inputs) {
        if (!input) continue;
        const list = this.consumers.get(input) ?? [];
        list.push(node);
        this.consumers.set(input, list);
      }
      for (const output of node.outputs) if (output) this.producers.set(output, node);
    }
  }

  /** The node that computes `value` (undefined for graph inputs and initializers). */
  producer(value: string): OnnxNode | undefined {
    return this.producers.get(value);
  }

  isInput(value: string): boolean {
    return this.model.inputs.some((i) => i.name === value);
  }

  refuse(message: string): never {
    throw new UnsupportedGraphError(`${this.file}: ${message}`);
  }

  users(value: string): OnnxNode[] {
    return this.consumers.get(value) ?? [];
  }

  /** The single consumer of `value` with one of `ops`; refuses when there is none or several. */
  only(value: string, ops: string[], what: string): OnnxNode {
    const found = this.users(value).filter((n) => ops.includes(n.opType));
    if (found.length !== 1) {
      this.refuse(
        `expected one ${ops.join(' or ')} (${what}) reading "${value}", found ${found.length} (readers: ${
          this.users(value)
            .map((n) => n.opType)
            .join(', ') || 'none'
        })`,
      );
    }
    return found[0]!;
  }

  init(name: string | undefined, what: string): OnnxTensor {
    const t = name ? this.model.initializers.get(name) : undefined;
    if (!t) this.refuse(`${what}: "${name ?? ''}" is not a stored weight`);
    return t;
  }

  attr(node: OnnxNode, key: string, fallback?: number): number {
    const v = node.attributes.get(key);
    if (v === undefined && fallback !== undefined) return fallback;
    if (typeof v !== 'number')
      this.refuse(`${node.name}: attribute ${key} missing or not a number`);
    return v;
  }

  floatVector(name: string | undefined, size: number, what: string): OnnxTensor {
    const t = this.init(name, what);
    const count = t.dims.reduce((a, b) => a * b, 1);
    if (count !== size || (t.dataType !== DataType.FLOAT && t.dataType !== DataType.FLOAT16)) {
      this.refuse(
        `${what} "${t.name}": expected ${size} fp32/fp16 values, got ${count} of type ${t.dataType}`,
      );
    }
    return t;
  }

  q4(node: OnnxNode, what: string): Q4Weight {
    if (node.opType !== 'MatMulNBits' || node.domain !== MS)
      this.refuse(`${what}: expected MatMulNBits, got ${node.opType}`);
    const k = this.attr(node, 'K');
    const n = this.attr(node, 'N');
    const bits = this.attr(node, 'bits', 4);
    const block = this.attr(node, 'block_size');
    if (bits !== 4 || block !== 32)
      this.refuse(
        `${node.name}: only 4-bit block-32 weights are supported (bits ${bits}, block_size ${block})`,
      );
    if (node.inputs.slice(3).some((i) => i !== '')) {
      this.refuse(`${node.name}: zero points, g_idx or bias inputs are not supported`);
    }
    const packed = this.init(node.inputs[1], `${node.name} B`);
    const scales = this.init(node.inputs[2], `${node.name} scales`);
    const nb = Math.ceil(k / 32);
    const dims = packed.dims.join('x');
    if (packed.dataType !== DataType.UINT8 || dims !== `${n}x${nb}x16`) {
      this.refuse(
        `${node.name}: B must be uint8 [${n}, ${nb}, 16], got type ${packed.dataType} [${dims}]`,
      );
    }
    const scaleCount = scales.dims.reduce((a, b) => a * b, 1);
    if (
      scaleCount !== n * nb ||
      (scales.dataType !== DataType.FLOAT && scales.dataType !== DataType.FLOAT16)
    ) {
      this.refuse(`${node.name}: scales must be ${n * nb} fp32/fp16 values`);
    }
    for (const t of [packed, scales]) {
      const want = t.dims.reduce((a, b) => a * b, 1) * elementSize(t.dataType);
      if (tensorByteLength(t) !== want)
        this.refuse(`${t.name}: holds ${tensorByteLength(t)} bytes, expected ${want}`);
    }
    return { k, n, packed, scales };
  }
}

/** What one layer's attention maps to, whichever form the graph uses. */
interface AttentionMap {
  heads: number;
  kvHeads: number;
  headSize: number;
  scale: number;
  interleaved: boolean;
  cos: OnnxTensor;
  sin: OnnxTensor;
  /** Q, K and V rows, in that order: one packed weight or three separate ones. */
  qkv: Q4Weight[];
}

/** GroupQueryAttention with rotary inside (do_rotary) and cos/sin caches as inputs 7 and 8. */
function mapGroupQueryAttention(
  w: Walker,
  gqa: OnnxNode,
  mats: OnnxNode[],
  l: number,
  hidden: number,
): AttentionMap {
  if (gqa.domain !== MS) w.refuse(`${gqa.name}: GroupQueryAttention must be the com.microsoft op`);
  const heads = w.attr(gqa, 'num_heads');
  const kvHeads = w.attr(gqa, 'kv_num_heads');
  if (w.attr(gqa, 'do_rotary', 0) !== 1)
    w.refuse(`${gqa.name}: only do_rotary=1 (rotary inside attention) is supported`);
  if (w.attr(gqa, 'local_window_size', -1) !== -1)
    w.refuse(`${gqa.name}: sliding-window attention is not supported`);
  if (w.attr(gqa, 'softcap', 0) !== 0) w.refuse(`${gqa.name}: softcap is not supported`);
  if (!(heads > 0 && kvHeads > 0 && heads % kvHeads === 0 && hidden % heads === 0)) {
    w.refuse(
      `${gqa.name}: num_heads ${heads} / kv_num_heads ${kvHeads} do not fit hidden size ${hidden}`,
    );
  }
  const headSize = hidden / heads;
  const scale = (() => {
    const v = gqa.attributes.get('scale');
    return typeof v === 'number' && v !== 0 ? v : 1 / Math.sqrt(headSize);
  })();
  const interleaved = w.attr(gqa, 'rotary_interleaved', 0) === 1;
  const c = w.init(gqa.inputs[7], `${gqa.name} cos_cache`);
  const s = w.init(gqa.inputs[8], `${gqa.name} sin_cache`);
  for (const t of [c, s]) {
    if (
      t.dims.length !== 2 ||
      t.dims[1] !== headSize / 2 ||
      (t.dataType !== DataType.FLOAT && t.dataType !== DataType.FLOAT16)
    ) {
      w.refuse(
        `${t.name}: expected fp32/fp16 [positions, ${headSize / 2}], got [${t.dims.join(', ')}]`,
      );
    }
  }
  const byOutput = (value: string) => mats.find((m) => m.outputs[0] === value);
  let qkv: Q4Weight[];
  if (gqa.inputs[1] || gqa.inputs[2]) {
    const parts = [0, 1, 2].map((i) => byOutput(gqa.inputs[i] ?? ''));
    if (parts.some((p) => !p))
      w.refuse(`${gqa.name}: query, key and value must come straight from MatMulNBits`);
    qkv = parts.map((p, i) => w.q4(p!, `layer ${l} ${'qkv'[i]}_proj`));
    const want = [heads * headSize, kvHeads * headSize, kvHeads * headSize];
    if (qkv.some((q, i) => q.n !== want[i] || q.k !== hidden))
      w.refuse(`layer ${l}: Q/K/V projections have unexpected shapes`);
  } else {
    const p = byOutput(gqa.inputs[0] ?? '');
    if (!p) w.refuse(`${gqa.name}: packed QKV must come straight from MatMulNBits`);
    qkv = [w.q4(p, `layer ${l} qkv_proj`)];
    if (qkv[0]!.n !== (heads + 2 * kvHeads) * headSize || qkv[0]!.k !== hidden) {
      w.refuse(
        `layer ${l}: packed QKV is ${qkv[0]!.k}x${qkv[0]!.n}, expected ${hidden}x${(heads + 2 * kvHeads) * headSize}`,
      );
    }
  }
  return { heads, kvHeads, headSize, scale, interleaved, cos: c, sin: s, qkv };
}

/**
 * position_ids may only feed RotaryEmbedding nodes directly: the engine then rotates by the
 * plain positions past + i, which is what every caller of such a graph feeds.
 */
function checkPositionIds(w: Walker): void {
  const info = w.model.inputs.find((i) => i.name === 'position_ids')!;
  if (info.elemType !== DataType.INT64 || info.dims.length !== 2)
    w.refuse('position_ids must be an int64 [batch, sequence] input');
  const readers = w.users('position_ids');
  const other = readers.filter((n) => n.opType !== 'RotaryEmbedding');
  if (readers.length === 0 || other.length > 0) {
    w.refuse(
      `position_ids must feed RotaryEmbedding nodes only (read by: ${
        readers.map((n) => `${n.opType} ${n.name}`).join(', ') || 'nothing'
      })`,
    );
  }
}

/** One com.microsoft RotaryEmbedding over `value`: the projection it rotates and its caches. */
function rotaryInput(
  w: Walker,
  value: string,
  what: string,
  headSize: number,
  heads: number,
): { input: string; cos: OnnxTensor; sin: OnnxTensor } {
  const rot = w.producer(value);
  if (!rot || rot.opType !== 'RotaryEmbedding' || rot.domain !== MS)
    w.refuse(`${what} is not rotated by a com.microsoft RotaryEmbedding`);
  if (w.attr(rot, 'interleaved', 0) !== 0)
    w.refuse(`${rot.name}: interleaved rotary (interleaved=1) is not supported`);
  const dim = w.attr(rot, 'rotary_embedding_dim', 0);
  if (dim !== 0 && dim !== headSize)
    w.refuse(
      `${rot.name}: partial rotary (rotary_embedding_dim ${dim} of head size ${headSize}) is not supported`,
    );
  const n = w.attr(rot, 'num_heads', 0);
  if (n !== 0 && n !== heads) w.refuse(`${rot.name}: num_heads ${n}, attention has ${heads}`);
  if (w.attr(rot, 'scale', 1) !== 1)
    w.refuse(`${rot.name}: scaled positions (scale attribute) are not supported`);
  if (w.attr(rot, 'is_packed_batching', 0) !== 0)
    w.refuse(`${rot.name}: packed batching is not supported`);
  if (rot.inputs[1] !== 'position_ids' || !w.isInput('position_ids')) {
    w.refuse(
      `${rot.name}: positions come from "${rot.inputs[1] ?? ''}", not straight from the position_ids input (only plain positions are supported)`,
    );
  }
  const cos = w.init(rot.inputs[2], `${rot.name} cos_cache`);
  const sin = w.init(rot.inputs[3], `${rot.name} sin_cache`);
  for (const t of [cos, sin]) {
    if (t.dims.length !== 2 || (t.dataType !== DataType.FLOAT && t.dataType !== DataType.FLOAT16)) {
      w.refuse(`${t.name}: expected fp32/fp16 [positions, ${headSize / 2}]`);
    }
    if (t.dims[1] !== headSize / 2) {
      w.refuse(
        `${t.name}: rotates ${2 * t.dims[1]!} of ${headSize} head dimensions (partial rotary is not supported)`,
      );
    }
  }
  if (cos.dims[0] !== sin.dims[0]) w.refuse(`${cos.name} and ${sin.name} differ in length`);
  return { input: rot.inputs[0] ?? '', cos, sin };
}

/**
 * MultiHeadAttention as the model builder writes it for `-e web`: Q and K from separate
 * MatMulNBits through RotaryEmbedding (fed by position_ids), V straight from its MatMulNBits,
 * an additive attention bias (the causal mask) and past/present KV. No KV-head sharing.
 */
function mapMultiHeadAttention(
  w: Walker,
  mha: OnnxNode,
  mats: OnnxNode[],
  l: number,
  hidden: number,
): AttentionMap {
  if (mha.domain !== MS) w.refuse(`${mha.name}: MultiHeadAttention must be the com.microsoft op`);
  const heads = w.attr(mha, 'num_heads');
  if (!(heads > 0 && hidden % heads === 0))
    w.refuse(`${mha.name}: num_heads ${heads} does not divide hidden size ${hidden}`);
  const headSize = hidden / heads;
  const scale = (() => {
    const v = mha.attributes.get('scale');
    return typeof v === 'number' && v !== 0 ? v : 1 / Math.sqrt(headSize);
  })();
  if (w.attr(mha, 'unidirectional', 0) !== 0)
    w.refuse(`${mha.name}: unidirectional=1 is not supported (the mask must be an attention bias)`);
  const [q, k, v, bias, padMask, attnBias, pastK, pastV, ...rest] = mha.inputs;
  if (bias) w.refuse(`${mha.name}: a Q/K/V bias input is not supported`);
  if (padMask) w.refuse(`${mha.name}: a key_padding_mask input is not supported`);
  if (rest.some((i) => i))
    w.refuse(`${mha.name}: past_sequence_length / cache_indirection inputs are not supported`);
  if (!attnBias)
    w.refuse(`${mha.name}: no attention_bias input, so no causal mask: not a decoder's attention`);
  if (!pastK || !pastV || !w.isInput(pastK) || !w.isInput(pastV))
    w.refuse(`${mha.name}: past key/value must be graph inputs (a KV cache)`);
  if (!mha.outputs[1] || !mha.outputs[2])
    w.refuse(`${mha.name}: present key/value outputs are missing`);
  const rq = rotaryInput(w, q ?? '', `${mha.name} query`, headSize, heads);
  const rk = rotaryInput(w, k ?? '', `${mha.name} key`, headSize, heads);
  if (rq.cos.name !== rk.cos.name || rq.sin.name !== rk.sin.name)
    w.refuse(`${mha.name}: query and key use different rotary caches`);
  const byOutput = (value: string) => mats.find((m) => m.outputs[0] === value);
  const parts = [rq.input, rk.input, v ?? ''].map(byOutput);
  if (parts.some((p) => !p)) {
    w.refuse(
      `${mha.name}: query and key must be RotaryEmbedding of a MatMulNBits, value a MatMulNBits, all reading the layer's norm`,
    );
  }
  const qkv = parts.map((p, i) => w.q4(p!, `layer ${l} ${'qkv'[i]}_proj`));
  if (qkv.some((x) => x.n !== hidden || x.k !== hidden)) {
    w.refuse(
      `layer ${l}: Q/K/V projections are ${qkv.map((x) => `${x.k}x${x.n}`).join(', ')}, expected ${hidden}x${hidden} each (MultiHeadAttention has no KV-head sharing)`,
    );
  }
  return {
    heads,
    kvHeads: heads,
    headSize,
    scale,
    interleaved: false,
    cos: rq.cos,
    sin: rq.sin,
    qkv,
  };
}

/** Ops a mask subgraph may use: shape arithmetic, comparisons and selects, nothing numeric. */
const MASK_OPS = new Set([
  'Shape',
  'Gather',
  'Range',
  'Add',
  'Sub',
  'Mul',
  'Unsqueeze',
  'Squeeze',
  'Concat',
  'Reshape',
  'Slice',
  'Cast',
  'Less',
  'LessOrEqual',
  'Greater',
  'GreaterOrEqual',
  'Equal',
  'And',
  'Or',
  'Not',
  'Where',
  'Expand',
  'Tile',
  'ConstantOfShape',
  'Constant',
  'Identity',
]);

/**
 * The attention bias must be computed from attention_mask (values) and input_ids / past KV
 * (shapes only) with the shape, compare and select ops of a mask subgraph and small constants,
 * and evaluate to the causal mask for an all-ones attention_mask (which is what the engine
 * applies itself, and what every caller feeds).
 */
function checkCausalBias(w: Walker, bias: string): void {
  const seen = new Set<string>();
  const stack = [bias];
  let fromMask = false;
  while (stack.length) {
    const value = stack.pop()!;
    if (seen.has(value)) continue;
    seen.add(value);
    if (value === 'attention_mask') {
      fromMask = true;
      continue;
    }
    const node = w.producer(value);
    if (!node) {
      if (value === 'input_ids' || value.startsWith('past_key_values.')) continue;
      if (w.isInput(value)) w.refuse(`the attention mask reads the graph input "${value}"`);
      const t = w.init(value, 'attention mask constant');
      if (t.dims.reduce((a, b) => a * b, 1) > 16)
        w.refuse(`the attention mask uses the weight "${t.name}" (${t.dims.join('x')})`);
      continue;
    }
    if (node.domain !== '' || !MASK_OPS.has(node.opType)) {
      w.refuse(
        `the attention mask is computed with ${node.opType} (${node.name}); only a causal mask from attention_mask is supported`,
      );
    }
    for (const input of node.inputs) {
      if (!input) continue;
      if (
        (input === 'input_ids' || input.startsWith('past_key_values.')) &&
        node.opType !== 'Shape'
      )
        w.refuse(`the attention mask reads ${input}'s values (${node.name}), not only its shape`);
      stack.push(input);
    }
  }
  if (!fromMask) w.refuse('the attention mask does not come from attention_mask');

  // What it computes, for a prefill and for one token after a past (the two cases the builder's
  // own subgraph serves): 0 where key j <= past + query i, a large negative number elsewhere.
  for (const [seq, past] of [
    [3, 0],
    [1, 4],
  ] as const) {
    const total = seq + past;
    const feeds: Record<string, SmallTensor> = {
      attention_mask: { dims: [1, total], data: new Array<number>(total).fill(1) },
      input_ids: { dims: [1, seq], data: new Array<number>(seq).fill(0) },
    };
    for (const input of w.model.inputs) {
      if (!input.name.startsWith('past_key_values.')) continue;
      const dims = input.dims.map((d, i) => (typeof d === 'number' ? d : i === 0 ? 1 : past));
      feeds[input.name] = { dims, data: [] };
    }
    let mask: SmallTensor;
    try {
      mask = evaluateSmall(w.model, bias, feeds);
    } catch (e) {
      w.refuse(`the attention mask could not be evaluated: ${(e as Error).message}`);
    }
    const d = mask.dims;
    if (d.length < 2 || d[d.length - 2] !== seq || d[d.length - 1] !== total) {
      w.refuse(
        `the attention mask for ${seq} new tokens after ${past} is [${d.join(', ')}], expected [..., ${seq}, ${total}]`,
      );
    }
    mask.data.forEach((v, at) => {
      const j = at % total;
      const i = Math.floor(at / total) % seq;
      const open = j <= past + i;
      if (open ? v !== 0 : !(v <= -1e4)) {
        w.refuse(
          `the attention mask is not causal: query ${i} of ${seq} after ${past} past tokens ${open ? 'is kept from' : 'may see'} key ${j} (bias ${v})`,
        );
      }
    });
  }
}

/** Skips Identity/Cast nodes between a value and the graph output it becomes. */
function reachesOutput(w: Walker, value: string, output: string): boolean {
  let v = value;
  for (let i = 0; i < 4; i++) {
    if (v === output) return true;
    const next = w.users(v).filter((n) => n.opType === 'Identity' || n.opType === 'Cast');
    if (next.length !== 1) return false;
    v = next[0]!.outputs[0]!;
  }
  return v === output;
}

/**
 * Walks the decoder. Supported: the onnxruntime-genai builder's CPU int4 graph (which the web
 * exports of this project's fixtures share): Gather embedding, SimplifiedLayerNormalization /
 * SkipSimplifiedLayerNormalization, MatMulNBits Q/K/V (packed or separate), GroupQueryAttention
 * with do_rotary and cos/sin caches, SiLU as Sigmoid*Mul, MatMulNBits lm_head; and the builder's
 * older web form: separate Q/K/V, RotaryEmbedding (non-interleaved, full head) on Q and K fed
 * straight by position_ids, MultiHeadAttention with a causal mask from attention_mask.
 */
export function recognisePhi3(model: OnnxModel, file: string): Phi3Graph {
  const w: Walker = new Walker(model, file);
  const inputNames = model.inputs.map((i) => i.name);
  if (!inputNames.includes('input_ids')) w.refuse('the graph has no input_ids input');
  if (inputNames.includes('position_ids')) checkPositionIds(w);
  const logitsOut = model.outputs.find((o) => o.name === 'logits');
  if (!logitsOut) w.refuse('the graph has no logits output');
  const ioType = logitsOut.elemType === DataType.FLOAT16 ? 'float16' : 'float32';

  const gather = w.only('input_ids', ['Gather'], 'embedding');
  const embed = w.init(gather.inputs[0], 'embedding table');
  if (embed.dims.length !== 2) w.refuse(`embedding "${embed.name}" must be 2-D`);
  const [vocab, hidden] = embed.dims as [number, number];
  if (embed.dataType !== DataType.FLOAT && embed.dataType !== DataType.FLOAT16) {
    w.refuse(
      `embedding "${embed.name}" must be fp32 or fp16 (quantised embeddings are not supported)`,
    );
  }

  let residual = gather.outputs[0]!;
  // The embedding output is both the first norm's input and the residual stream.
  let norm = w.only(residual, ['SimplifiedLayerNormalization'], 'first norm');
  const eps = (() => {
    const v = norm.attributes.get('epsilon');
    return typeof v === 'number' ? v : 1e-5;
  })();
  let normWeight = w.floatVector(norm.inputs[1], hidden, `${norm.name} weight`);
  let normed = norm.outputs[0]!;

  const layers: Phi3Layer[] = [];
  let shape: {
    heads: number;
    kvHeads: number;
    headSize: number;
    scale: number;
    interleaved: boolean;
  } | null = null;
  let cos: OnnxTensor | null = null;
  let sin: OnnxTensor | null = null;
  let intermediate = 0;

  let maskBias: string | null = null;

  for (let l = 0; ; l++) {
    const mats = w.users(normed).filter((n) => n.opType === 'MatMulNBits');
    // Attention reads the projections directly (GroupQueryAttention) or through a
    // RotaryEmbedding (MultiHeadAttention with rotary outside).
    const readers = (value: string): OnnxNode[] =>
      w
        .users(value)
        .flatMap((n) => (n.opType === 'RotaryEmbedding' ? w.users(n.outputs[0]!) : [n]));
    const attnNodes = new Set(
      mats
        .flatMap((m) => readers(m.outputs[0]!))
        .filter((n) => n.opType === 'GroupQueryAttention' || n.opType === 'MultiHeadAttention'),
    );
    if (attnNodes.size === 0) {
      // The final norm: its output is the lm_head's input.
      if (l === 0) {
        w.refuse(
          'no GroupQueryAttention or MultiHeadAttention after the first norm (unsupported attention)',
        );
      }
      if (mats.length !== 1)
        w.refuse(`expected the lm_head MatMulNBits after the final norm, found ${mats.length}`);
      const lmHead = w.q4(mats[0]!, 'lm_head');
      if (lmHead.n !== vocab || lmHead.k !== hidden)
        w.refuse(`lm_head is ${lmHead.k}x${lmHead.n}, expected ${hidden}x${vocab}`);
      if (!reachesOutput(w, mats[0]!.outputs[0]!, 'logits'))
        w.refuse('the lm_head output does not become logits');
      return {
        hidden,
        heads: shape!.heads,
        kvHeads: shape!.kvHeads,
        headSize: shape!.headSize,
        intermediate,
        vocab,
        eps,
        scale: shape!.scale,
        rotaryInterleaved: shape!.interleaved,
        rotaryDim: shape!.headSize,
        maxPositions: cos!.dims[0]!,
        embed,
        cos: cos!,
        sin: sin!,
        layers,
        finalNorm: normWeight,
        lmHead,
        ioType,
      };
    }
    if (attnNodes.size !== 1) w.refuse(`layer ${l}: Q/K/V feed ${attnNodes.size} attention nodes`);
    const gqa = [...attnNodes][0]!;
    let mapped: AttentionMap;
    if (gqa.opType === 'MultiHeadAttention') {
      mapped = mapMultiHeadAttention(w, gqa, mats, l, hidden);
      const bias = gqa.inputs[5]!;
      if (maskBias === null) {
        checkCausalBias(w, bias);
        maskBias = bias;
      } else if (bias !== maskBias) {
        w.refuse(`${gqa.name}: layers use different attention masks`);
      }
    } else {
      mapped = mapGroupQueryAttention(w, gqa, mats, l, hidden);
    }
    const { heads, kvHeads, headSize, scale, interleaved, qkv } = mapped;
    if (
      shape &&
      (shape.heads !== heads || shape.kvHeads !== kvHeads || shape.interleaved !== interleaved)
    ) {
      w.refuse(`${gqa.name}: attention shape differs from the first layer's`);
    }
    shape = { heads, kvHeads, headSize, scale, interleaved };
    cos ??= mapped.cos;
    sin ??= mapped.sin;
    if (mapped.cos.name !== cos.name || mapped.sin.name !== sin.name)
      w.refuse(`${gqa.name}: layers use different rotary caches`);
    if (!gqa.outputs[1]?.startsWith('present') && gqa.outputs[1] !== `present.${l}.key`) {
      w.refuse(`${gqa.name}: its key cache output is not a present.* graph output`);
    }
    const oNode = w.only(gqa.outputs[0]!, ['MatMulNBits'], `layer ${l} o_proj`);
    const o = w.q4(oNode, `layer ${l} o_proj`);
    if (o.k !== hidden || o.n !== hidden) w.refuse(`layer ${l}: o_proj is ${o.k}x${o.n}`);

    const post = w.only(
      oNode.outputs[0]!,
      ['SkipSimplifiedLayerNormalization'],
      `layer ${l} post-attention norm`,
    );
    if (post.inputs[1] !== residual) w.refuse(`${post.name}: does not add the residual stream`);
    const postNorm = w.floatVector(post.inputs[2], hidden, `${post.name} weight`);
    if (post.inputs[3]) w.refuse(`${post.name}: norm bias is not supported`);
    const normed2 = post.outputs[0]!;
    residual = post.outputs[3] ?? '';
    if (!residual) w.refuse(`${post.name}: the residual sum output is not used`);

    const mlp = w.users(normed2).filter((n) => n.opType === 'MatMulNBits');
    if (mlp.length !== 2)
      w.refuse(`layer ${l}: expected gate and up MatMulNBits, found ${mlp.length}`);
    const isGate = (m: OnnxNode) => w.users(m.outputs[0]!).some((n) => n.opType === 'Sigmoid');
    const gateNode = mlp.find(isGate);
    const upNode = mlp.find((m) => !isGate(m));
    if (!gateNode || !upNode)
      w.refuse(`layer ${l}: no SiLU (Sigmoid*Mul) on either MLP projection`);
    const sig = w.only(gateNode.outputs[0]!, ['Sigmoid'], `layer ${l} SiLU`);
    const silu = w
      .users(sig.outputs[0]!)
      .find((n) => n.opType === 'Mul' && n.inputs.includes(gateNode.outputs[0]!));
    if (!silu) w.refuse(`layer ${l}: Sigmoid is not multiplied by the gate (SiLU)`);
    const gated = w
      .users(silu.outputs[0]!)
      .find((n) => n.opType === 'Mul' && n.inputs.includes(upNode.outputs[0]!));
    if (!gated) w.refuse(`layer ${l}: SiLU(gate) is not multiplied by up`);
    const downNode = w.only(gated.outputs[0]!, ['MatMulNBits'], `layer ${l} down_proj`);
    const gate = w.q4(gateNode, `layer ${l} gate_proj`);
    const up = w.q4(upNode, `layer ${l} up_proj`);
    const down = w.q4(downNode, `layer ${l} down_proj`);
    intermediate = gate.n;
    if (
      gate.k !== hidden ||
      up.k !== hidden ||
      up.n !== gate.n ||
      down.k !== gate.n ||
      down.n !== hidden
    ) {
      w.refuse(`layer ${l}: MLP projections have unexpected shapes`);
    }
    layers.push({ inputNorm: normWeight, qkv, o, postNorm, gate, up, down });

    norm = w.only(
      downNode.outputs[0]!,
      ['SkipSimplifiedLayerNormalization'],
      `layer ${l + 1} input norm`,
    );
    if (norm.inputs[1] !== residual) w.refuse(`${norm.name}: does not add the residual stream`);
    if (norm.inputs[3]) w.refuse(`${norm.name}: norm bias is not supported`);
    normWeight = w.floatVector(norm.inputs[2], hidden, `${norm.name} weight`);
    normed = norm.outputs[0]!;
    residual = norm.outputs[3] ?? '';
    if (layers.length > 1024) w.refuse('more than 1024 layers');
  }
}
