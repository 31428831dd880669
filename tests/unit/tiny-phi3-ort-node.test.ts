// The generated tiny Phi-3 runs on onnxruntime-node with the real exports' I/O contract, its KV
// cache is consistent with a full prefill, prompts matter, and greedy decoding is reproducible.
import * as ort from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generatePhi3 } from '../../scripts/make-tiny-phi3.ts';
import {
  TINY,
  argmax,
  ensureTinyPhi3,
  greedyOrtNode,
  lastRowLogits,
  type TinyPhi3Paths,
} from '../helpers/tiny-phi3.ts';

let paths: TinyPhi3Paths;
const sessions: Record<string, ort.InferenceSession> = {};

const MODELS = {
  genai: { file: (p: TinyPhi3Paths) => p.genaiModel, kv: 'float32' },
  'web q4': { file: (p: TinyPhi3Paths) => join(p.web, 'onnx', 'model_q4.onnx'), kv: 'float32' },
  'web q4f16': {
    file: (p: TinyPhi3Paths) => join(p.web, 'onnx', 'model_q4f16.onnx'),
    kv: 'float16',
  },
} as const;
type ModelName = keyof typeof MODELS;

// Prefill-then-decode against one full prefill. MatMulNBits at accuracy level 4 quantizes
// activations to int8 per block, and the decode path (one row) and prefill path (many rows) run
// different kernels, so fp32 agreement is to about 1e-3; fp16 end to end to about 5e-2.
const TOLERANCE: Record<ModelName, number> = { genai: 2e-3, 'web q4': 2e-3, 'web q4f16': 6e-2 };

// Ids of learned tokens (bytes end at 258); any ids below the learned count are real text.
const PROMPT_A = [1, 32010, 13, 298, 441, 384, 259, 466, 330, 362, 32007, 13, 32001, 13];
const PROMPT_B = [1, 32010, 13, 300, 310, 320, 330, 340, 350, 360, 32007, 13, 32001, 13];

function emptyPast(kv: 'float32' | 'float16'): Record<string, ort.Tensor> {
  const past: Record<string, ort.Tensor> = {};
  for (let l = 0; l < TINY.numLayers; l++)
    for (const name of ['key', 'value'])
      past[`past_key_values.${l}.${name}`] = new ort.Tensor(
        kv,
        kv === 'float32' ? new Float32Array(0) : new Uint16Array(0),
        [1, TINY.numKvHeads, 0, TINY.headSize],
      );
  return past;
}

async function run(
  s: ort.InferenceSession,
  ids: number[],
  total: number,
  past: Record<string, ort.Tensor>,
) {
  return s.run({
    input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, ids.length]),
    attention_mask: new ort.Tensor('int64', new BigInt64Array(total).fill(1n), [1, total]),
    ...past,
  });
}

function presentsAsPast(out: ort.InferenceSession.ReturnType): Record<string, ort.Tensor> {
  const past: Record<string, ort.Tensor> = {};
  for (let l = 0; l < TINY.numLayers; l++)
    for (const name of ['key', 'value'])
      past[`past_key_values.${l}.${name}`] = out[`present.${l}.${name}`]!;
  return past;
}

const maxAbsDiff = (a: Float32Array, b: Float32Array) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

beforeAll(async () => {
  paths = await ensureTinyPhi3();
  for (const [name, m] of Object.entries(MODELS))
    sessions[name] = await ort.InferenceSession.create(m.file(paths));
});

