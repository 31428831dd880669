// Serving the tiny Phi-3 through the project's generation loop on onnxruntime-node, in both
// layouts (genai: onnxruntime directly; web: transformers.js), checked against a plain greedy
// loop on an onnxruntime-node session of the same files.
import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import * as ortNode from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { runGeneration, type Engine } from '../../src/lib/inference/engine.ts';
import { normalizePath, type ModelFiles } from '../../src/lib/inference/engines/files.ts';
import { loadGenaiEngine } from '../../src/lib/inference/engines/ort-genai.ts';
import { createOrtRuntime, type OrtModule } from '../../src/lib/inference/engines/ort-runtime.ts';
import { loadTransformersEngine } from '../../src/lib/inference/engines/transformers-web.ts';
import type { CausalLM } from '../../src/lib/inference/generate.ts';
import { LocalGenerator } from '../../src/lib/inference/local.ts';
import type { UpdateMessage } from '../../src/lib/inference/protocol.ts';
import { ensureTinyPhi3, greedyOrtNode, type TinyPhi3Paths } from '../helpers/tiny-phi3.ts';

/** A model folder on disk. */
function dirFiles(dir: string): ModelFiles {
  const p = (path: string) => join(dir, normalizePath(path));
  return {
    name: basename(dir),
    has: async (path) => existsSync(p(path)),
    bytes: async (path, onProgress) => {
      const b = new Uint8Array(readFileSync(p(path)));
      onProgress?.(b.length, b.length);
      return b;
    },
    text: async (path) => readFileSync(p(path), 'utf8'),
    response: async (path) => {
      if (!existsSync(p(path))) return undefined;
      const b = readFileSync(p(path));
      return new Response(b, { headers: { 'content-length': String(b.length) } });
    },
    localPath: p,
  };
}

/** Wraps a model to record the logits it returns and count forward passes. */
class Recording implements CausalLM {
  logits: Float32Array[] = [];
  forwards = 0;
  constructor(private readonly inner: CausalLM) {}
  get contextLength() {
    return this.inner.contextLength;
  }
  async forward(ids: number[]) {
    this.forwards++;
    const l = await this.inner.forward(ids);
    this.logits.push(l);
    return l;
  }
  reset() {
    this.logits = [];
    return this.inner.reset();
  }
  dispose() {
    return this.inner.dispose();
  }
}

function recorded(engine: Engine): Engine & { lm: Recording } {
  return { ...engine, lm: new Recording(engine.lm) };
}

const PROMPT = '<|user|>\nTell me about the weather<|end|>\n<|assistant|>\n';
const STEPS = 12;
// int4 weights, fp32 activations: engines on the same runtime agree to float rounding.
const LOGIT_TOL = 1e-3;

let fixture: TinyPhi3Paths;
let genai: Engine & { lm: Recording };
let web: Engine & { lm: Recording };

beforeAll(async () => {
  fixture = await ensureTinyPhi3();
  const gFiles = dirFiles(fixture.genai);
  const runtime = createOrtRuntime(ortNode as unknown as OrtModule, gFiles, {
    backend: 'cpu',
    threads: 1,
    executionProviders: ['cpu'],
    preferPaths: true,
  });
  genai = recorded(await loadGenaiEngine(gFiles, runtime));
  web = recorded(
    await loadTransformersEngine(dirFiles(fixture.web), { device: 'cpu', dtype: 'q4' }),
  );
});

