// The llm/v1/chat and {prompt} signatures over a real engine (tiny Phi-3, onnxruntime-node), and
// the configuration choices a load makes (backend, weight variant, genai_config.json).
import { join } from 'node:path';
import * as ortNode from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  chatCompletion,
  chatCompletionChunks,
  parseChatRequest,
  predictChat,
  predictPrompt,
  promptColumn,
} from '../../src/lib/inference/adapters.ts';
import { runGeneration, type Engine } from '../../src/lib/inference/engine.ts';
import { chooseBackend, chooseWebDtype } from '../../src/lib/inference/engines/backend.ts';
import { filesFromMap } from '../../src/lib/inference/engines/files.ts';
import { loadGenaiEngine, parseGenaiConfig } from '../../src/lib/inference/engines/ort-genai.ts';
import { createOrtRuntime, type OrtModule } from '../../src/lib/inference/engines/ort-runtime.ts';
import { LocalGenerator } from '../../src/lib/inference/local.ts';
import { readFileSync, readdirSync } from 'node:fs';
import { ensureTinyPhi3 } from '../helpers/tiny-phi3.ts';

let engine: Engine;
let gen: LocalGenerator;
let genaiConfig: Record<string, unknown>;

beforeAll(async () => {
  const { genai } = await ensureTinyPhi3();
  // Files handed over in memory, as from IndexedDB, with onnxruntime given bytes + externalData.
  const map: Record<string, ArrayBuffer> = {};
  for (const f of readdirSync(genai)) {
    const b = readFileSync(join(genai, f));
    map[f] = b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
  }
  genaiConfig = JSON.parse(readFileSync(join(genai, 'genai_config.json'), 'utf8'));
  const files = filesFromMap('tiny-genai', map);
  // onnxruntime-web's wasm backend in Node: the browser's CPU path, fed from memory.
  const ortWeb = (await import('onnxruntime-web')) as unknown as OrtModule & {
    env: { wasm: { numThreads: number } };
  };
  ortWeb.env.wasm.numThreads = 1;
  const runtime = createOrtRuntime(ortWeb, files, {
    backend: 'wasm',
    threads: 1,
    executionProviders: ['wasm'],
  });
  engine = await loadGenaiEngine(files, runtime);
  gen = new LocalGenerator(engine);
});

const MESSAGES = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: 'What is a run?' },
];

