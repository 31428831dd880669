// The project's own CPU decoder serving the tiny Phi-3 in the app's real inference worker, in
// Chromium: chosen automatically where there is no WebGPU, or by the `cpu` preference where there
// is; both layouts through both signatures give onnxruntime-node's greedy tokens; the relaxed-SIMD
// build is verified against SIMD128 at start-up; two threads share the memory under cross-origin
// isolation, and a page without isolation runs one thread and says why.
//
// The page is opened with `?inference-test`, which exposes the inference client as
// `window.__tabflowInference` (see src/lib/inference/test-hook.ts).
import { expect, test, type Page } from '@playwright/test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ortNode from 'onnxruntime-node';
import type { InferenceClient } from '../../src/lib/inference/client.ts';
import type { BackendPreference, ReadyMessage } from '../../src/lib/inference/protocol.ts';
import type { InferenceTestHook } from '../../src/lib/inference/test-hook.ts';
import { TextTokenizer } from '../../src/lib/inference/tokenizer.ts';
import {
  TINY_MHA,
  ensureTinyPhi3,
  ensureTinyPhi3Mha,
  greedyOrtNode,
  type TinyPhi3MhaPaths,
  type TinyPhi3Paths,
} from '../helpers/tiny-phi3.ts';
import { listFiles, serveFolder } from './support/fixture-files.ts';

declare global {
  interface Window {
    __tabflowInference: InferenceTestHook;
    __client: InferenceClient;
  }
}

const CHROMIUM = process.env.CHROMIUM_PATH ? { executablePath: process.env.CHROMIUM_PATH } : {};
const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run'];
// The shared config enables WebGPU (SwiftShader); these tests launch without it, as most Linux
// browsers are, so `auto` must pick the CPU decoder by itself.
test.use({ serviceWorkers: 'block', launchOptions: { ...CHROMIUM, args: ARGS } });

const FIXTURE = '/__tiny-phi3/';
const PROMPT = '<|user|>\nTell me about the weather<|end|>\n<|assistant|>\n';
const CHAT = [
  { role: 'system' as const, content: 'You are brief.' },
  { role: 'user' as const, content: 'What is MLflow?' },
];
const STEPS = 16;

let fixture: TinyPhi3Paths;
/** The web layout in the MultiHeadAttention + RotaryEmbedding + position_ids form. */
let mhaFixture: TinyPhi3MhaPaths;
let tok: TextTokenizer;

test.beforeAll(async () => {
  fixture = await ensureTinyPhi3();
  mhaFixture = await ensureTinyPhi3Mha();
  tok = TextTokenizer.fromFiles(
    readFileSync(join(fixture.genai, 'tokenizer.json')),
    readFileSync(join(fixture.genai, 'tokenizer_config.json')),
  );
});

function tokenizerFor(layout: 'genai' | 'web'): TextTokenizer {
  return TextTokenizer.fromFiles(
    readFileSync(join(fixture.genai, 'tokenizer.json')),
    readFileSync(join(fixture.genai, 'tokenizer_config.json')),
    { runtime: layout === 'genai' ? 'onnxruntime-genai' : 'transformers' },
  );
}

async function golden(layout: 'web' | 'genai' | 'web-mha', promptIds: number[]): Promise<number[]> {
  const graph =
    layout === 'genai'
      ? fixture.genaiModel
      : join(layout === 'web-mha' ? mhaFixture.web : fixture.web, 'onnx', 'model_q4.onnx');
  const session = await ortNode.InferenceSession.create(graph);
  try {
    const shape = layout === 'web-mha' ? TINY_MHA : undefined;
    return (await greedyOrtNode(ortNode, session, promptIds, STEPS, { stopOnEos: true, shape }))
      .ids;
  } finally {
    await session.release();
  }
}

/** Serves the fixture folders to the page; `isolated: false` strips the page's COOP/COEP. */
async function openApp(page: Page, isolated = true) {
  const dirOf = (l: string) =>
    l === 'genai' ? fixture.genai : l === 'web-mha' ? mhaFixture.web : fixture.web;
  await serveFolder(page, FIXTURE, dirOf);
  if (!isolated) {
    await page.route('**/?inference-test', async (route) => {
      const response = await route.fetch();
      const headers = { ...response.headers() };
      delete headers['cross-origin-opener-policy'];
      delete headers['cross-origin-embedder-policy'];
      await route.fulfill({ response, headers });
    });
  }
  await page.goto('./?inference-test');
  await page.waitForFunction(() => '__tabflowInference' in window);
}

async function load(
  page: Page,
  layout: 'web' | 'genai',
  backend: BackendPreference,
  folder: 'web-mha' | null = null,
) {
  return page.evaluate(
    async ({ base, names, layout, backend }) => {
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
        layout,
        backend,
        dtype: 'auto',
        modelName: 'tiny-phi3',
      });
      return { ready, isolated: crossOriginIsolated };
    },
    {
      base: `${FIXTURE}${folder ?? layout}/`,
      names: listFiles(layout === 'genai' ? fixture.genai : folder ? mhaFixture.web : fixture.web),
      layout,
      backend,
    },
  );
}

/** Greedy answers through the raw prompt, the {prompt} signature and llm/v1/chat. */
async function answers(page: Page, promptTokens: number) {
  return page.evaluate(
    async ({ PROMPT, CHAT, STEPS, promptTokens }) => {
      const hook = window.__tabflowInference;
      const client = window.__client;
      const raw = await client.generate(
        { kind: 'prompt', prompt: PROMPT },
        { max_tokens: STEPS, temperature: 0 },
      ).result;
      const prompt = await hook.predictPrompt(
        client,
        { prompt: [PROMPT] },
        { max_length: promptTokens + STEPS },
      );
      const chat = await hook.chatCompletion(
        client,
        { messages: CHAT, max_tokens: STEPS, temperature: 0 },
        { model: 'tiny-phi3' },
      );
      return { raw, prompt, chat };
    },
    { PROMPT, CHAT, STEPS, promptTokens },
  );
}