async function reference(graph: string, promptIds: number[], steps: number) {
  const session = await ortNode.InferenceSession.create(graph);
  try {
    return await greedyOrtNode(ortNode, session, promptIds, steps);
  } finally {
    await session.release();
  }
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe.each([
  ['genai layout (onnxruntime)', () => genai, () => fixture.genaiModel],
  ['web layout (transformers.js)', () => web, () => join(fixture.web, 'onnx', 'model_q4.onnx')],
])('%s', (_name, engineOf, graphOf) => {
  it('matches a plain onnxruntime-node greedy loop: same ids, logits within 1e-3 at every step', async () => {
    const engine = engineOf();
    const promptIds = engine.tokenizer.encode(PROMPT);
    const ref = await reference(graphOf(), promptIds, STEPS);
    const r = await runGeneration(
      engine,
      { kind: 'prompt', prompt: PROMPT },
      { max_tokens: STEPS, temperature: 0 },
    );
    const ids = r.choices[0]!.tokenIds;
    // The reference does not stop on eos; compare up to where ours stopped.
    expect(ids).toEqual(ref.ids.slice(0, ids.length));
    expect(engine.lm.logits.length).toBe(ids.length);
    engine.lm.logits.forEach((l, step) =>
      expect(maxDiff(l, ref.logits[step]!)).toBeLessThan(LOGIT_TOL),
    );
  });

  it('streams text whose pieces add up to the final answer, with counts and usage', async () => {
    const engine = engineOf();
    const updates: { text: string; tokenCount: number }[] = [];
    const r = await runGeneration(
      engine,
      { kind: 'chat', messages: [{ role: 'user', content: 'Hello there' }] },
      { max_tokens: 10 },
      { onToken: (e) => updates.push(e) },
    );
    const c = r.choices[0]!;
    expect(updates.map((u) => u.text).join('')).toBe(c.text);
    expect(updates.at(-1)!.tokenCount).toBe(c.tokenIds.length);
    // A chat answer is the assistant message without leading whitespace (MLflow's llm/v1/chat).
    expect(c.text).toBe(engine.tokenizer.decode(c.tokenIds).trimStart());
    const promptTokens = engine.tokenizer.encodeChat([
      { role: 'user', content: 'Hello there' },
    ]).length;
    expect(r.usage).toEqual({
      prompt_tokens: promptTokens,
      completion_tokens: c.tokenIds.length,
      total_tokens: promptTokens + c.tokenIds.length,
    });
  });

  it('ends with finish_reason "length" after max_tokens, and counts max_length with the prompt', async () => {
    const engine = engineOf();
    const r = await runGeneration(engine, { kind: 'prompt', prompt: PROMPT }, { max_tokens: 5 });
    expect(r.choices[0]!.finishReason).toBe('length');
    expect(r.usage.completion_tokens).toBe(5);
    const promptTokens = r.usage.prompt_tokens;
    const r2 = await runGeneration(
      engine,
      { kind: 'prompt', prompt: PROMPT },
      { max_length: promptTokens + 3 },
    );
    expect(r2.usage.completion_tokens).toBe(3);
    expect(r2.choices[0]!.tokenIds).toEqual(r.choices[0]!.tokenIds.slice(0, 3));
  });

  it('stops at a stop sequence that spans tokens and leaves it out of the answer', async () => {
    const engine = engineOf();
    const full = (
      await runGeneration(engine, { kind: 'prompt', prompt: PROMPT }, { max_tokens: 20 })
    ).choices[0]!;
    // Pick a stop string that straddles the boundary between the 3rd and 4th generated tokens.
    const before = engine.tokenizer.decode(full.tokenIds.slice(0, 3));
    const stop = full.text.slice(before.length - 1, before.length + 2);
    expect(stop.length).toBe(3);
    const cut = full.text.indexOf(stop);
    const r = await runGeneration(
      engine,
      { kind: 'prompt', prompt: PROMPT },
      { max_tokens: 20, stop: [stop] },
    );
    expect(r.choices[0]!.text).toBe(full.text.slice(0, cut));
    expect(r.choices[0]!.finishReason).toBe('stop');
    expect(r.usage.completion_tokens).toBeLessThan(full.tokenIds.length);
  });

  it('reproduces sampled answers from a seed, and n choices differ from one another', async () => {
    const engine = engineOf();
    const params = { temperature: 1.2, top_p: 0.95, top_k: 50, max_tokens: 8, seed: 1234, n: 3 };
    const a = await runGeneration(engine, { kind: 'prompt', prompt: PROMPT }, params);
    const b = await runGeneration(engine, { kind: 'prompt', prompt: PROMPT }, params);
    expect(a.choices.map((c) => c.tokenIds)).toEqual(b.choices.map((c) => c.tokenIds));
    expect(a.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    expect(new Set(a.choices.map((c) => c.tokenIds.join(','))).size).toBeGreaterThan(1);
    const other = await runGeneration(
      engine,
      { kind: 'prompt', prompt: PROMPT },
      { ...params, seed: 99 },
    );
    expect(other.choices.map((c) => c.tokenIds)).not.toEqual(a.choices.map((c) => c.tokenIds));
    expect(a.usage.completion_tokens).toBe(a.choices.reduce((s, c) => s + c.tokenIds.length, 0));
  });
});

describe('both layouts', () => {
  it('give the same greedy answer (same weights, two file layouts, two engines)', async () => {
    const params = { max_tokens: STEPS, temperature: 0 };
    const g = await runGeneration(genai, { kind: 'prompt', prompt: PROMPT }, params);
    const w = await runGeneration(web, { kind: 'prompt', prompt: PROMPT }, params);
    expect(w.choices[0]!.tokenIds).toEqual(g.choices[0]!.tokenIds);
  });

  it('a different prompt changes the first-step logits (the prompt really reaches the model)', async () => {
    await runGeneration(genai, { kind: 'prompt', prompt: 'The cat sat' }, { max_tokens: 1 });
    const a = genai.lm.logits[0]!;
    await runGeneration(genai, { kind: 'prompt', prompt: 'A dog ran far away' }, { max_tokens: 1 });
    const b = genai.lm.logits[0]!;
    expect(maxDiff(a, b)).toBeGreaterThan(1e-2);
  });
});

describe('interrupting', () => {
  it('stops within one token, and the next request gets only its own tokens', async () => {
    const gen = new LocalGenerator(genai);
    const first = gen.generate({ kind: 'prompt', prompt: PROMPT }, { max_tokens: 200 });
    let seen = 0;
    for await (const u of first) {
      seen = u.tokenCount;
      if (u.tokenCount === 3) first.interrupt();
    }
    const done = await first.result;
    expect(done.interrupted).toBe(true);
    expect(done.usage.completion_tokens).toBeLessThanOrEqual(4);
    expect(seen).toBeLessThanOrEqual(4);

    const expected = await runGeneration(
      genai,
      { kind: 'prompt', prompt: 'Another question' },
      { max_tokens: 6 },
    );
    const second = gen.generate({ kind: 'prompt', prompt: 'Another question' }, { max_tokens: 6 });
    const got: UpdateMessage[] = [];
    for await (const u of second) got.push(u);
    expect(got.every((u) => u.requestId === second.requestId)).toBe(true);
    expect(got.flatMap((u) => u.tokenIds)).toEqual(expected.choices[0]!.tokenIds);
    expect((await second.result).text).toBe(expected.choices[0]!.text);
  });

  it('queues a request sent while another runs and serves both in order', async () => {
    const gen = new LocalGenerator(web);
    const a = gen.generate({ kind: 'prompt', prompt: 'one' }, { max_tokens: 4 });
    const b = gen.generate({ kind: 'prompt', prompt: 'two' }, { max_tokens: 4 });
    const [ra, rb] = await Promise.all([a.result, b.result]);
    expect(ra.requestId).toBe(a.requestId);
    expect(rb.requestId).toBe(b.requestId);
    expect(ra.usage.completion_tokens).toBe(4);
    expect(rb.usage.completion_tokens).toBe(4);
  });
});

describe('bad requests', () => {
  it('are refused with a message naming the parameter', async () => {
    const run = (params: object) => runGeneration(genai, { kind: 'prompt', prompt: 'x' }, params);
    await expect(run({ temperature: -1 })).rejects.toThrow(/temperature/);
    await expect(run({ top_p: 0 })).rejects.toThrow(/top_p/);
    await expect(run({ max_tokens: 1.5 })).rejects.toThrow(/max_tokens/);
    await expect(run({ n: 0 })).rejects.toThrow(/\bn\b/);
    await expect(
      runGeneration(genai, { kind: 'prompt', prompt: 'word '.repeat(600) }, {}),
    ).rejects.toThrow(/context holds 512/);
  });
});