describe('llm/v1/chat', () => {
  it('answers with an OpenAI chat.completion object', async () => {
    const c = await chatCompletion(
      gen,
      { messages: MESSAGES, max_tokens: 6 },
      { model: 'phi3', created: 1700000000 },
    );
    expect(c).toMatchObject({ object: 'chat.completion', created: 1700000000, model: 'phi3' });
    expect(c.id).toMatch(/^chatcmpl-[0-9a-f]{24}$/);
    expect(c.choices).toHaveLength(1);
    expect(c.choices[0]!.message.role).toBe('assistant');
    expect(c.choices[0]!.finish_reason).toMatch(/^(stop|length)$/);
    const direct = await runGeneration(
      engine,
      { kind: 'chat', messages: MESSAGES as never },
      { max_tokens: 6, temperature: 0 },
    );
    expect(c.choices[0]!.message.content).toBe(direct.choices[0]!.text);
    expect(c.usage).toEqual(direct.usage);
  });

  it('streams chunks that add up to the same answer, usage on the last', async () => {
    const whole = await chatCompletion(
      gen,
      { messages: MESSAGES, max_tokens: 6 },
      { model: 'phi3' },
    );
    const chunks = [];
    for await (const ch of chatCompletionChunks(
      gen,
      { messages: MESSAGES, max_tokens: 6, stream: true },
      { model: 'phi3' },
    )) {
      chunks.push(ch);
    }
    expect(chunks[0]!.choices[0]!.delta).toEqual({ role: 'assistant', content: '' });
    expect(chunks.map((c) => c.choices[0]!.delta.content ?? '').join('')).toBe(
      whole.choices[0]!.message.content,
    );
    expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe(whole.choices[0]!.finish_reason);
    expect(chunks.at(-1)!.usage).toEqual(whole.usage);
    expect(
      chunks
        .slice(0, -1)
        .every((c) => c.usage === undefined && c.choices[0]!.finish_reason === null),
    ).toBe(true);
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
  });

  it('returns n choices and sums their tokens in usage', async () => {
    const c = await chatCompletion(
      gen,
      { messages: MESSAGES, max_tokens: 4, n: 2, temperature: 1, seed: 7 },
      { model: 'phi3' },
    );
    expect(c.choices.map((x) => x.index)).toEqual([0, 1]);
    expect(c.usage.total_tokens).toBe(c.usage.prompt_tokens + c.usage.completion_tokens);
    expect(c.usage.completion_tokens).toBeLessThanOrEqual(8);
  });

  it('predict returns one response per request, as MLflow pyfunc does', async () => {
    const out = await predictChat(
      gen,
      [
        { messages: MESSAGES, max_tokens: 2 },
        { messages: MESSAGES, max_tokens: 3 },
      ],
      {
        model: 'phi3',
      },
    );
    expect(out).toHaveLength(2);
    expect(out[1]!.usage.completion_tokens).toBeLessThanOrEqual(3);
  });

  it('validates requests against the signature and names the field', () => {
    expect(() => parseChatRequest({})).toThrow(/"messages" must be a non-empty list/);
    expect(() => parseChatRequest({ messages: [{ role: 'tool', content: 'x' }] })).toThrow(
      /messages\[0\]\.role/,
    );
    expect(() => parseChatRequest({ messages: [{ role: 'user', content: 3 }] })).toThrow(
      /messages\[0\]\.content must be a string/,
    );
    expect(() => parseChatRequest({ messages: MESSAGES, max_tokens: 'ten' })).toThrow(
      /"max_tokens" must be an integer/,
    );
    expect(() => parseChatRequest({ messages: MESSAGES, stop: [1] })).toThrow(/"stop"/);
    expect(() => parseChatRequest({ messages: MESSAGES, frequency: 1 })).toThrow(
      /unknown field "frequency"/,
    );
    const ok = parseChatRequest({
      messages: [{ role: 'user', content: 'hi', name: 'ann' }],
      stop: 'END',
      stream: true,
    });
    expect(ok.params.stop).toEqual(['END']);
    expect(ok.stream).toBe(true);
    expect(ok.params.max_tokens).toBe(256);
  });
});

describe('{prompt} -> string', () => {
  const PROMPT = '<|system|>You are helpful.<|end|><|user|>Name a colour.<|end|><|assistant|>';

  it('uses the prompt as is, greedy, max_length 300 with the prompt, and returns only the new text', async () => {
    const answer = await predictPrompt(gen, { prompt: [PROMPT] });
    const ids = engine.tokenizer.encode(PROMPT);
    const direct = await runGeneration(
      engine,
      { kind: 'prompt', prompt: PROMPT },
      { max_length: 300, temperature: 0 },
    );
    expect(answer).toBe(direct.choices[0]!.text);
    expect(direct.usage.prompt_tokens).toBe(ids.length);
    expect(direct.usage.completion_tokens).toBeLessThanOrEqual(300 - ids.length);
    expect(answer.startsWith(PROMPT)).toBe(false);
    // Same model, same prompt: one exact text, every time.
    expect(await predictPrompt(gen, { prompt: PROMPT })).toBe(answer);
  });

  it('reads the prompt column from every input shape MLflow accepts', () => {
    expect(promptColumn({ prompt: 'a' })).toEqual(['a']);
    expect(promptColumn({ prompt: ['a', 'b'] })).toEqual(['a', 'b']);
    expect(promptColumn([{ prompt: 'a' }])).toEqual(['a']);
    expect(promptColumn({ dataframe_records: [{ prompt: 'a' }] })).toEqual(['a']);
    expect(promptColumn({ dataframe_split: { columns: ['prompt'], data: [['a']] } })).toEqual([
      'a',
    ]);
    expect(promptColumn({ inputs: { prompt: ['a'] } })).toEqual(['a']);
    expect(() => promptColumn({ text: 'a' })).toThrow(/missing required column "prompt"/);
    expect(() => promptColumn({ prompt: [1] })).toThrow(/prompt\[0\] must be a string/);
  });
});

