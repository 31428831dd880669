// The generated graphs use the operators and attributes of onnxruntime-genai's CPU int4 export,
// keep small int64 constants inline, and the config files describe the model they sit next to.
// The full preset's configuration is checked without generating it.
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { PRESETS, genaiConfigJson, headSize, webConfigJson } from '../../scripts/make-tiny-phi3.ts';
import { readModel, type ReadModel } from '../../scripts/onnx/read.ts';
import { TINY, ensureTinyPhi3, type TinyPhi3Paths } from '../helpers/tiny-phi3.ts';

const FLOAT = 1;
const UINT8 = 2;
const INT64 = 7;
const FLOAT16 = 10;

let paths: TinyPhi3Paths;
const models: Record<string, { model: ReadModel; dir: string; dataFile: string; float: number }> =
  {};
const readJson = (...p: string[]) => JSON.parse(readFileSync(join(...p), 'utf8'));

beforeAll(async () => {
  paths = await ensureTinyPhi3();
  const genaiName = readJson(paths.genai, 'genai_config.json').model.decoder.filename as string;
  const load = (dir: string, file: string, dataFile: string, float: number) => ({
    model: readModel(readFileSync(join(dir, file))),
    dir,
    dataFile,
    float,
  });
  models.genai = load(paths.genai, genaiName, `${genaiName}.data`, FLOAT);
  const onnx = join(paths.web, 'onnx');
  models.q4 = load(onnx, 'model_q4.onnx', 'model_q4.onnx_data', FLOAT);
  models.q4f16 = load(onnx, 'model_q4f16.onnx', 'model_q4f16.onnx_data', FLOAT16);
});

describe.each(['genai', 'q4', 'q4f16'])('tiny Phi-3 graph (%s)', (name) => {
  const get = () => models[name]!;
  const ops = () => get().model.nodes.map((n) => `${n.domain || 'ai.onnx'}:${n.opType}`);
  const count = (op: string) => ops().filter((o) => o === op).length;

  it('uses the builder CPU int4 operator set', () => {
    const L = TINY.numLayers;
    expect(count('ai.onnx:SimplifiedLayerNormalization')).toBe(1);
    expect(count('com.microsoft:SkipSimplifiedLayerNormalization')).toBe(2 * L);
    expect(count('com.microsoft:MatMulNBits')).toBe(5 * L + 1);
    expect(count('com.microsoft:GroupQueryAttention')).toBe(L);
    expect(count('ai.onnx:Sigmoid')).toBe(L);
    expect(count('ai.onnx:Mul')).toBe(2 * L);
    for (const op of ['ReduceSum', 'Sub', 'Shape']) expect(count(`ai.onnx:${op}`)).toBe(1);
    expect(count('ai.onnx:Gather')).toBe(2); // embedding + total_sequence_length
    expect(new Set(ops())).not.toContain('ai.onnx:MatMul');
    expect(get().model.opsets).toEqual([
      { domain: '', version: 17 },
      { domain: 'com.microsoft', version: 1 },
    ]);
  });

  it('writes MatMulNBits as 4-bit, block 32, accuracy level 4, symmetric', () => {
    const inits = new Map(get().model.initializers.map((t) => [t.name, t]));
    for (const n of get().model.nodes.filter((x) => x.opType === 'MatMulNBits')) {
      expect(n.attributes).toMatchObject({ bits: 4, block_size: 32, accuracy_level: 4 });
      expect(n.inputs).toHaveLength(3); // no zero points
      const k = n.attributes.K as number;
      const nOut = n.attributes.N as number;
      expect(inits.get(n.inputs[1]!)).toMatchObject({ dataType: UINT8, dims: [nOut, k / 32, 16] });
      expect(inits.get(n.inputs[2]!)).toMatchObject({
        dataType: get().float,
        dims: [nOut * (k / 32)],
      });
    }
    const qkv = get().model.nodes.find((x) => x.name.endsWith('qkv_proj/MatMul'))!;
    expect(qkv.attributes.N).toBe((TINY.numHeads + 2 * TINY.numKvHeads) * TINY.headSize);
    const lm = get().model.nodes.find((x) => x.name === '/lm_head/MatMul')!;
    expect(lm.attributes).toMatchObject({ K: TINY.hiddenSize, N: TINY.vocabSize });
  });

  it('runs GroupQueryAttention with rotary inside, packed QKV and mask-derived lengths', () => {
    const byOutput = new Map(get().model.nodes.flatMap((n) => n.outputs.map((o) => [o, n])));
    for (const gqa of get().model.nodes.filter((x) => x.opType === 'GroupQueryAttention')) {
      expect(gqa.attributes).toMatchObject({
        num_heads: TINY.numHeads,
        kv_num_heads: TINY.numKvHeads,
        do_rotary: 1,
        rotary_interleaved: 0,
      });
      const [q, k, v, , , seqlens, total, cos, sin] = gqa.inputs;
      expect([k, v]).toEqual(['', '']);
      expect(byOutput.get(q!)?.opType).toBe('MatMulNBits');
      expect([cos, sin]).toEqual(['cos_cache', 'sin_cache']);
      // seqlens_k = Cast(Sub(ReduceSum(attention_mask), 1)); total = Cast(Gather(Shape(mask), 1))
      const castS = byOutput.get(seqlens!)!;
      expect(castS.opType).toBe('Cast');
      expect(castS.attributes.to).toBe(6);
      expect(byOutput.get(castS.inputs[0]!)?.opType).toBe('Sub');
      const reduce = byOutput.get(byOutput.get(castS.inputs[0]!)!.inputs[0]!)!;
      expect(reduce.opType).toBe('ReduceSum');
      expect(reduce.inputs[0]).toBe('attention_mask');
      const castT = byOutput.get(total!)!;
      const gather = byOutput.get(castT.inputs[0]!)!;
      expect(gather.opType).toBe('Gather');
      expect(byOutput.get(gather.inputs[0]!)?.opType).toBe('Shape');
    }
    const cos = get().model.initializers.find((t) => t.name === 'cos_cache')!;
    expect(cos.dims).toEqual([TINY.contextLength, TINY.headSize / 2]);
    expect(cos.dataType).toBe(get().float);
    for (const ln of get().model.nodes.filter((x) =>
      x.opType.endsWith('SimplifiedLayerNormalization'),
    ))
      expect(ln.attributes.epsilon).toBeCloseTo(1e-5, 10);
  });

  it('keeps int64 constants inline and every large tensor inside the external-data file', () => {
    const { model, dir, dataFile } = get();
    const size = statSync(join(dir, dataFile)).size;
    for (const t of model.initializers) {
      if (t.dataType === INT64) {
        expect(t.external, t.name).toBeNull();
        expect(t.rawLength).toBeGreaterThan(0);
      } else {
        expect(t.external, t.name).not.toBeNull();
        expect(t.external!.location).toBe(dataFile);
        expect(Number(t.external!.offset) + Number(t.external!.length)).toBeLessThanOrEqual(size);
      }
    }
    expect(statSync(join(dir, dataFile.replace(/(\.data|_data)$/, ''))).size).toBeLessThan(
      64 * 1024,
    );
  });
});