describe.each(Object.keys(MODELS) as ModelName[])('tiny Phi-3 %s on onnxruntime-node', (name) => {
  const kv = MODELS[name].kv;

  it('has the real export input and output names, dtypes and fixed KV dims', () => {
    const s = sessions[name]!;
    const pastNames = [0, 1].flatMap((l) => [
      `past_key_values.${l}.key`,
      `past_key_values.${l}.value`,
    ]);
    const presentNames = [0, 1].flatMap((l) => [`present.${l}.key`, `present.${l}.value`]);
    expect(s.inputNames).toEqual(['input_ids', 'attention_mask', ...pastNames]);
    expect(s.outputNames).toEqual(['logits', ...presentNames]);
    const meta = Object.fromEntries(
      [...s.inputMetadata, ...s.outputMetadata].map((m) => [
        m.name,
        m.isTensor ? { type: m.type, shape: m.shape } : null,
      ]),
    );
    expect(meta.input_ids).toEqual({ type: 'int64', shape: ['batch_size', 'sequence_length'] });
    expect(meta.attention_mask).toEqual({
      type: 'int64',
      shape: ['batch_size', 'total_sequence_length'],
    });
    expect(meta['past_key_values.1.value']).toEqual({
      type: kv,
      shape: ['batch_size', TINY.numKvHeads, 'past_sequence_length', TINY.headSize],
    });
    expect(meta['present.0.key']).toEqual({
      type: kv,
      shape: ['batch_size', TINY.numKvHeads, 'total_sequence_length', TINY.headSize],
    });
    expect(meta.logits).toEqual({
      type: kv,
      shape: ['batch_size', 'sequence_length', TINY.vocabSize],
    });
  });

  it('gives the same logits from prefill-then-decode as from one full prefill', async () => {
    const s = sessions[name]!;
    const ids = PROMPT_A;
    const full = await run(s, ids, ids.length, emptyPast(kv));
    const split = 6;
    let out = await run(s, ids.slice(0, split), split, emptyPast(kv));
    expect(
      maxAbsDiff(lastRowLogits(out.logits!), lastRowLogits(full.logits!, split - 1)),
    ).toBeLessThan(TOLERANCE[name]);
    for (let pos = split; pos < ids.length; pos++) {
      out = await run(s, [ids[pos]!], pos + 1, presentsAsPast(out));
      expect(out['present.0.key']!.dims).toEqual([1, TINY.numKvHeads, pos + 1, TINY.headSize]);
      const step = lastRowLogits(out.logits!);
      const ref = lastRowLogits(full.logits!, pos);
      expect(maxAbsDiff(step, ref)).toBeLessThan(TOLERANCE[name]);
      expect(argmax(step)).toBe(argmax(ref));
    }
  });

  it('gives different step-0 logits for different prompts, and they are not flat', async () => {
    const s = sessions[name]!;
    const a = lastRowLogits((await run(s, PROMPT_A, PROMPT_A.length, emptyPast(kv))).logits!);
    const b = lastRowLogits((await run(s, PROMPT_B, PROMPT_B.length, emptyPast(kv))).logits!);
    expect(maxAbsDiff(a, b)).toBeGreaterThan(0.5);
    const spread = Math.max(...a) - Math.min(...a);
    expect(spread).toBeGreaterThan(5);
    // Only changing the last prompt token (same final query token excluded) must also matter.
    const c = [...PROMPT_A.slice(0, 4), 300, ...PROMPT_A.slice(5)];
    const cl = lastRowLogits((await run(s, c, c.length, emptyPast(kv))).logits!);
    expect(maxAbsDiff(a, cl)).toBeGreaterThan(0.05);
  });

  it('decodes the same 16 greedy ids run after run, in a fresh session', async () => {
    const first = await greedyOrtNode(ort, sessions[name]!, PROMPT_A, 16);
    const again = await greedyOrtNode(
      ort,
      await ort.InferenceSession.create(MODELS[name].file(paths)),
      PROMPT_A,
      16,
    );
    expect(again.ids).toEqual(first.ids);
    expect(first.ids).toHaveLength(16);
    expect(new Set(first.ids).size).toBeGreaterThan(4);
  });
});

describe('tiny Phi-3 layouts carry the same weights', () => {
  it('genai and web q4 agree exactly; q4f16 is within fp16 error at every step', async () => {
    const genai = await greedyOrtNode(ort, sessions.genai!, PROMPT_A, 16);
    const q4 = await greedyOrtNode(ort, sessions['web q4']!, PROMPT_A, 16);
    expect(q4.ids).toEqual(genai.ids);
    q4.logits.forEach((l, i) => expect(maxAbsDiff(l, genai.logits[i]!)).toBe(0));
    // fp16 activations end to end: logits span about 20, so 0.3 is ~1.5% of the range. Same
    // inputs at every step (teacher forcing), since a near tie may flip a greedy choice.
    const q4f16 = await greedyOrtNode(ort, sessions['web q4f16']!, PROMPT_A, 16, {
      force: genai.ids,
    });
    q4f16.logits.forEach((l, i) => expect(maxAbsDiff(l, genai.logits[i]!)).toBeLessThan(0.3));
  });
});

describe('tiny Phi-3 web weights split into external-data chunks', () => {
  it('loads from model_q4.onnx_data, _data_1, ... with the same logits', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiny-phi3-chunks-'));
    try {
      generatePhi3({
        outDir: dir,
        layouts: ['web'],
        webDtypes: ['q4'],
        webChunkBytes: 3 * 1024 * 1024,
      });
      const files = readdirSync(join(dir, 'web', 'onnx')).sort();
      expect(files).toContain('model_q4.onnx_data_1');
      const chunks = files.filter((f) => f.startsWith('model_q4.onnx_data')).length;
      const config = JSON.parse(readFileSync(join(dir, 'web', 'config.json'), 'utf8'));
      expect(config['transformers.js_config'].use_external_data_format).toEqual({
        'model_q4.onnx': chunks,
      });
      const chunked = await ort.InferenceSession.create(join(dir, 'web', 'onnx', 'model_q4.onnx'));
      const a = await greedyOrtNode(ort, chunked, PROMPT_A, 4);
      const b = await greedyOrtNode(ort, sessions['web q4']!, PROMPT_A, 4);
      expect(a.ids).toEqual(b.ids);
      expect(maxAbsDiff(a.logits[3]!, b.logits[3]!)).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
