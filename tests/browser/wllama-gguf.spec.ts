// The tiny Phi-3 written as a Q4_0 GGUF (bench/support/gguf-phi3.ts) runs in wllama (llama.cpp in
// wasm) in Chromium, multi-threaded on a cross-origin isolated page, and decodes what
// onnxruntime-node decodes from the ONNX: the same prompt length, the same greedy ids up to a
// near-tie, and the chosen tokens' log-probabilities within a stated tolerance. This is what lets the wllama bench
// compare speeds on the same weights.
//
// Tolerance: the two engines round differently on the way. llama.cpp quantises the activations
// to 8 bits per block of 32 for its Q4_0 dot products (like the graph's accuracy_level 4, but
// its own blocks and rounding), keeps its KV cache in fp16, and the GGUF's block scales are the
// graph's fp32 scales rounded to fp16. Measured: at most ~0.08 nats apart on the chosen token
// (16 steps, the bench's 128-token prompt). Allowed: 0.25 nats, for each agreeing step and for
// native's top-two margin where the greedy ids part.
import { expect, test } from '@playwright/test';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import * as ortNode from 'onnxruntime-node';
import { convertPhi3ToGguf } from '../../bench/support/gguf-phi3.ts';
import { serveHarness, type HarnessServer } from '../../bench/support/inference-harness/build.ts';
import { buildWllamaHarness } from '../../bench/support/wllama-harness/build.ts';
import type { WllamaHarness } from '../../bench/support/wllama-harness/entry.ts';
import { TextTokenizer } from '../../src/lib/inference/tokenizer.ts';
import { ensureTinyPhi3, greedyOrtNode } from '../helpers/tiny-phi3.ts';

declare global {
  interface Window {
    __wllama: WllamaHarness;
  }
}

test.use({ serviceWorkers: 'block' });

const STEPS = 16;
const LOGPROB_TOL = 0.25;
// Plain words: llama.cpp's tokenizer and the HF one agree on such text (checked below by count).
const PROMPT = 'the river stone under a paper lamp by the garden window sends a signal';

let work: string;
let dist: string;
let server: HarnessServer;
let files: string[];

test.beforeAll(async () => {
  test.setTimeout(120_000);
  const fixture = await ensureTinyPhi3();
  work = mkdtempSync(join(tmpdir(), 'wllama-gguf-'));
  mkdirSync(join(work, 'gguf'));
  files = convertPhi3ToGguf(fixture.genai, join(work, 'gguf', 'tiny'), {
    maxSplitBytes: 4 * 2 ** 20, // split, as the full-size model must be
  }).map((p) => basename(p));
  dist = await buildWllamaHarness(join(work, 'dist'));
  server = await serveHarness(dist, { gguf: join(work, 'gguf') });
});

test.afterAll(async () => {
  await server?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

test('wllama decodes the tiny Phi-3 GGUF like onnxruntime-node decodes the ONNX', async ({
  page,
}) => {
  const fixture = await ensureTinyPhi3();
  expect(files.length).toBeGreaterThan(1);
  const tok = TextTokenizer.fromFiles(
    readFileSync(join(fixture.genai, 'tokenizer.json')),
    readFileSync(join(fixture.genai, 'tokenizer_config.json')),
  );
  const promptIds = tok.encode(PROMPT);
  const session = await ortNode.InferenceSession.create(fixture.genaiModel);
  const native = await greedyOrtNode(ortNode, session, promptIds, STEPS);
  await session.release();
  const nativeLogprobs = native.logits.map((l, i) => {
    let max = -Infinity;
    for (const x of l) max = Math.max(max, x);
    let sum = 0;
    for (const x of l) sum += Math.exp(x - max);
    return l[native.ids[i]!]! - max - Math.log(sum);
  });

  // wllama ships its wasm in the package; nothing may come from anywhere but the test server.
  const elsewhere: string[] = [];
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (!['127.0.0.1', ''].includes(u.hostname) && !['blob:', 'data:'].includes(u.protocol))
      elsewhere.push(r.url());
  });
  await page.goto(server.url);
  await page.waitForFunction(() => '__wllama' in window);
  const { loaded, run } = await page.evaluate(
    async ({ urls, prompt, steps }) => {
      const loaded = await window.__wllama.load({ urls, threads: 2, contextLength: 256 });
      const run = await window.__wllama.greedy(prompt, steps);
      await window.__wllama.exit();
      return { loaded, run };
    },
    { urls: files.map((f) => `${server.modelUrl('gguf')}${f}`), prompt: PROMPT, steps: STEPS },
  );
  expect(elsewhere).toEqual([]);
  expect(loaded.crossOriginIsolated).toBe(true);
  expect(loaded.multiThread).toBe(true);
  expect(run.promptTokens).toBe(promptIds.length);
  // Greedy ids agree until the two engines' rounding reorders a near-tie: the random model's top
  // candidates often lie within a few hundredths of a nat. The first step where they part (if
  // any) must be such a near-tie under native's own logits; every step before it must match.
  const d = run.ids.findIndex((id, i) => id !== native.ids[i]);
  const agree = d < 0 ? STEPS : d;
  const diffs = run.logprobs.slice(0, agree).map((lp, i) => Math.abs(lp - nativeLogprobs[i]!));
  let margin = 0;
  if (d >= 0) {
    const l = native.logits[d]!;
    margin = l[native.ids[d]!]! - l[run.ids[d]!]!;
  }
  console.log(
    `wllama vs onnxruntime-node: ${agree} of ${STEPS} greedy ids equal${d < 0 ? '' : ` (step ${d}: native's top two ${margin.toFixed(3)} apart)`}; chosen-token log-probability differs by at most ${Math.max(...diffs).toFixed(3)} nats`,
  );
  expect(agree).toBeGreaterThanOrEqual(8);
  if (d >= 0) expect(margin).toBeLessThan(LOGPROB_TOL);
  for (const x of diffs) expect(x).toBeLessThan(LOGPROB_TOL);
});
