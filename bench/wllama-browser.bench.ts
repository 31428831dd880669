// wllama (llama.cpp compiled to wasm, the other browser CPU engine) in Chromium, on the same int4
// weights as the project's engines: the genai ONNX written as a Q4_0 GGUF (bench/support/
// gguf-phi3.ts repacks the MatMulNBits blocks bit for bit; only the scales round to fp16). Beside
// it, onnxruntime-node native with the same thread count, measured in the same run: decode
// tokens/s, time to first token for a 128-token prompt, and a correctness check (greedy ids and
// the chosen tokens' log-probabilities against native).
//   npx tsx bench/wllama-browser.bench.ts [--model full|tiny] [--threads N] [--decode N]
//     [--split-mb N] [--out DIR]
// The GGUF is written once into .cache/wllama-gguf/ (ignored) and reused while the ONNX is
// unchanged.
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from '@playwright/test';
import * as ort from 'onnxruntime-node';
import { generatePhi3 } from '../scripts/make-tiny-phi3.ts';
import { TextTokenizer } from '../src/lib/inference/tokenizer.ts';
import { convertPhi3ToGguf } from './support/gguf-phi3.ts';
import { CHROMIUM_ARGS, serveHarness } from './support/inference-harness/build.ts';
import { sampleTree } from './support/process-memory.ts';
import { buildWllamaHarness } from './support/wllama-harness/build.ts';
import type { WllamaHarness } from './support/wllama-harness/entry.ts';

declare global {
  interface Window {
    __wllama: WllamaHarness;
  }
}

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1]! : fallback;
};
const MODEL_KIND = arg('--model', 'full');
const THREADS = Number(arg('--threads', '2'));
const DECODE = Number(arg('--decode', '16'));
const SPLIT_MB = Number(arg('--split-mb', '512'));
const PROMPT_TOKENS = 128;
const OUT = arg('--out', '');

const MODEL =
  MODEL_KIND === 'tiny'
    ? join('fixtures', 'generated', 'tiny-phi3', 'genai')
    : join('fixtures', 'generated', 'phi3-mini-random', 'genai');
const cfg = JSON.parse(readFileSync(join(MODEL, 'genai_config.json'), 'utf8')).model;
const GRAPH: string = cfg.decoder.filename;

if (MODEL_KIND !== 'tiny' && !existsSync(join(MODEL, GRAPH))) {
  console.log('generating the full-size model (about a minute, 2.3 GB)...');
  generatePhi3({
    outDir: join('fixtures', 'generated', 'phi3-mini-random'),
    preset: 'full',
    layouts: ['genai'],
  });
}

// ---- the GGUF, converted once per ONNX version

function ensureGguf(): string[] {
  const dir = join('.cache', 'wllama-gguf', MODEL_KIND);
  const data = statSync(join(MODEL, `${GRAPH}.data`));
  const converter = ['gguf.ts', 'gguf-phi3.ts'].map(
    (f) => statSync(fileURLToPath(new URL(`./support/${f}`, import.meta.url))).mtimeMs,
  );
  const stamp = JSON.stringify({ size: data.size, mtime: data.mtimeMs, converter, SPLIT_MB });
  const stampFile = join(dir, 'stamp.json');
  if (existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp) {
    return readdirSync(dir)
      .filter((f) => f.endsWith('.gguf'))
      .sort();
  }
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const t = performance.now();
  const paths = convertPhi3ToGguf(MODEL, join(dir, 'model'), {
    name: `${MODEL_KIND}-phi3-random`,
    maxSplitBytes: SPLIT_MB * 2 ** 20,
  });
  writeFileSync(stampFile, stamp);
  const bytes = paths.reduce((a, p) => a + statSync(p).size, 0);
  console.log(
    `GGUF written: ${paths.length} file(s), ${(bytes / 2 ** 30).toFixed(2)} GiB in ${((performance.now() - t) / 1000).toFixed(0)} s`,
  );
  return paths.map((p) => p.slice(dir.length + 1));
}

