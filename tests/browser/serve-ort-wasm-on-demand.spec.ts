// Stock onnxruntime-web WASM in the real inference worker, fed the weights on demand: the worker
// gets Blobs, onnxruntime reads each initializer's range through FileReaderSync while it builds
// the session. Its greedy tokens must be exactly those of the same engine loading the whole file
// first (onnxruntime-node is no oracle for ids here: native rounds activations to int8 and wasm
// does not, so near ties can go either way; tiny-phi3-ort-web.test.ts compares their logits).
import { expect, test } from '@playwright/test';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { InferenceTestHook } from '../../src/lib/inference/test-hook.ts';
import { ensureTinyPhi3, type TinyPhi3Paths } from '../helpers/tiny-phi3.ts';

declare global {
  interface Window {
    __tabflowInference: InferenceTestHook;
  }
}

test.use({ serviceWorkers: 'block' });

const FIXTURE = '/__tiny-phi3-on-demand/';
const PROMPT = '<|user|>\nTell me about the weather<|end|>\n<|assistant|>\n';
const STEPS = 8;

let fixture: TinyPhi3Paths;

test.beforeAll(async () => {
  fixture = await ensureTinyPhi3();
});

test('onnxruntime-web WASM serves the genai layout from Blobs read on demand, with the tokens of a whole-file load', async ({
  page,
}) => {
  await page.route(`**${FIXTURE}**`, async (route) => {
    const path = new URL(route.request().url()).pathname;
    const name = decodeURIComponent(path.slice(path.indexOf(FIXTURE) + FIXTURE.length));
    const file = join(fixture.genai, name);
    if (name.includes('/') || !existsSync(file)) return route.fulfill({ status: 404 });
    await route.fulfill({ body: readFileSync(file), contentType: 'application/octet-stream' });
  });
  await page.goto('./?inference-test');
  await page.waitForFunction(() => '__tabflowInference' in window);
  const r = await page.evaluate(
    async ({ base, names, PROMPT, STEPS }) => {
      const files: Record<string, Blob> = {};
      for (const n of names) files[n] = await (await fetch(base + n)).blob();
      const out: Record<string, { engine?: string; ids: number[] }> = {};
      for (const weightsReading of ['on-demand', 'whole-file'] as const) {
        const client = new window.__tabflowInference.InferenceClient();
        const ready = await client.load({
          source: { kind: 'files', files },
          layout: 'genai',
          backend: 'ort-wasm',
          dtype: 'auto',
          weightsReading,
        });
        const done = await client.generate(
          { kind: 'prompt', prompt: PROMPT },
          { max_tokens: STEPS, temperature: 0 },
        ).result;
        out[weightsReading] = { engine: ready.engine, ids: done.choices[0]!.tokenIds };
        client.dispose();
      }
      return out;
    },
    { base: FIXTURE, names: readdirSync(fixture.genai), PROMPT, STEPS },
  );
  expect(r['on-demand']!.engine).toBe('onnxruntime-wasm');
  expect(r['whole-file']!.engine).toBe('onnxruntime-wasm');
  expect(r['on-demand']!.ids.length).toBeGreaterThan(0);
  expect(r['on-demand']!.ids).toEqual(r['whole-file']!.ids);
});
