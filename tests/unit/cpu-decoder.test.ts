// The CPU decoder (own wasm SIMD kernels) serving the tiny Phi-3 in both layouts, against
// onnxruntime-node on the same files: logits at every step within a stated tolerance, the same
// greedy tokens through the project's generation loop, and refusals for graphs it does not know.
import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadCpuEngine, planKvCache, type CpuEngine } from '../../src/lib/inference/cpu/engine.ts';
import {
  OnnxFormatError,
  parseOnnx,
  type OnnxNode,
} from '../../src/lib/inference/cpu/onnx-graph.ts';
import { recognisePhi3, UnsupportedGraphError } from '../../src/lib/inference/cpu/phi3-graph.ts';
import { runGeneration } from '../../src/lib/inference/engine.ts';
import { normalizePath, type ModelFiles } from '../../src/lib/inference/engines/files.ts';
import { InferenceError } from '../../src/lib/inference/protocol.ts';
import { fileKernelLoader } from '../helpers/cpu-kernels.ts';
import {
  TINY,
  TINY_MHA,
  argmax,
  ensureTinyPhi3,
  ensureTinyPhi3Mha,
  greedyOrtNode,
  type TinyPhi3MhaPaths,
  type TinyPhi3Paths,
} from '../helpers/tiny-phi3.ts';

/** A model folder on disk; external data is streamed in pieces as a browser Response would be. */
function dirFiles(dir: string): ModelFiles {
  const p = (path: string) => join(dir, normalizePath(path));
  return {
    name: basename(dir),
    has: async (path) => existsSync(p(path)),
    bytes: async (path) => new Uint8Array(readFileSync(p(path))),
    text: async (path) => readFileSync(p(path), 'utf8'),
    response: async (path) => {
      if (!existsSync(p(path))) return undefined;
      const data = readFileSync(p(path));
      let at = 0;
      // Odd piece sizes, so tensors (and fp16 values) straddle piece boundaries.
      const body = new ReadableStream<Uint8Array>({
        pull(c) {
          if (at >= data.length) return c.close();
          const n = 100_003;
          c.enqueue(new Uint8Array(data.subarray(at, at + n)));
          at += n;
        },
      });
      return new Response(body);
    },
  };
}

const STEPS = 64;
const PROMPT = [32010, 300, 301, 302, 500, 411, 32007, 32001];
/*
 * Tolerances on logits (absolute; the fixture's logits span about +-15):
 * - fp32 graphs: onnxruntime's MatMulNBits at accuracy level 4 quantises activations to int8
 *   per block of 32 with scale amax/127, as this engine does, so the integer dot products agree
 *   and only fp32 summation order differs: measured <= 2e-5 at almost every step. The exception:
 *   an activation whose value lies within a rounding step of an int8 rounding boundary can land
 *   on the other side in one engine (one step in 64 here, 0.086). So: at least 90% of steps
 *   within 1e-3, every step within 0.15.
 * - q4f16 graph: onnxruntime computes it in fp16 (activations, KV cache, logits; 11-bit
 *   mantissa) while this engine computes in fp32 from the same fp16 weights: measured 0.23,
 *   allowed 0.5 at every step.
 * Greedy ids are compared wherever onnxruntime's own top-2 margin is wider than twice the
 * every-step tolerance (and through the generation loop, all 64, on the fp32 graphs).
 */
const TOL_FP32 = { typical: 1e-3, every: 0.15 };
const TOL_FP16 = { typical: 0.5, every: 0.5 };

let fx: TinyPhi3Paths;
let mhaFx: TinyPhi3MhaPaths;
beforeAll(async () => {
  fx = await ensureTinyPhi3();
  mhaFx = await ensureTinyPhi3Mha();
});

type KvShape = { numLayers: number; numKvHeads: number; headSize: number };