describe('load choices', () => {
  const swiftshader = {
    vendor: 'google',
    architecture: 'swiftshader',
    description: '',
    isFallbackAdapter: true,
    shaderF16: false,
  };
  const f16gpu = {
    ...swiftshader,
    architecture: 'ampere',
    isFallbackAdapter: false,
    shaderF16: true,
  };

  it('picks WebGPU when an adapter exists, WASM otherwise, and honours an override', () => {
    expect(chooseBackend('auto', f16gpu)).toBe('webgpu');
    expect(chooseBackend('auto', null)).toBe('wasm');
    expect(chooseBackend('wasm', f16gpu)).toBe('wasm');
    expect(() => chooseBackend('webgpu', null)).toThrow(/no WebGPU adapter/);
  });

  it('picks q4f16 only on an adapter with shader-f16', () => {
    expect(chooseWebDtype('auto', 'webgpu', f16gpu)).toBe('q4f16');
    expect(chooseWebDtype('auto', 'webgpu', swiftshader)).toBe('q4');
    expect(chooseWebDtype('auto', 'wasm', null)).toBe('q4');
    expect(chooseWebDtype('auto', 'webgpu', f16gpu, { q4: true, q4f16: false })).toBe('q4');
    expect(() => chooseWebDtype('q4f16', 'webgpu', swiftshader)).toThrow(/shader-f16/);
  });

  it('reads genai_config.json and names the key when something is wrong', () => {
    const c = parseGenaiConfig(genaiConfig);
    expect(c.layout.pastKeys).toEqual(['past_key_values.0.key', 'past_key_values.1.key']);
    expect(c.layout.presentValues[1]).toBe('present.1.value');
    expect(c.layout).toMatchObject({ numKvHeads: 2, headSize: 16, contextLength: 512 });
    expect(c.eosTokenIds).toEqual([32000, 32001, 32007]);
    // do_sample false: greedy, whatever temperature says.
    expect(c.search.temperature).toBe(0);
    const broken = structuredClone(genaiConfig) as { model: { decoder: Record<string, unknown> } };
    broken.model.decoder.num_hidden_layers = 'two';
    expect(() => parseGenaiConfig(broken)).toThrow(
      /"model\.decoder\.num_hidden_layers" must be a positive integer/,
    );
    expect(() => parseGenaiConfig({ model: {} })).toThrow(/"model\.decoder" is missing/);
  });

  it('stops on the config eos ids and on <|end|>', () => {
    for (const id of [32000, 32001, 32007]) expect(engine.eosIds.has(id)).toBe(true);
  });

  it('matches onnxruntime-node on the wasm backend (greedy ids)', async () => {
    const { genaiModel } = await ensureTinyPhi3();
    const session = await ortNode.InferenceSession.create(genaiModel);
    const prompt = 'Hello there, model';
    const ids = engine.tokenizer.encode(prompt);
    const { greedyOrtNode } = await import('../helpers/tiny-phi3.ts');
    const ref = await greedyOrtNode(ortNode, session, ids, 8, { stopOnEos: true });
    await session.release();
    const r = await runGeneration(
      engine,
      { kind: 'prompt', prompt },
      { max_tokens: 8, temperature: 0 },
    );
    expect(r.choices[0]!.tokenIds).toEqual(ref.ids);
  });
});