// ---- a prompt of exactly PROMPT_TOKENS tokens. Plain words, no special tokens: llama.cpp's
// SentencePiece-style tokenizer (scores from the merge ranks, a leading ▁) and the HF BPE give
// the same ids for such text; the run checks the count llama.cpp reports.

const tok = TextTokenizer.fromFiles(
  readFileSync(join(MODEL, 'tokenizer.json')),
  readFileSync(join(MODEL, 'tokenizer_config.json')),
);
const words = ['river', 'stone', 'cloud', 'lamp', 'garden', 'window', 'paper', 'signal'];
let prompt = '';
for (let i = 0; tok.encode(prompt).length < PROMPT_TOKENS; i++)
  prompt += `${i ? ' ' : ''}${words[i % words.length]}`;
while (tok.encode(prompt).length > PROMPT_TOKENS) prompt = prompt.slice(0, -1);
prompt = prompt.trimEnd();
const promptIds = tok.encode(prompt);
const WARM_PROMPT = 'river stone cloud lamp';

// ---- onnxruntime-node, same threads

function logSoftmaxAt(logits: Float32Array, id: number): number {
  let max = -Infinity;
  for (const x of logits) max = Math.max(max, x);
  let sum = 0;
  for (const x of logits) sum += Math.exp(x - max);
  return logits[id]! - max - Math.log(sum);
}

async function nativeBaseline() {
  const dec = cfg.decoder;
  const session = await ort.InferenceSession.create(join(MODEL, GRAPH), {
    intraOpNumThreads: THREADS,
    interOpNumThreads: 1,
  });
  const run = async (ids: number[], steps: number) => {
    let past: Record<string, ort.Tensor> = {};
    for (let l = 0; l < dec.num_hidden_layers; l++)
      for (const kv of ['key', 'value'])
        past[`past_key_values.${l}.${kv}`] = new ort.Tensor('float32', new Float32Array(0), [
          1,
          dec.num_key_value_heads,
          0,
          dec.head_size,
        ]);
    let input = ids;
    let total = 0;
    const out: number[] = [];
    const logprobs: number[] = [];
    const times: number[] = [];
    for (let s = 0; s < steps; s++) {
      const t = performance.now();
      total += input.length;
      const r = await session.run({
        input_ids: new ort.Tensor('int64', BigInt64Array.from(input, BigInt), [1, input.length]),
        attention_mask: new ort.Tensor('int64', new BigInt64Array(total).fill(1n), [1, total]),
        ...past,
      });
      const vocab = r.logits!.dims[2]!;
      const all = r.logits!.data as Float32Array;
      const last = all.subarray(all.length - vocab);
      let best = 0;
      for (let i = 1; i < vocab; i++) if (last[i]! > last[best]!) best = i;
      times.push(performance.now() - t);
      out.push(best);
      logprobs.push(logSoftmaxAt(last, best));
      past = {};
      for (let l = 0; l < dec.num_hidden_layers; l++)
        for (const kv of ['key', 'value'])
          past[`past_key_values.${l}.${kv}`] = r[`present.${l}.${kv}`]!;
      input = [best];
    }
    return { out, logprobs, times };
  };
  await run(tok.encode(WARM_PROMPT), 2); // warm-up
  const { out, logprobs, times } = await run(promptIds, DECODE + 1);
  await session.release();
  const decodeMs = times.slice(1).reduce((a, b) => a + b, 0);
  return { ttftMs: times[0]!, tps: (DECODE * 1000) / decodeMs, ids: out, logprobs };
}