function expectCpuDecoder(ready: ReadyMessage, threads: number) {
  expect(ready.backend).toBe('wasm');
  expect(ready.engine).toBe('cpu-decoder');
  expect(ready.threads).toBe(threads);
  // Chromium has relaxed SIMD; the worker ran both builds on a test matmul before choosing it.
  expect(ready.cpu).toMatchObject({ variant: 'relaxed', relaxedCheck: 'verified' });
  expect(ready.cpu!.contextLength).toBeGreaterThan(0);
  expect(ready.cpu!.kvCache).toMatch(/^f(16|32)$/);
  expect(ready.cpuRefusal).toBeUndefined();
}

test.describe('without WebGPU', () => {
  for (const layout of ['genai', 'web'] as const) {
    test(`auto serves the ${layout} layout on the CPU decoder with onnxruntime-node's greedy tokens through both signatures`, async ({
      page,
    }) => {
      await openApp(page);
      const { ready, isolated } = await load(page, layout, 'auto');
      expect(isolated).toBe(true);
      expect(ready.adapter).toBeNull();
      expectCpuDecoder(ready, 2);
      expect(ready.singleThreadReason).toBeUndefined();
      expect(ready.dtype).toBe(layout === 'genai' ? 'int4' : 'q4');

      const promptIds = tok.encode(PROMPT);
      const chatIds = tok.encodeChat(CHAT);
      const [goldPrompt, goldChat] = [
        await golden(layout, promptIds),
        await golden(layout, chatIds),
      ];
      // Each layout's answers read as its own runtime decodes them (see inference-tokenizer-parity).
      const text = (ids: number[], promptIds: number[], trimStart = false) =>
        tokenizerFor(layout).decodeAnswer(
          ids.filter((id) => id < 32000),
          { promptIds, trimStart },
        );
      const r = await answers(page, promptIds.length);
      expect(r.raw.choices[0]!.tokenIds).toEqual(goldPrompt);
      expect(r.raw.usage.prompt_tokens).toBe(promptIds.length);
      expect(r.prompt).toBe(text(goldPrompt, promptIds));
      expect(r.chat.choices[0]!.message.content).toBe(text(goldChat, chatIds, true));
      expect(r.chat.usage).toEqual({
        prompt_tokens: chatIds.length,
        completion_tokens: goldChat.length,
        total_tokens: chatIds.length + goldChat.length,
      });
    });
  }

  test("auto serves the web layout's MultiHeadAttention + RotaryEmbedding form on the CPU decoder with onnxruntime-node's greedy tokens", async ({
    page,
  }) => {
    await openApp(page);
    const { ready } = await load(page, 'web', 'auto', 'web-mha');
    expectCpuDecoder(ready, 2);
    const promptIds = tok.encode(PROMPT);
    const gold = await golden('web-mha', promptIds);
    const r = await answers(page, promptIds.length);
    expect(r.raw.choices[0]!.tokenIds).toEqual(gold);
    expect(r.prompt).toBe(
      tokenizerFor('web').decodeAnswer(
        gold.filter((id) => id < 32000),
        { promptIds, trimStart: false },
      ),
    );
    const chatIds = tok.encodeChat(CHAT);
    expect(r.chat.usage.prompt_tokens).toBe(chatIds.length);
  });

  test('a page without cross-origin isolation runs one thread and says why', async ({ page }) => {
    await openApp(page, false);
    const { ready, isolated } = await load(page, 'genai', 'auto');
    expect(isolated).toBe(false);
    expectCpuDecoder(ready, 1);
    expect(ready.crossOriginIsolated).toBe(false);
    expect(ready.singleThreadReason).toMatch(/not cross-origin isolated/);
    const gold = await golden('genai', tok.encode(PROMPT));
    const r = await answers(page, tok.encode(PROMPT).length);
    expect(r.raw.choices[0]!.tokenIds).toEqual(gold);
  });
});

test('the cpu preference picks the CPU decoder even where WebGPU is present', async ({
  playwright,
  baseURL,
}) => {
  const browser = await playwright.chromium.launch({
    ...CHROMIUM,
    args: [...ARGS, '--enable-unsafe-webgpu'],
  });
  const context = await browser.newContext({ baseURL, serviceWorkers: 'block' });
  const page = await context.newPage();
  await openApp(page);
  expect(
    await page.evaluate(async () => {
      const gpu = (navigator as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
      return !!(await gpu?.requestAdapter());
    }),
  ).toBe(true);
  const { ready } = await load(page, 'genai', 'cpu');
  expectCpuDecoder(ready, 2);
  const gold = await golden('genai', tok.encode(PROMPT));
  const r = await answers(page, tok.encode(PROMPT).length);
  expect(r.raw.choices[0]!.tokenIds).toEqual(gold);
  // A prompt longer than the context is refused with a clear message, and the engine goes on.
  const tooLong = await page.evaluate(async (n) => {
    const client = window.__client;
    const long = 'word '.repeat(n);
    return client.generate({ kind: 'prompt', prompt: long }, { max_tokens: 2 }).result.then(
      () => 'completed',
      (e: { code?: string; message: string }) => `${e.code}: ${e.message}`,
    );
  }, ready.cpu!.contextLength + 8);
  expect(tooLong).toMatch(/^bad-request: .*tokens/);
  const again = await answers(page, tok.encode(PROMPT).length);
  expect(again.raw.choices[0]!.tokenIds).toEqual(gold);
  await browser.close();
});
