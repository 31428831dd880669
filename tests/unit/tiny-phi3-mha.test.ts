// The web layout in the model builder's older `-e web` form: position_ids input, separate Q/K/V
// MatMulNBits, RotaryEmbedding on Q and K, MultiHeadAttention with past/present KV and a causal
// bias built from attention_mask. On onnxruntime-node: the real I/O contract, KV-cache
// consistency (token by token and in chunks after a past), the same function as the
// GroupQueryAttention form of the same seed, deterministic files; transformers.js feeds
// position_ids itself and generates the same ids; the project's OrtCausalLM feeds them too.
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { AutoModelForCausalLM, AutoTokenizer, env, type Tensor } from '@huggingface/transformers';
import * as ort from 'onnxruntime-node';
import * as ortWeb from 'onnxruntime-web';
import { beforeAll, describe, expect, it } from 'vitest';
import { generatePhi3 } from '../../scripts/make-tiny-phi3.ts';
import { readModel, type ReadModel } from '../../scripts/onnx/read.ts';
import {
  OrtCausalLM,
  type OrtRuntime,
  type OrtSessionLike,
} from '../../src/lib/inference/engines/ort-causal-lm.ts';
import {
  TINY_MHA,
  argmax,
  ensureTinyPhi3Mha,
  greedyOrtNode,
  lastRowLogits,
  type TinyPhi3MhaPaths,
} from '../helpers/tiny-phi3.ts';

const S = TINY_MHA;
const PROMPT_A = [1, 32010, 13, 298, 441, 384, 259, 466, 330, 362, 32007, 13, 32001, 13];
const PROMPT_B = [1, 32010, 13, 300, 310, 320, 330, 340, 350, 360, 32007, 13, 32001, 13];

let paths: TinyPhi3MhaPaths;
const graph = (dir: string, dtype: 'q4' | 'q4f16') => join(dir, 'onnx', `model_${dtype}.onnx`);
const sessions: Record<string, ort.InferenceSession> = {};

beforeAll(async () => {
  paths = await ensureTinyPhi3Mha();
  for (const dtype of ['q4', 'q4f16'] as const) {
    sessions[`mha ${dtype}`] = await ort.InferenceSession.create(graph(paths.web, dtype));
    sessions[`gqa ${dtype}`] = await ort.InferenceSession.create(graph(paths.webGqa, dtype));
  }
});

const maxAbsDiff = (a: Float32Array, b: Float32Array) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

type Kv = 'float32' | 'float16';
function emptyPast(kv: Kv): Record<string, ort.Tensor> {
  const past: Record<string, ort.Tensor> = {};
  for (let l = 0; l < S.numLayers; l++)
    for (const name of ['key', 'value'])
      past[`past_key_values.${l}.${name}`] = new ort.Tensor(
        kv,
        kv === 'float32' ? new Float32Array(0) : new Uint16Array(0),
        [1, S.numKvHeads, 0, S.headSize],
      );
  return past;
}

/** One run: `ids` after `pastLength` cached tokens, positions pastLength.. */
async function run(
  s: ort.InferenceSession,
  ids: number[],
  pastLength: number,
  past: Record<string, ort.Tensor>,
) {
  const total = pastLength + ids.length;
  const out = await s.run({
    input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, ids.length]),
    attention_mask: new ort.Tensor('int64', new BigInt64Array(total).fill(1n), [1, total]),
    position_ids: new ort.Tensor(
      'int64',
      BigInt64Array.from(ids, (_, i) => BigInt(pastLength + i)),
      [1, ids.length],
    ),
    ...past,
  });
  const next: Record<string, ort.Tensor> = {};
  for (let l = 0; l < S.numLayers; l++)
    for (const name of ['key', 'value'])
      next[`past_key_values.${l}.${name}`] = out[`present.${l}.${name}`]!;
  return { out, next };
}

// Prefill-then-decode against one full prefill: as for the GroupQueryAttention fixture,
// MatMulNBits at accuracy level 4 runs different kernels for one row and many (fp32 to ~1e-3);
// fp16 end to end to ~5e-2.
const TOLERANCE: Record<Kv, number> = { float32: 2e-3, float16: 6e-2 };