function findChromium(): string | undefined {
  if (process.env.CHROMIUM_PATH) return process.env.CHROMIUM_PATH;
  const script = fileURLToPath(new URL('../scripts/find-chromium.mjs', import.meta.url));
  const r = spawnSync('node', [script], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim().split('\n').pop() || undefined : undefined;
}

const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;
const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

const files = ensureGguf();
const ggufDir = join('.cache', 'wllama-gguf', MODEL_KIND);
const ggufBytes = files.reduce((a, f) => a + statSync(join(ggufDir, f)).size, 0);
console.log(
  `model: ${MODEL} (${MODEL_KIND}); GGUF ${files.length} file(s), ${gib(ggufBytes)}; prompt ${promptIds.length} tokens, ${DECODE} decode steps, ${THREADS} threads`,
);

const native = await nativeBaseline();
console.log(
  `onnxruntime-node ${THREADS} threads: decode ${native.tps.toFixed(2)} tok/s, TTFT ${s(native.ttftMs)}`,
);

const dist = await buildWllamaHarness(OUT || undefined);
const server = await serveHarness(dist, { gguf: ggufDir });
// A persistent profile: in a default (incognito-like) context Chromium keeps blobs in memory only
// and refuses a fetch once they pass ~2 GiB (the fifth 512 MB split failed with "Failed to
// fetch"); with a profile it spills them to disk, as a normal browser window does.
const profile = mkdtempSync(join(tmpdir(), 'wllama-profile-'));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: findChromium(),
  args: CHROMIUM_ARGS,
});
const memory = sampleTree(process.pid, true, 500);
let failed = false;
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(0);
  page.on('pageerror', (e) => console.log(`[page error] ${e.message}`));
  await page.goto(server.url);
  await page.waitForFunction(() => '__wllama' in window);
  const result = await page.evaluate(
    async ({ urls, threads, decode, prompt, warm }) => {
      const loaded = await window.__wllama.load({ urls, threads, contextLength: 1024 });
      // A short run first, like the native warm-up.
      await window.__wllama.greedy(warm, 2);
      const timed = await window.__wllama.greedy(prompt, decode + 1);
      await window.__wllama.exit();
      return { loaded, timed };
    },
    {
      urls: files.map((f) => `${server.modelUrl('gguf')}${f}`),
      threads: THREADS,
      decode: DECODE,
      prompt,
      warm: WARM_PROMPT,
    },
  );
  const mem = memory.stop();
  const { loaded, timed } = result;
  const wallTps = ((timed.ids.length - 1) * 1000) / timed.decodeMs;
  const t = timed.timings;
  console.log(
    `wllama ${loaded.libllama} (${loaded.multiThread ? `${loaded.threads} threads` : 'single thread'}, cross-origin isolated ${loaded.crossOriginIsolated}): decode ${wallTps.toFixed(2)} tok/s = ${(wallTps / native.tps).toFixed(3)}x native; TTFT ${s(timed.ttftMs)} = ${(native.ttftMs / timed.ttftMs).toFixed(3)}x native speed`,
  );
  if (t) {
    console.log(
      `  llama.cpp's own timings: prompt ${t.prompt_n} tokens in ${s(t.prompt_ms)}, ${t.predicted_n} tokens at ${t.predicted_per_second.toFixed(2)} tok/s`,
    );
  }
  console.log(
    `  load ${s(loaded.loadMs)}; browser processes peak PSS ${gib(mem.peak)}, largest process ${gib(mem.process.pss)} (${mem.process.kind})`,
  );
  // Correctness: same prompt length, same greedy ids, and the chosen tokens' log-probabilities.
  if (timed.promptTokens !== promptIds.length) {
    console.log(
      `  CHECK FAILED: llama.cpp tokenized the prompt to ${timed.promptTokens} tokens, the HF tokenizer to ${promptIds.length}`,
    );
    failed = true;
  }
  const n = Math.min(timed.ids.length, native.ids.length);
  const differ = timed.ids.slice(0, n).findIndex((id, i) => id !== native.ids[i]);
  const agree = differ < 0 ? n : differ;
  let lpDiff = 0;
  for (let i = 0; i < agree; i++)
    lpDiff = Math.max(lpDiff, Math.abs((timed.logprobs[i] ?? NaN) - native.logprobs[i]!));
  console.log(
    `  greedy ids: ${differ < 0 ? `all ${n} equal to onnxruntime-node's` : `first ${agree} of ${n} equal, then wllama ${timed.ids[differ]} vs native ${native.ids[differ]}`}; chosen-token log-probability differs by at most ${lpDiff.toFixed(3)} over the agreeing steps`,
  );
  if (MODEL_KIND === 'tiny' && differ >= 0) failed = true;
} finally {
  await browser.close();
  await server.close();
  rmSync(profile, { recursive: true, force: true });
  if (!OUT) rmSync(dist, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
