// The web layout in the model builder's MultiHeadAttention + RotaryEmbedding + position_ids form,
// served in the app's real inference worker by transformers.js (which feeds position_ids itself)
// on onnxruntime-web wasm and on WebGPU (SwiftShader here). Each greedy token is judged under
// onnxruntime-node's logits on the browser's own ids: native's argmax, or within the activation
// rounding that separates the runtimes (tests/helpers/webgpu-parity.ts explains the 3%).
import { expect, test } from '@playwright/test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ortNode from 'onnxruntime-node';
import type { InferenceClient } from '../../src/lib/inference/client.ts';
import type { InferenceTestHook } from '../../src/lib/inference/test-hook.ts';
import { TextTokenizer } from '../../src/lib/inference/tokenizer.ts';
import {
  TINY_MHA,
  argmax,
  ensureTinyPhi3Mha,
  greedyOrtNode,
  type TinyPhi3MhaPaths,
} from '../helpers/tiny-phi3.ts';
import { ACTIVATION_ROUNDING_TOL } from '../helpers/webgpu-parity.ts';
import { listFiles, serveFolder } from './support/fixture-files.ts';

declare global {
  interface Window {
    __tabflowInference: InferenceTestHook;
    __client: InferenceClient;
  }
}

test.use({ serviceWorkers: 'block' });

const FIXTURE = '/__tiny-phi3-mha/';
const PROMPT = '<|user|>\nTell me about the weather<|end|>\n<|assistant|>\n';

let fixture: TinyPhi3MhaPaths;

test.beforeAll(async () => {
  fixture = await ensureTinyPhi3Mha();
});

for (const [backend, steps] of [
  ['ort-wasm', 8],
  ['webgpu', 4],
] as const) {
  test(`transformers.js serves the MultiHeadAttention web form on ${backend} with onnxruntime-node's tokens`, async ({
    page,
  }) => {
    if (backend === 'webgpu') test.setTimeout(300_000); // SwiftShader: about a second per token
    await serveFolder(page, FIXTURE, fixture.web);
    await page.goto('./?inference-test');
    await page.waitForFunction(() => '__tabflowInference' in window);
    const { ready, ids } = await page.evaluate(
      async ({ base, names, backend, PROMPT, steps }) => {
        const files: Record<string, Blob> = {};
        for (const n of names) {
          const r = await fetch(base + n);
          if (!r.ok) throw new Error(`fixture ${n}: ${r.status}`);
          files[n] = await r.blob();
        }
        const client = new window.__tabflowInference.InferenceClient();
        window.__client = client;
        const ready = await client.load({
          source: { kind: 'files', files },
          layout: 'web',
          backend,
          dtype: 'auto',
          modelName: 'tiny-phi3-mha',
        });
        const done = await client.generate(
          { kind: 'prompt', prompt: PROMPT },
          { max_tokens: steps, temperature: 0 },
        ).result;
        return { ready, ids: done.choices[0]!.tokenIds };
      },
      { base: FIXTURE, names: listFiles(fixture.web), backend, PROMPT, steps },
    );
    expect(ready.layout).toBe('web');
    expect(ready.dtype).toBe('q4');
    expect(ready.engine).toBe(backend === 'webgpu' ? 'onnxruntime-webgpu' : 'onnxruntime-wasm');
    expect(ids.length).toBeGreaterThan(0);

    const tok = TextTokenizer.fromFiles(
      readFileSync(join(fixture.web, 'tokenizer.json')),
      readFileSync(join(fixture.web, 'tokenizer_config.json')),
    );
    const session = await ortNode.InferenceSession.create(
      join(fixture.web, 'onnx', 'model_q4.onnx'),
    );
    try {
      const native = await greedyOrtNode(ortNode, session, tok.encode(PROMPT), ids.length, {
        force: ids,
        shape: TINY_MHA,
      });
      ids.forEach((id, step) => {
        const logits = native.logits[step]!;
        let scale = 0;
        for (const x of logits) scale = Math.max(scale, Math.abs(x));
        const best = argmax(logits);
        const gap = (logits[best]! - logits[id]!) / scale;
        expect(gap, `step ${step}: chose ${id}, native's best ${best}`).toBeLessThanOrEqual(
          ACTIVATION_ROUNDING_TOL,
        );
      });
      // The first token is not a near tie on this prompt: both runtimes agree on it exactly.
      expect(ids[0]).toBe(argmax(native.logits[0]!));
    } finally {
      await session.release();
    }
  });
}