describe.each([
  ['q4', 'float32'],
  ['q4f16', 'float16'],
] as const)('tiny Phi-3 web layout, MultiHeadAttention form (%s)', (dtype, kv) => {
  const session = () => sessions[`mha ${dtype}`]!;

  it('has the builder web export inputs (position_ids included), outputs and dtypes', () => {
    const s = session();
    const pastNames = [0, 1].flatMap((l) => [
      `past_key_values.${l}.key`,
      `past_key_values.${l}.value`,
    ]);
    expect(s.inputNames).toEqual(['input_ids', 'attention_mask', 'position_ids', ...pastNames]);
    expect(s.outputNames).toEqual([
      'logits',
      ...[0, 1].flatMap((l) => [`present.${l}.key`, `present.${l}.value`]),
    ]);
    const meta = Object.fromEntries(
      [...s.inputMetadata, ...s.outputMetadata].map((m) => [
        m.name,
        m.isTensor ? { type: m.type, shape: m.shape } : null,
      ]),
    );
    expect(meta.position_ids).toEqual({ type: 'int64', shape: ['batch_size', 'sequence_length'] });
    expect(meta.attention_mask).toEqual({
      type: 'int64',
      shape: ['batch_size', 'total_sequence_length'],
    });
    expect(meta['past_key_values.1.key']).toEqual({
      type: kv,
      shape: ['batch_size', S.numKvHeads, 'past_sequence_length', S.headSize],
    });
    expect(meta['present.1.value']).toEqual({
      type: kv,
      shape: ['batch_size', S.numKvHeads, 'total_sequence_length', S.headSize],
    });
    expect(meta.logits).toEqual({
      type: kv,
      shape: ['batch_size', 'sequence_length', S.vocabSize],
    });
  });

  it('uses separate int4 Q/K/V, RotaryEmbedding on Q and K, MultiHeadAttention', () => {
    const m: ReadModel = readModel(readFileSync(graph(paths.web, dtype)));
    const ops = (op: string) => m.nodes.filter((n) => n.opType === op);
    expect(ops('GroupQueryAttention')).toHaveLength(0);
    const mha = ops('MultiHeadAttention');
    expect(mha).toHaveLength(S.numLayers);
    for (const n of mha) {
      expect(n.domain).toBe('com.microsoft');
      expect(n.attributes.num_heads).toBe(S.numHeads);
      expect(n.attributes.scale).toBeCloseTo(1 / Math.sqrt(S.headSize), 6);
      // query, key, value, bias, key_padding_mask, attention_bias, past_key, past_value
      expect(n.inputs[3]).toBe('');
      expect(n.inputs[4]).toBe('');
      expect(n.inputs[5]).toBe(mha[0]!.inputs[5]);
      expect(n.inputs.slice(6)).toEqual([
        expect.stringMatching(/^past_key_values\.\d\.key$/),
        expect.stringMatching(/^past_key_values\.\d\.value$/),
      ]);
    }
    const rot = ops('RotaryEmbedding');
    expect(rot).toHaveLength(2 * S.numLayers);
    for (const n of rot) {
      expect(n.domain).toBe('com.microsoft');
      expect(n.attributes.interleaved).toBe(0);
      expect(n.inputs.slice(1)).toEqual(['position_ids', 'cos_cache', 'sin_cache']);
    }
    const mats = ops('MatMulNBits');
    for (const which of ['q', 'k', 'v'])
      expect(mats.filter((n) => n.name.includes(`/attn/${which}_proj/`))).toHaveLength(S.numLayers);
    for (const n of mats) {
      expect(n.attributes.bits).toBe(4);
      expect(n.attributes.block_size).toBe(32);
    }
    const cos = m.initializers.find((t) => t.name === 'cos_cache')!;
    expect(cos.dims).toEqual([S.contextLength, S.headSize / 2]);
    // The attention bias comes from attention_mask (and the input's length), nothing else.
    const maskInputs = new Set(
      m.nodes
        .filter((n) => n.name.startsWith('/model/attn_mask_reformat/'))
        .flatMap((n) => n.inputs),
    );
    expect(maskInputs).toContain('attention_mask');
    expect([...maskInputs].filter((i) => i.startsWith('past_key_values'))).toEqual([]);
  });

  it('gives the same logits token by token, and in chunks after a past, as one prefill', async () => {
    const s = session();
    const ids = PROMPT_A;
    const full = (await run(s, ids, 0, emptyPast(kv))).out;
    const ref = (pos: number) => lastRowLogits(full.logits!, pos);
    // 6 tokens, then one at a time.
    let step = await run(s, ids.slice(0, 6), 0, emptyPast(kv));
    expect(maxAbsDiff(lastRowLogits(step.out.logits!), ref(5))).toBeLessThan(TOLERANCE[kv]);
    for (let pos = 6; pos < ids.length; pos++) {
      step = await run(s, [ids[pos]!], pos, step.next);
      expect(step.out['present.0.key']!.dims).toEqual([1, S.numKvHeads, pos + 1, S.headSize]);
      const got = lastRowLogits(step.out.logits!);
      expect(maxAbsDiff(got, ref(pos))).toBeLessThan(TOLERANCE[kv]);
      expect(argmax(got)).toBe(argmax(ref(pos)));
    }
    // Chunks of 4 after a past: the causal bias must hold for several new tokens after a past.
    let past = emptyPast(kv);
    for (let at = 0; at < ids.length; at += 4) {
      const piece = ids.slice(at, at + 4);
      const r = await run(s, piece, at, past);
      past = r.next;
      for (let i = 0; i < piece.length; i++) {
        const diff = maxAbsDiff(lastRowLogits(r.out.logits!, i), ref(at + i));
        expect(diff, `chunk at ${at}, row ${i}`).toBeLessThan(TOLERANCE[kv]);
      }
    }
  });

  it('gives different step-0 logits for different prompts', async () => {
    const s = session();
    const a = lastRowLogits((await run(s, PROMPT_A, 0, emptyPast(kv))).out.logits!);
    const b = lastRowLogits((await run(s, PROMPT_B, 0, emptyPast(kv))).out.logits!);
    expect(maxAbsDiff(a, b)).toBeGreaterThan(0.5);
    expect(Math.max(...a) - Math.min(...a)).toBeGreaterThan(5);
  });
});