async function reference(model: string, prompt = PROMPT, shape: KvShape = TINY) {
  const session = await ort.InferenceSession.create(model);
  try {
    return await greedyOrtNode(ort, session, prompt, STEPS, { shape });
  } finally {
    await session.release();
  }
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

function margin(logits: Float32Array): number {
  const top = argmax(logits);
  let second = -Infinity;
  for (let i = 0; i < logits.length; i++) if (i !== top) second = Math.max(second, logits[i]!);
  return logits[top]! - second;
}

const cases = [
  {
    name: 'genai layout',
    dir: () => fx.genai,
    model: () => fx.genaiModel,
    dtype: undefined,
    tol: TOL_FP32,
  },
  {
    name: 'web layout q4',
    dir: () => fx.web,
    model: () => join(fx.web, 'onnx/model_q4.onnx'),
    dtype: 'q4',
    tol: TOL_FP32,
  },
  {
    name: 'web layout q4f16',
    dir: () => fx.web,
    model: () => join(fx.web, 'onnx/model_q4f16.onnx'),
    dtype: 'q4f16',
    tol: TOL_FP16,
  },
  // The builder's older web form: separate Q/K/V, RotaryEmbedding + position_ids,
  // MultiHeadAttention (one KV head per head). Same tolerances as the forms above.
  {
    name: 'web layout q4, MultiHeadAttention + RotaryEmbedding',
    dir: () => mhaFx.web,
    model: () => join(mhaFx.web, 'onnx/model_q4.onnx'),
    dtype: 'q4',
    tol: TOL_FP32,
    shape: TINY_MHA,
  },
  {
    name: 'web layout q4f16, MultiHeadAttention + RotaryEmbedding',
    dir: () => mhaFx.web,
    model: () => join(mhaFx.web, 'onnx/model_q4f16.onnx'),
    dtype: 'q4f16',
    tol: TOL_FP16,
    shape: TINY_MHA,
  },
] as const;
const shapeOf = (c: (typeof cases)[number]): KvShape => ('shape' in c ? c.shape : TINY);

describe.each(cases)('CPU decoder on the tiny Phi-3, $name', (c) => {
  const { dir, model, dtype, tol } = c;
  let engine: CpuEngine;
  beforeAll(async () => {
    engine = await loadCpuEngine(dirFiles(dir()), {
      loadKernel: fileKernelLoader,
      webDtype: dtype,
    });
  });

  it(`matches onnxruntime-node's logits at each of ${STEPS} steps`, async () => {
    const ref = await reference(model(), PROMPT, shapeOf(c));
    expect(engine.cpu.variant).toBe('simd');
    await engine.lm.reset();
    let logits = await engine.lm.forward(PROMPT);
    let worst = 0;
    let typical = 0;
    for (let step = 0; step < STEPS; step++) {
      const r = ref.logits[step]!;
      const diff = maxAbsDiff(logits, r);
      worst = Math.max(worst, diff);
      if (diff <= tol.typical) typical++;
      if (margin(r) > 2 * tol.every) expect(argmax(logits), `step ${step}`).toBe(ref.ids[step]);
      // Teacher-forced on the reference ids, so every step compares the same context.
      logits = await engine.lm.forward([ref.ids[step]!]);
    }
    expect(worst).toBeLessThanOrEqual(tol.every);
    expect(typical).toBeGreaterThanOrEqual(0.9 * STEPS);
  });

  it('gives different logits for different prompts', async () => {
    await engine.lm.reset();
    const a = await engine.lm.forward(PROMPT);
    await engine.lm.reset();
    const b = await engine.lm.forward([32010, 777, 778, 32007, 32001]);
    expect(maxAbsDiff(a, b)).toBeGreaterThan(0.5);
  });
});

describe('CPU decoder through the generation loop', () => {
  for (const c of cases.filter((c) => c.tol === TOL_FP32)) {
    it(`generates onnxruntime-node's ${STEPS} greedy tokens (${c.name})`, async () => {
      const engine = await loadCpuEngine(dirFiles(c.dir()), {
        loadKernel: fileKernelLoader,
        webDtype: c.dtype,
      });
      const prompt = 'Tell me about the weather today';
      const ids = engine.tokenizer.encode(prompt, { addSpecialTokens: true });
      const ref = await reference(c.model(), ids, shapeOf(c));
      const r = await runGeneration(
        engine,
        { kind: 'prompt', prompt },
        { temperature: 0, max_tokens: STEPS },
      );
      const got = r.choices[0]!.tokenIds;
      // The loop stops at an end token; onnxruntime's ids up to that point must be the same.
      expect(got).toEqual(ref.ids.slice(0, got.length));
      expect(got.length === STEPS || engine.eosIds.has(got[got.length - 1]!)).toBe(true);
      expect(r.usage.prompt_tokens).toBe(ids.length);
    });
  }

  it('refuses a sequence longer than its context with a clear error', async () => {
    const engine = await loadCpuEngine(dirFiles(fx.genai), {
      loadKernel: fileKernelLoader,
      maxContext: 32,
    });
    expect(engine.lm.contextLength).toBe(32);
    await expect(engine.lm.forward(Array.from({ length: 40 }, (_, i) => 300 + i))).rejects.toThrow(
      /needs 40 tokens; the CPU decoder holds 32/,
    );
    await expect(engine.lm.forward([32064])).rejects.toBeInstanceOf(InferenceError);
    const r = runGeneration(engine, { kind: 'prompt', prompt: 'x '.repeat(40) }, { max_tokens: 2 });
    await expect(r).rejects.toThrow(/context holds 32/);
  });

  it('processes a prompt longer than one prefill chunk like token-by-token decoding', async () => {
    const engine = await loadCpuEngine(dirFiles(fx.genai), { loadKernel: fileKernelLoader });
    const ids = Array.from({ length: 150 }, (_, i) => 300 + ((i * 37) % 200));
    const batched = await engine.lm.forward(ids);
    await engine.lm.reset();
    let single: Float32Array = new Float32Array(0);
    for (const id of ids) single = await engine.lm.forward([id]);
    expect(maxAbsDiff(batched, single)).toBeLessThan(1e-4);
  });
});

describe('fp16 KV cache', () => {
  it('is chosen only when fp32 would not hold the context: the full-size shape gets 4096 in fp16', () => {
    // Phi-3-mini: 32 layers of 32 KV heads of 96; about 1.93 GB of wasm32 left after the weights.
    const shape = { room: 1.93e9, layers: 32, kvHeads: 32, headSize: 96, threads: 2 };
    const fp32 = planKvCache({ ...shape, context: 2048, want: 'auto' });
    expect(fp32).toMatchObject({ kvCache: 'f32', capacity: 2048 });
    const fp16 = planKvCache({ ...shape, context: 4096, want: 'auto' });
    expect(fp16).toMatchObject({ kvCache: 'f16', capacity: 4096 });
    expect(planKvCache({ ...shape, context: 4096, want: 'f32' }).capacity).toBe(
      Math.floor(1.93e9 / (32 * 2 * 32 * 96 * 4 + 8)),
    );
    // Neither holds it: fp16 still gives the most tokens.
    expect(planKvCache({ ...shape, context: 100_000, want: 'auto' })).toMatchObject({
      kvCache: 'f16',
      capacity: Math.floor(1.93e9 / (32 * 2 * 32 * 96 * 2 + 8)),
    });
  });

  /*
   * Measured on the tiny model over 480 tokens (logits span about +-16): with fp32 activations
   * the fp16 cache moves logits by at most 1.7e-3 (1e-4 of the largest); with int8 activations by
   * 0.16, because a value that fp16 nudges across an int8 rounding boundary moves by a whole
   * step of amax / 127 -- the same rounding noise that separates onnxruntime's accuracy levels 0
   * and 4 (1-2%). Greedy ids stayed the same at all 80 steps in both.
   */
  for (const [activations, tol] of [
    ['f32', 5e-3],
    ['int8', 0.3],
  ] as const) {
    it(`keeps logits within ${tol} of the fp32 cache over a 480-token sequence, ${activations} activations`, async () => {
      const engines = await Promise.all(
        (['f32', 'f16'] as const).map((kvCache) =>
          loadCpuEngine(dirFiles(fx.genai), { loadKernel: fileKernelLoader, kvCache, activations }),
        ),
      );
      const [f32, f16] = engines as [CpuEngine, CpuEngine];
      expect([f32.cpu.kvCache, f16.cpu.kvCache]).toEqual(['f32', 'f16']);
      expect(f16.cpu.contextCapacity).toBe(512);
      const prompt = Array.from({ length: 400 }, (_, i) => 300 + ((i * 53) % 900));
      let a = await f32.lm.forward(prompt);
      let b = await f16.lm.forward(prompt);
      let worst = 0;
      for (let step = 0; step < 80; step++) {
        worst = Math.max(worst, maxAbsDiff(a, b));
        if (margin(a) > 2 * tol) expect(argmax(b), `step ${step}`).toBe(argmax(a));
        const next = argmax(a);
        a = await f32.lm.forward([next]);
        b = await f16.lm.forward([next]);
      }
      expect(worst).toBeGreaterThan(0); // the two caches really differ
      expect(worst).toBeLessThan(tol);
      await expect(f16.lm.forward(Array.from({ length: 40 }, () => 300))).rejects.toThrow(
        /needs 520 tokens; the CPU decoder holds 512/,
      );
      await Promise.all(engines.map((e) => e.dispose()));
    });
  }
});

describe('graph recognition', () => {
  const load = () => parseOnnx(new Uint8Array(readFileSync(fx.genaiModel)), 'model.onnx');

  it('maps the fixture graph: shapes, rotary convention, weights', () => {
    const g = recognisePhi3(load(), 'model.onnx');
    expect(g).toMatchObject({
      hidden: 64,
      heads: 4,
      kvHeads: 2,
      headSize: 16,
      intermediate: 128,
      vocab: 32064,
    });
    expect(g.layers).toHaveLength(2);
    expect(g.rotaryInterleaved).toBe(false);
    expect(g.layers[0]!.qkv[0]!.n).toBe((4 + 2 * 2) * 16);
    expect(g.lmHead.packed.name).toBe('lm_head.MatMul.weight_Q4');
  });

  const refusals: [string, (m: ReturnType<typeof load>) => void, RegExp][] = [
    [
      'rotary outside attention',
      (m) =>
        m.nodes
          .filter((n) => n.opType === 'GroupQueryAttention')
          .forEach((n) => n.attributes.set('do_rotary', 0)),
      /only do_rotary=1/,
    ],
    [
      'block size 64',
      (m) =>
        m.nodes
          .filter((n) => n.opType === 'MatMulNBits')
          .forEach((n) => n.attributes.set('block_size', 64)),
      /only 4-bit block-32/,
    ],
    [
      'zero points',
      (m) => m.nodes.find((n) => n.opType === 'MatMulNBits')!.inputs.push('zp'),
      /zero points/,
    ],
    [
      'a position_ids input',
      (m) => m.inputs.push({ name: 'position_ids', elemType: 7, dims: [1, 'seq'] }),
      /position_ids/,
    ],
    [
      'a GELU MLP',
      (m) => m.nodes.filter((n) => n.opType === 'Sigmoid').forEach((n) => (n.opType = 'Gelu')),
      /SiLU/,
    ],
    [
      'no logits output',
      (m) => (m.outputs = m.outputs.filter((o) => o.name !== 'logits')),
      /no logits output/,
    ],
  ];
  for (const [what, mutate, reason] of refusals) {
    it(`refuses ${what} with the reason`, () => {
      const m = load();
      mutate(m);
      let err: unknown;
      try {
        recognisePhi3(m, 'model.onnx');
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(UnsupportedGraphError);
      expect((err as Error).message).toMatch(/^model\.onnx: /);
      expect((err as Error).message).toMatch(reason);
    });
  }

  it('names the file and position of a broken protobuf', () => {
    const bytes = new Uint8Array(readFileSync(fx.genaiModel));
    expect(() => parseOnnx(bytes.subarray(0, 1000), 'cut.onnx')).toThrow(OnnxFormatError);
    expect(() => parseOnnx(bytes.subarray(0, 1000), 'cut.onnx')).toThrow(/^cut\.onnx: .*byte \d+/);
    expect(() => parseOnnx(new Uint8Array([0x0f]), 'x.onnx')).toThrow(/wire type 7/);
  });
});

describe('graph recognition, MultiHeadAttention + RotaryEmbedding form', () => {
  const load = () =>
    parseOnnx(new Uint8Array(readFileSync(join(mhaFx.web, 'onnx/model_q4.onnx'))), 'model.onnx');
  type Model = ReturnType<typeof load>;
  const nodes = (m: Model, op: string) => m.nodes.filter((n) => n.opType === op);

  it('maps separate Q/K/V, the rotary caches of RotaryEmbedding, one KV head per head', () => {
    const g = recognisePhi3(load(), 'model.onnx');
    expect(g).toMatchObject({ hidden: 64, heads: 4, kvHeads: 4, headSize: 16, vocab: 32064 });
    expect(g.rotaryInterleaved).toBe(false);
    expect(g.rotaryDim).toBe(16);
    expect(g.cos.name).toBe('cos_cache');
    expect(g.maxPositions).toBe(TINY_MHA.contextLength);
    expect(g.layers[1]!.qkv.map((w) => w.packed.name)).toEqual(
      ['q', 'k', 'v'].map((x) => `model.layers.1.attn.${x}_proj.MatMul.weight_Q4`),
    );
  });

  /**
   * Replaces the fixture's mask with the model builder's own MultiHeadAttention mask subgraph
   * (a causal [S, S] triangle from input_ids expanded over the past, plus the padding mask from
   * attention_mask, added and tiled over the heads), rebuilt here node for node in structure.
   */
  function useBuilderMask(m: Model): void {
    const i64 = (name: string, values: number[], dims = [values.length]) => {
      m.initializers.set(name, {
        name,
        dataType: 7,
        dims,
        data: {
          kind: 'inline',
          bytes: new Uint8Array(BigInt64Array.from(values.map(BigInt)).buffer),
        },
      });
      return name;
    };
    const f32 = (name: string, v: number, dims: number[] = []) => {
      m.initializers.set(name, {
        name,
        dataType: 1,
        dims,
        data: { kind: 'inline', bytes: new Uint8Array(Float32Array.of(v).buffer) },
      });
      return name;
    };
    const k = '/c/';
    const c = {
      s0: i64(`${k}0D/0`, [0], []),
      s1: i64(`${k}0D/1`, [1], []),
      s2: i64(`${k}0D/2`, [2], []),
      sm1: i64(`${k}0D/-1`, [-1], []),
      v0: i64(`${k}1D/0`, [0]),
      v1: i64(`${k}1D/1`, [1]),
      v2: i64(`${k}1D/2`, [2]),
      vm1: i64(`${k}1D/-1`, [-1]),
      vmax: i64(`${k}1D/max`, [Number.MAX_SAFE_INTEGER]),
      tile: i64(`${k}1D/tile`, [1, TINY_MHA.numHeads, 1, 1]),
      f0: f32(`${k}f/0`, 0),
      f1: f32(`${k}f/1`, 1),
      fmin: f32(`${k}f/min`, -3.4028234663852886e38),
    };
    const lowest = m.initializers.get(c.fmin)!;
    const one = m.initializers.get(c.v1)!;
    const added: OnnxNode[] = [];
    const op = (opType: string, name: string, inputs: string[], attrs: [string, number][] = []) => {
      const node: OnnxNode = {
        opType,
        domain: '',
        name,
        inputs,
        outputs: [`${name}/out`],
        attributes: new Map<string, number | string | number[]>(attrs),
      };
      added.push(node);
      return node;
    };
    const o = (n: { outputs: string[] }) => n.outputs[0]!;
    const I = '/mask/input_ids';
    const A = '/mask/attention_mask';
    const pastLen = op('Gather', '/mask/past/Gather', [
      o(op('Shape', '/mask/past/Shape', ['past_key_values.0.key'])),
      c.s2,
    ]);
    const common = (
      b: string,
      root: string,
      forConcat: string,
      forExpand: string,
      ids: boolean,
    ) => {
      const u1 = op('Unsqueeze', `${b}/U1`, [
        o(op('Gather', `${b}/G1`, [o(op('Shape', `${b}/S1`, [root])), c.s0])),
        c.v0,
      ]);
      const u2 = op('Unsqueeze', `${b}/U2`, [
        o(op('Gather', `${b}/G2`, [o(op('Shape', `${b}/S2`, [root])), c.s1])),
        c.v0,
      ]);
      const concat = op(
        'Concat',
        `${b}/Concat`,
        ids ? [o(u1), c.v1, o(u2), forConcat] : [o(u1), c.v1, forConcat, o(u2)],
        [['axis', 0]],
      );
      const ones = op('ConstantOfShape', `${b}/COS`, [o(op('Shape', `${b}/S3`, [o(concat)]))]);
      ones.tensorAttributes = new Map([['value', one]]);
      const neg = op('Mul', `${b}/Mul`, [o(ones), c.sm1]);
      const eq = op('Equal', `${b}/Eq`, [o(concat), o(neg)]);
      const shape = op('Where', `${b}/W1`, [o(eq), o(ones), o(concat)]);
      return op('Expand', `${b}/Expand`, [forExpand, o(shape)]);
    };
    // input_ids part: the causal triangle [S, S] in a [B, 1, S, S + past] frame.
    const seq = o(op('Gather', `${I}/G2`, [o(op('Shape', `${I}/S2`, ['input_ids'])), c.s1]));
    const totalU = op('Unsqueeze', `${I}/U3`, [o(op('Add', `${I}/Add1`, [seq, o(pastLen)])), c.v0]);
    const uSeq = (n: string) => o(op('Unsqueeze', `${I}/${n}`, [seq, c.v0]));
    const square = op('ConstantOfShape', `${I}/COS2`, [
      o(op('Concat', `${I}/Concat2`, [uSeq('U4'), uSeq('U5')], [['axis', 0]])),
    ]);
    square.tensorAttributes = new Map([['value', lowest]]);
    const lastDim = (n: string) =>
      o(
        op('Squeeze', `${I}/Sq${n}`, [
          o(
            op('Slice', `${I}/Sl${n}`, [
              o(op('Shape', `${I}/Sh${n}`, [o(square)])),
              c.vm1,
              c.vmax,
              c.v0,
            ]),
          ),
          c.v0,
        ]),
      );
    const col = op(
      'Concat',
      `${I}/Concat3`,
      [o(op('Unsqueeze', `${I}/U7`, [lastDim('1'), c.v0])), c.v1],
      [['axis', 0]],
    );
    const range = op('Range', `${I}/Range`, [c.s0, lastDim('2'), c.s1]);
    const rowEnd = op('Reshape', `${I}/Reshape`, [
      o(op('Add', `${I}/Add2`, [o(range), c.s1])),
      o(col),
    ]);
    const tri = op('Where', `${I}/W2`, [
      o(op('Less', `${I}/Less`, [o(range), o(rowEnd)])),
      c.f0,
      o(square),
    ]);
    const tri4 = op('Unsqueeze', `${I}/U9`, [o(op('Unsqueeze', `${I}/U8`, [o(tri), c.v0])), c.v1]);
    const causal = common(I, 'input_ids', o(totalU), o(tri4), true);
    // attention_mask part: 0 where kept, lowest where padded.
    const mask4 = op('Unsqueeze', `${A}/U4`, [
      o(op('Unsqueeze', `${A}/U3`, ['attention_mask', c.v1])),
      c.v2,
    ]);
    const padded = common(A, 'attention_mask', uSeq('U6'), o(mask4), false);
    const inv = op('Sub', `${A}/Sub`, [
      c.f1,
      o(op('Cast', `${A}/Cast1`, [o(padded)], [['to', 1]])),
    ]);
    const pad = op('Where', `${A}/W2`, [
      o(op('Cast', `${A}/Cast2`, [o(inv)], [['to', 9]])),
      c.fmin,
      o(inv),
    ]);
    const bias = op('Tile', '/mask/Tile', [o(op('Add', '/mask/Add', [o(pad), o(causal)])), c.tile]);
    m.nodes.push(...added);
    for (const n of nodes(m, 'MultiHeadAttention')) n.inputs[5] = o(bias);
  }

  it("accepts the model builder's own mask subgraph (evaluated, not just its op names)", () => {
    const m = load();
    useBuilderMask(m);
    const g = recognisePhi3(m, 'model.onnx');
    expect(g.layers).toHaveLength(2);
    // The same subgraph with the triangle's Less turned to Greater looks ahead: refused.
    const bad = load();
    useBuilderMask(bad);
    bad.nodes.find((n) => n.name === '/mask/input_ids/Less')!.opType = 'Greater';
    expect(() => recognisePhi3(bad, 'model.onnx')).toThrow(/not causal/);
  });

  const refusals: [string, (m: Model) => void, RegExp][] = [
    [
      'interleaved rotary',
      (m) => nodes(m, 'RotaryEmbedding').forEach((n) => n.attributes.set('interleaved', 1)),
      /interleaved rotary \(interleaved=1\) is not supported/,
    ],
    [
      'partial rotary',
      (m) =>
        nodes(m, 'RotaryEmbedding').forEach((n) => n.attributes.set('rotary_embedding_dim', 8)),
      /partial rotary \(rotary_embedding_dim 8 of head size 16\)/,
    ],
    [
      'positions that are not the plain position_ids',
      (m) => {
        m.nodes.unshift({
          opType: 'Add',
          domain: '',
          name: 'shift',
          inputs: ['position_ids', '/model/constants/INT64/1'],
          outputs: ['shifted'],
          attributes: new Map(),
        });
        nodes(m, 'RotaryEmbedding').forEach((n) => (n.inputs[1] = 'shifted'));
      },
      /position_ids must feed RotaryEmbedding nodes only \(read by: Add shift\)/,
    ],
    [
      'no attention bias (no causal mask)',
      (m) => nodes(m, 'MultiHeadAttention').forEach((n) => (n.inputs[5] = '')),
      /no attention_bias input/,
    ],
    [
      'a mask computed from hidden states',
      (m) => {
        const where = nodes(m, 'Where').find((n) => n.name.includes('attn_mask_reformat'))!;
        m.nodes.unshift({
          opType: 'MatMul',
          domain: '',
          name: 'odd_mask',
          inputs: ['/model/embed_tokens/Gather/output_0', 'model.norm.weight'],
          outputs: ['odd'],
          attributes: new Map(),
        });
        where.inputs[1] = 'odd';
      },
      /attention mask is computed with MatMul \(odd_mask\)/,
    ],
    [
      'a mask that hides the diagonal (Less for LessOrEqual)',
      (m) => (nodes(m, 'LessOrEqual')[0]!.opType = 'Less'),
      /not causal: query 0 of 3 after 0 past tokens is kept from key 0/,
    ],
    [
      'a mask that looks ahead (GreaterOrEqual for LessOrEqual)',
      (m) => (nodes(m, 'LessOrEqual')[0]!.opType = 'GreaterOrEqual'),
      /not causal: query 0 of 3 after 0 past tokens may see key 1/,
    ],
    [
      'a Q bias',
      (m) => nodes(m, 'MultiHeadAttention').forEach((n) => (n.inputs[3] = 'model.norm.weight')),
      /Q\/K\/V bias/,
    ],
  ];
  for (const [what, mutate, reason] of refusals) {
    it(`refuses ${what} with the reason`, () => {
      const m = load();
      mutate(m);
      let err: unknown;
      try {
        recognisePhi3(m, 'model.onnx');
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(UnsupportedGraphError);
      expect((err as Error).message).toMatch(/^model\.onnx: /);
      expect((err as Error).message).toMatch(reason);
    });
  }
});
