// WebGPU engines feed long prompts in chunks (WEBGPU_MAX_TOKENS_PER_RUN): the chunks must add up
// to the same KV cache and logits as one run. Checked on onnxruntime-node with the tiny Phi-3.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ortNode from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  OrtCausalLM,
  WEBGPU_MAX_TOKENS_PER_RUN,
  chunked,
  type OrtRuntime,
  type OrtSessionLike,
} from '../../src/lib/inference/engines/ort-causal-lm.ts';
import { parseGenaiConfig } from '../../src/lib/inference/engines/ort-genai.ts';
import { ensureTinyPhi3, type TinyPhi3Paths } from '../helpers/tiny-phi3.ts';

let fixture: TinyPhi3Paths;

beforeAll(async () => {
  fixture = await ensureTinyPhi3();
});

describe('chunked', () => {
  it('splits into consecutive pieces of at most the limit, or leaves the ids whole', () => {
    const ids = Array.from({ length: 40 }, (_, i) => i);
    expect(chunked(ids, 16)).toEqual([ids.slice(0, 16), ids.slice(16, 32), ids.slice(32)]);
    expect(chunked(ids, 40)).toEqual([ids]);
    expect(chunked(ids)).toEqual([ids]);
    expect(chunked([1, 2], 1)).toEqual([[1], [2]]);
    expect(WEBGPU_MAX_TOKENS_PER_RUN).toBeLessThan(32);
  });
});

describe('OrtCausalLM with a chunk limit', () => {
  async function lm(max?: number): Promise<OrtCausalLM> {
    const config = parseGenaiConfig(
      JSON.parse(readFileSync(join(fixture.genai, 'genai_config.json'), 'utf8')) as Record<
        string,
        unknown
      >,
    );
    const session = (await ortNode.InferenceSession.create(
      fixture.genaiModel,
    )) as unknown as OrtSessionLike;
    const runtime: OrtRuntime = {
      backend: 'cpu',
      threads: 1,
      createSession: () => Promise.resolve(session),
      tensor: (type, data, dims) =>
        new ortNode.Tensor(type, data as Float32Array, dims as number[]),
    };
    return new OrtCausalLM(runtime, session, config.layout, max);
  }

  function maxDiff(a: Float32Array, b: Float32Array): number {
    let m = 0;
    for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
    return m;
  }

  it('gives the logits of one run, and the same cache for the next step', async () => {
    const whole = await lm();
    const pieces = await lm(WEBGPU_MAX_TOKENS_PER_RUN);
    try {
      for (const n of [5, 16, 17, 40, 70]) {
        const ids = Array.from({ length: n }, (_, i) => 300 + ((i * 37) % 200));
        await whole.reset();
        await pieces.reset();
        const a = await whole.forward(ids);
        const b = await pieces.forward(ids);
        // accuracy_level 4 rounds activations per row either way; row counts only change kernels.
        expect(maxDiff(a, b), `${n} tokens`).toBeLessThan(2e-3);
        const a2 = await whole.forward([400]);
        const b2 = await pieces.forward([400]);
        expect(maxDiff(a2, b2), `${n} tokens, next step`).toBeLessThan(2e-3);
      }
    } finally {
      await whole.dispose();
      await pieces.dispose();
    }
  });
});