describe('the MultiHeadAttention form computes what the GroupQueryAttention form does', () => {
  /*
   * Same seed and shape: the separate Q/K/V weights are the packed QKV weight's rows, byte for
   * byte (checked below), and every other weight has the same name and stream. Only the attention
   * kernels differ (summation order): fp32 logits measured 6e-6 apart over 32 steps (allowed
   * 1e-4) with the same greedy ids; the fp16 graphs measured identical over 16 steps (allowed 0.1
   * of a ~30 span, since both kernels may change their fp16 accumulation).
   */
  it('holds the packed QKV rows as separate Q, K and V weights', () => {
    const mha = readModel(readFileSync(graph(paths.web, 'q4')));
    const gqa = readModel(readFileSync(graph(paths.webGqa, 'q4')));
    const bytesOf = (dir: string, m: ReadModel, name: string) => {
      const t = m.initializers.find((i) => i.name === name)!;
      const data = readFileSync(join(dir, 'onnx', t.external!.location!));
      const offset = Number(t.external!.offset);
      return data.subarray(offset, offset + Number(t.external!.length));
    };
    for (let l = 0; l < S.numLayers; l++) {
      for (const suffix of ['weight_Q4', 'weight_scales']) {
        const packed = bytesOf(
          paths.webGqa,
          gqa,
          `model.layers.${l}.attn.qkv_proj.MatMul.${suffix}`,
        );
        const parts = ['q', 'k', 'v'].map((w) =>
          bytesOf(paths.web, mha, `model.layers.${l}.attn.${w}_proj.MatMul.${suffix}`),
        );
        expect(Buffer.concat(parts).equals(packed), `layer ${l} ${suffix}`).toBe(true);
      }
    }
  });

  it('fp32: the same 32 greedy ids and logits within 1e-4 at every step', async () => {
    const a = await greedyOrtNode(ort, sessions['mha q4']!, PROMPT_A, 32, { shape: S });
    const b = await greedyOrtNode(ort, sessions['gqa q4']!, PROMPT_A, 32, { shape: S });
    expect(a.ids).toEqual(b.ids);
    expect(new Set(a.ids).size).toBeGreaterThan(4);
    const worst = Math.max(...a.logits.map((l, i) => maxAbsDiff(l, b.logits[i]!)));
    console.log(`MHA vs GQA form, fp32, 32 steps: max |logit diff| ${worst}`);
    expect(worst).toBeLessThan(1e-4);
  });

  it('fp16: logits within 0.1 at every step on the same inputs', async () => {
    const b = await greedyOrtNode(ort, sessions['gqa q4f16']!, PROMPT_A, 16, { shape: S });
    const a = await greedyOrtNode(ort, sessions['mha q4f16']!, PROMPT_A, 16, {
      shape: S,
      force: b.ids,
    });
    const worst = Math.max(...a.logits.map((l, i) => maxAbsDiff(l, b.logits[i]!)));
    console.log(`MHA vs GQA form, fp16, 16 steps: max |logit diff| ${worst}`);
    expect(worst).toBeLessThan(0.1);
  });
});