describe('tiny Phi-3 configuration files', () => {
  it('web config.json and generation_config.json describe the web graph', () => {
    const config = readJson(paths.web, 'config.json');
    expect(config).toMatchObject({
      model_type: 'phi3',
      hidden_size: TINY.hiddenSize,
      num_hidden_layers: TINY.numLayers,
      num_attention_heads: TINY.numHeads,
      num_key_value_heads: TINY.numKvHeads,
      intermediate_size: 128,
      vocab_size: TINY.vocabSize,
      'transformers.js_config': {
        use_external_data_format: { 'model_q4.onnx': 1, 'model_q4f16.onnx': 1 },
        kv_cache_dtype: { q4f16: 'float16' },
      },
    });
    expect(readJson(paths.web, 'generation_config.json').eos_token_id).toEqual(TINY.eosTokenIds);
    const tc = readJson(paths.web, 'tokenizer_config.json');
    expect(tc.chat_template).toContain('<|assistant|>');
    expect(tc).toMatchObject({ bos_token: '<s>', eos_token: '<|endoftext|>' });
  });

  it('genai_config.json names the decoder file and its I/O like the real CPU int4 folder', () => {
    const c = readJson(paths.genai, 'genai_config.json');
    expect(c.model).toMatchObject({
      type: 'phi3',
      vocab_size: TINY.vocabSize,
      context_length: TINY.contextLength,
      bos_token_id: 1,
      pad_token_id: 32000,
      eos_token_id: [32000, 32001, 32007],
      decoder: {
        head_size: TINY.headSize,
        hidden_size: TINY.hiddenSize,
        num_attention_heads: TINY.numHeads,
        num_key_value_heads: TINY.numKvHeads,
        num_hidden_layers: TINY.numLayers,
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
      },
    });
    expect(c.search).toMatchObject({ do_sample: false, top_k: 1, past_present_share_buffer: true });
    expect(statSync(join(paths.genai, c.model.decoder.filename)).isFile()).toBe(true);
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'])
      expect(statSync(join(paths.genai, f)).isFile()).toBe(true);
  });

  it('the full preset is Phi-3-mini-shaped', () => {
    const full = PRESETS.full;
    expect(headSize(full)).toBe(96);
    const web = webConfigJson(full, { q4f16: 2 });
    expect(web).toMatchObject({
      hidden_size: 3072,
      num_hidden_layers: 32,
      num_attention_heads: 32,
      num_key_value_heads: 32,
      intermediate_size: 8192,
      vocab_size: 32064,
    });
    const genai = genaiConfigJson(full, 'x.onnx') as {
      model: { context_length: number; decoder: Record<string, unknown> };
    };
    expect(genai.model.context_length).toBe(4096);
    expect(genai.model.decoder).toMatchObject({
      head_size: 96,
      hidden_size: 3072,
      num_attention_heads: 32,
      num_key_value_heads: 32,
      num_hidden_layers: 32,
    });
  });
});
