// WebGPU serving against onnxruntime-node over many prompt lengths, through the app's worker.
//
// Prompts from 1 to 129 tokens (around the powers of two where kernels change their tiling) go
// one after another into one loaded model, each answered with a few greedy tokens; then the first
// prompt again, which must give the same ids (nothing carried over between requests: KV cache,
// positions, disposed GPU buffers). onnxruntime-web's WebGPU kernels get a run of 32 or more new
// tokens wrong (WEBGPU_MAX_TOKENS_PER_RUN): without the engines' chunked prefill the prompts of
// 64 and 65 tokens fail here on the first token. Every token is judged under native's logits on the browser's
// own ids: native's argmax, or a near-tie within the activation rounding that the exported
// accuracy_level 4 graphs allow (tests/helpers/webgpu-parity.ts). Most must be native's argmax
// exactly, so a broken engine cannot hide behind the tolerance.
import { expect, test } from '@playwright/test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { InferenceTestHook } from '../../src/lib/inference/test-hook.ts';
import type { InferenceClient } from '../../src/lib/inference/client.ts';
import { TextTokenizer } from '../../src/lib/inference/tokenizer.ts';
import { ensureTinyPhi3, type TinyPhi3Paths } from '../helpers/tiny-phi3.ts';
import { judgeGreedy } from '../helpers/webgpu-parity.ts';
import { listFiles, serveFolder } from './support/fixture-files.ts';

declare global {
  interface Window {
    __tabflowInference: InferenceTestHook;
    __client: InferenceClient;
  }
}

test.use({ serviceWorkers: 'block' });

const FIXTURE = '/__tiny-phi3/';
const LENGTHS = [1, 2, 3, 5, 8, 14, 15, 16, 17, 31, 32, 33, 64, 65, 129];
const STEPS = 3;
const EOS = [32000, 32001, 32007];
const WORDS = (
  'the weather over the hills turned cold and clear so we walked along the river ' +
  'counting boats and talking about rain wind snow and the long summer that never came back'
).split(' ');

let fixture: TinyPhi3Paths;

test.beforeAll(async () => {
  fixture = await ensureTinyPhi3();
});

/** A raw prompt of exactly `n` tokens as the layout's runtime encodes it. */
function promptOfLength(tok: TextTokenizer, n: number): string {
  let text = '';
  for (let i = 0; ; i++) {
    const next = `${text}${text ? ' ' : ''}${WORDS[i % WORDS.length]}`;
    const len = tok.encode(next, { addSpecialTokens: true }).length;
    if (len === n) return next;
    if (len > n) {
      // The word added more than one token: fill the rest with single-token words.
      let filled = text;
      while (tok.encode(filled, { addSpecialTokens: true }).length < n) filled += ' a';
      if (tok.encode(filled, { addSpecialTokens: true }).length === n) return filled;
      throw new Error(`cannot build a prompt of ${n} tokens`);
    }
    text = next;
  }
}

for (const layout of ['genai', 'web'] as const) {
  test(`WebGPU tokens match onnxruntime-node at prompt lengths 1-129 (${layout} layout)`, async ({
    page,
  }) => {
    test.setTimeout(300_000);
    const dir = layout === 'genai' ? fixture.genai : fixture.web;
    const graph =
      layout === 'genai' ? fixture.genaiModel : join(fixture.web, 'onnx', 'model_q4.onnx');
    const tok = TextTokenizer.fromFiles(
      readFileSync(join(dir, 'tokenizer.json')),
      readFileSync(join(dir, 'tokenizer_config.json')),
      { runtime: layout === 'genai' ? 'onnxruntime-genai' : 'transformers' },
    );
    const prompts = LENGTHS.map((n) => promptOfLength(tok, n));
    // The first prompt again at the end: the same ids or state leaked between requests.
    prompts.push(prompts[0]!);

    await serveFolder(page, FIXTURE, dir);
    await page.goto('./?inference-test');
    await page.waitForFunction(() => '__tabflowInference' in window);
    const r = await page.evaluate(
      async ({ base, names, layout, prompts, STEPS }) => {
        const files: Record<string, Blob> = {};
        for (const n of names) {
          const res = await fetch(base + n);
          if (!res.ok) throw new Error(`fixture ${n}: ${res.status}`);
          files[n] = await res.blob();
        }
        const client = new window.__tabflowInference.InferenceClient();
        window.__client = client;
        const ready = await client.load({
          source: { kind: 'files', files },
          layout,
          backend: 'webgpu',
          dtype: 'auto',
          modelName: 'tiny-phi3',
        });
        const answers = [];
        for (const prompt of prompts) {
          const done = await client.generate(
            { kind: 'prompt', prompt },
            { max_tokens: STEPS, temperature: 0 },
          ).result;
          answers.push({ ids: done.choices[0]!.tokenIds, promptTokens: done.usage.prompt_tokens });
        }
        return { ready, answers };
      },
      { base: FIXTURE, names: listFiles(dir), layout, prompts, STEPS },
    );
    expect(r.ready.backend).toBe('webgpu');
    expect(r.ready.engine).toBe('onnxruntime-webgpu');

    const failures: string[] = [];
    let steps = 0;
    let nearTies = 0;
    for (const [i, prompt] of prompts.entries()) {
      const promptIds = tok.encode(prompt, { addSpecialTokens: true });
      const { ids, promptTokens } = r.answers[i]!;
      expect(promptTokens, `prompt ${i}`).toBe(promptIds.length);
      expect(ids.length === STEPS || EOS.includes(ids.at(-1)!), `prompt ${i}: ${ids}`).toBe(true);
      const judged = await judgeGreedy(graph, promptIds, ids);
      for (const f of judged.failures) failures.push(`${promptIds.length} tokens, ${f}`);
      steps += judged.steps.length;
      nearTies += judged.nearTies;
    }
    const summary = `${layout}/webgpu: ${steps} tokens over ${prompts.length} prompts of ${LENGTHS.join(', ')} tokens; ${nearTies} near-ties decided otherwise than native`;
    console.log(summary);
    test.info().annotations.push({ type: 'parity', description: summary });
    expect(failures).toEqual([]);
    expect(nearTies).toBeLessThanOrEqual(Math.floor(steps / 5));
    expect(r.answers.at(-1)!.ids).toEqual(r.answers[0]!.ids);
  });
}