describe('onnxruntime-web wasm runs the MultiHeadAttention form', () => {
  // As for the GroupQueryAttention fixture (tiny-phi3-ort-web.test.ts): wasm dequantizes int4 to
  // fp32 where native rounds activations to int8, so logits differ by up to ~0.2 of a ~30 span;
  // compared on the same inputs (teacher forcing).
  it.each([
    ['q4', 0.3],
    ['q4f16', 0.4],
  ] as const)(
    '%s: logits within %s of onnxruntime-node at each of 16 steps',
    async (dtype, tol) => {
      ortWeb.env.wasm.numThreads = 1;
      const model = graph(paths.web, dtype);
      const web = await ortWeb.InferenceSession.create(readFileSync(model), {
        executionProviders: ['wasm'],
        externalData: [{ path: basename(`${model}_data`), data: readFileSync(`${model}_data`) }],
      });
      try {
        const onWeb = await greedyOrtNode(ortWeb, web, PROMPT_A, 16, { shape: S });
        const onNode = await greedyOrtNode(ort, sessions[`mha ${dtype}`]!, PROMPT_A, 16, {
          shape: S,
          force: onWeb.ids,
        });
        onWeb.logits.forEach((l, i) =>
          expect(maxAbsDiff(l, onNode.logits[i]!), `step ${i}`).toBeLessThan(tol),
        );
      } finally {
        await web.release();
      }
    },
  );
});

describe('the generator writes the MultiHeadAttention form deterministically', () => {
  it('writes byte-identical files for the same seed, and refuses shared KV heads', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiny-phi3-mha-'));
    try {
      generatePhi3({ outDir: dir, layouts: ['web'], webAttention: 'mha', numKvHeads: 4 });
      for (const f of readdirSync(join(paths.web, 'onnx')))
        expect(
          readFileSync(join(dir, 'web-mha', 'onnx', f)).equals(
            readFileSync(join(paths.web, 'onnx', f)),
          ),
          f,
        ).toBe(true);
      expect(() => generatePhi3({ outDir: dir, layouts: ['web'], webAttention: 'mha' })).toThrow(
        /needs --kv-heads 4/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('engines feed position_ids to the MultiHeadAttention form', () => {
  it('transformers.js generates the onnxruntime-node loop greedy ids (q4 and q4f16)', async () => {
    env.allowRemoteModels = false;
    env.allowLocalModels = true;
    env.localModelPath = '';
    const tokenizer = await AutoTokenizer.from_pretrained(paths.web);
    const prompt = tokenizer.apply_chat_template(
      [{ role: 'user', content: 'Hello! What is the capital of France?' }],
      { tokenize: false, add_generation_prompt: true },
    ) as string;
    const inputs = tokenizer(prompt, { add_special_tokens: false });
    const promptIds = Array.from(inputs.input_ids.data as BigInt64Array, Number);
    for (const dtype of ['q4', 'q4f16'] as const) {
      const model = await AutoModelForCausalLM.from_pretrained(paths.web, { dtype, device: 'cpu' });
      try {
        const out = (await model.generate({
          ...inputs,
          max_new_tokens: 16,
          do_sample: false,
        })) as Tensor;
        const generated = Array.from(out.data as BigInt64Array, Number).slice(promptIds.length);
        const reference = await greedyOrtNode(ort, sessions[`mha ${dtype}`]!, promptIds, 16, {
          stopOnEos: true,
          shape: S,
        });
        expect(generated, dtype).toEqual(reference.ids);
        expect(generated).toHaveLength(16);
      } finally {
        await model.dispose();
      }
    }
  });

  it('OrtCausalLM feeds positions past + i, in one run or in chunks', async () => {
    const session = (await ort.InferenceSession.create(
      graph(paths.web, 'q4'),
    )) as unknown as OrtSessionLike;
    const runtime: OrtRuntime = {
      backend: 'cpu',
      threads: 1,
      createSession: () => Promise.resolve(session),
      tensor: (type, data, dims) => new ort.Tensor(type, data as Float32Array, dims as number[]),
    };
    const layout = {
      inputIds: 'input_ids',
      attentionMask: 'attention_mask',
      positionIds: 'position_ids',
      logits: 'logits',
      pastKeys: [0, 1].map((l) => `past_key_values.${l}.key`),
      pastValues: [0, 1].map((l) => `past_key_values.${l}.value`),
      presentKeys: [0, 1].map((l) => `present.${l}.key`),
      presentValues: [0, 1].map((l) => `present.${l}.value`),
      numKvHeads: S.numKvHeads,
      headSize: S.headSize,
      contextLength: S.contextLength,
    };
    const whole = new OrtCausalLM(runtime, session, layout);
    const pieces = new OrtCausalLM(runtime, session, layout, 4);
    const ref = await greedyOrtNode(ort, sessions['mha q4']!, PROMPT_A, 8, { shape: S });
    for (const lm of [whole, pieces]) {
      let logits = await lm.forward(PROMPT_A);
      for (let step = 0; step < 8; step++) {
        expect(maxAbsDiff(logits, ref.logits[step]!), `step ${step}`).toBeLessThan(2e-3);
        logits = await lm.forward([ref.ids[step]!]);
      }
    }
  });
});
