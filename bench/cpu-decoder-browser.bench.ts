// The CPU decoder in Chromium on the full-size random-weight Phi-3-mini (genai layout, 2.3 GB of
// int4 weights), served by the app's real inference worker, against onnxruntime-node native with
// the same thread count and stock onnxruntime-web wasm in the same browser: decode tokens/s, time
// to first token for a 128-token prompt, the weight-read GB/s achieved beside the machine's read
// bandwidth measured from wasm with the same threads, peak wasm and browser memory.
//   npx tsx bench/cpu-decoder-browser.bench.ts [--threads N] [--decode N] [--ort-web-decode N]
//     [--skip-ort-web]
// Builds the app into a temporary folder and serves it with the model from one local server.
import { spawnSync } from 'node:child_process';
import { createReadStream, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { extname, join, normalize, sep } from 'node:path';
import { Worker } from 'node:worker_threads';
import { chromium, type Browser } from '@playwright/test';
import * as ort from 'onnxruntime-node';
import { generatePhi3 } from '../scripts/make-tiny-phi3.ts';
import type { InferenceTestHook } from '../src/lib/inference/test-hook.ts';
import type { CompleteMessage, ReadyMessage } from '../src/lib/inference/protocol.ts';
import { TextTokenizer } from '../src/lib/inference/tokenizer.ts';
import { ensureKernelsBuilt } from '../tests/helpers/cpu-kernels.ts';
import { argmax, lastRowLogits } from '../tests/helpers/tiny-phi3.ts';

declare global {
  interface Window {
    __tabflowInference: InferenceTestHook;
  }
}

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const THREADS = arg('--threads', 2);
const DECODE = arg('--decode', 16);
const ORT_WEB_DECODE = arg('--ort-web-decode', 2);
const SKIP_ORT_WEB = process.argv.includes('--skip-ort-web');
const PROMPT_TOKENS = 128;
const MODEL = join('fixtures', 'generated', 'phi3-mini-random', 'genai');
const GRAPH = 'phi3-mini-4k-instruct-cpu-int4-rtn-block-32-acc-level-4.onnx';

if (!existsSync(join(MODEL, GRAPH))) {
  console.log('generating the full-size model (about a minute, 2.3 GB)...');
  generatePhi3({
    outDir: join('fixtures', 'generated', 'phi3-mini-random'),
    preset: 'full',
    layouts: ['genai'],
  });
}

// A prompt of exactly PROMPT_TOKENS tokens as the worker will encode it.
const tok = TextTokenizer.fromFiles(
  readFileSync(join(MODEL, 'tokenizer.json')),
  readFileSync(join(MODEL, 'tokenizer_config.json')),
);
const words = ['river', 'stone', 'cloud', 'lamp', 'garden', 'window', 'paper', 'signal'];
let prompt = '';
for (let i = 0; tok.encode(prompt, { addSpecialTokens: true }).length < PROMPT_TOKENS; i++)
  prompt += `${words[i % words.length]} `;
while (tok.encode(prompt, { addSpecialTokens: true }).length > PROMPT_TOKENS)
  prompt = prompt.slice(0, -1);
const promptIds = tok.encode(prompt, { addSpecialTokens: true });

// ---- the machine's read bandwidth from wasm, THREADS threads on one shared memory

async function readBandwidth(threads: number): Promise<number> {
  ensureKernelsBuilt();
  const bytes = new URL(
    '../src/lib/inference/cpu/kernels/build/decoder-simd-shared.wasm',
    import.meta.url,
  );
  const module = new WebAssembly.Module(readFileSync(bytes));
  const per = 512 * 2 ** 20;
  const memory = new WebAssembly.Memory({
    initial: (threads * per) / 65536 + 1,
    maximum: 65536,
    shared: true,
  });
  new Uint8Array(memory.buffer).fill(1);
  const body = `
    const { parentPort, workerData: d } = require('node:worker_threads');
    const k = new WebAssembly.Instance(d.module, { env: { memory: d.memory } }).exports;
    const flag = new Int32Array(d.sync);
    k.readBytes(d.at, d.per);
    Atomics.add(flag, 1, 1);
    while (Atomics.load(flag, 0) === 0);
    const t = performance.now();
    for (let i = 0; i < d.reps; i++) k.readBytes(d.at, d.per);
    parentPort.postMessage(performance.now() - t);`;
  const best: number[] = [];
  for (let trial = 0; trial < 3; trial++) {
    const sync = new SharedArrayBuffer(8);
    const flag = new Int32Array(sync);
    const reps = 4;
    const workers = Array.from(
      { length: threads },
      (_, i) =>
        new Worker(body, {
          eval: true,
          workerData: { module, memory, sync, at: 65536 + i * per, per, reps },
        }),
    );
    const done = workers.map((w) => new Promise<number>((r) => w.once('message', r)));
    while (Atomics.load(flag, 1) < threads) await new Promise((r) => setTimeout(r, 5));
    Atomics.store(flag, 0, 1);
    const ms = Math.max(...(await Promise.all(done)));
    await Promise.all(workers.map((w) => w.terminate()));
    best.push((threads * per * reps) / (ms / 1000) / 1e9);
  }
  return Math.max(...best);
}

// ---- onnxruntime-node, same threads

/** Native greedy decode of the prompt: TTFT, decode tokens/s and the ids. */
async function nativeBaseline(): Promise<{ ttftMs: number; tps: number; ids: number[] }> {
  const cfg = JSON.parse(readFileSync(join(MODEL, 'genai_config.json'), 'utf8')).model.decoder;
  const session = await ort.InferenceSession.create(join(MODEL, GRAPH), {
    intraOpNumThreads: THREADS,
    interOpNumThreads: 1,
  });
  const empty = () => {
    const past: Record<string, ort.Tensor> = {};
    for (let l = 0; l < cfg.num_hidden_layers; l++)
      for (const kv of ['key', 'value'])
        past[`past_key_values.${l}.${kv}`] = new ort.Tensor('float32', new Float32Array(0), [
          1,
          cfg.num_key_value_heads,
          0,
          cfg.head_size,
        ]);
    return past;
  };
  const run = async (ids: number[], steps: number) => {
    let past = empty();
    let input = ids;
    let total = 0;
    const out: number[] = [];
    const times: number[] = [];
    for (let s = 0; s < steps; s++) {
      const t = performance.now();
      total += input.length;
      const r = await session.run({
        input_ids: new ort.Tensor('int64', BigInt64Array.from(input, BigInt), [1, input.length]),
        attention_mask: new ort.Tensor('int64', new BigInt64Array(total).fill(1n), [1, total]),
        ...past,
      });
      out.push(argmax(lastRowLogits(r.logits!)));
      times.push(performance.now() - t);
      past = {};
      for (let l = 0; l < cfg.num_hidden_layers; l++)
        for (const kv of ['key', 'value'])
          past[`past_key_values.${l}.${kv}`] = r[`present.${l}.${kv}`]!;
      input = [out[out.length - 1]!];
    }
    return { out, times };
  };
  await run(promptIds.slice(0, 8), 2); // warm-up
  const { out, times } = await run(promptIds, DECODE + 1);
  await session.release();
  const decodeMs = times.slice(1).reduce((a, b) => a + b, 0);
  return { ttftMs: times[0]!, tps: (DECODE * 1000) / decodeMs, ids: out };
}

/**
 * How far native's own choice leads `pick` at the step after `prefix`, as a fraction of that
 * step's largest |logit|: the int8 activation rounding both engines do moves logits by a few
 * percent of the largest one (docs/PERFORMANCE.md, "Correctness on the full-size model"), so a
 * pick within that margin is a near-tie, not a wrong token.
 */
async function nativeMargin(prefix: number[], pick: number): Promise<number> {
  const session = await ort.InferenceSession.create(join(MODEL, GRAPH), {
    intraOpNumThreads: THREADS,
    interOpNumThreads: 1,
  });
  const cfg = JSON.parse(readFileSync(join(MODEL, 'genai_config.json'), 'utf8')).model.decoder;
  const feeds: Record<string, ort.Tensor> = {
    input_ids: new ort.Tensor('int64', BigInt64Array.from(prefix, BigInt), [1, prefix.length]),
    attention_mask: new ort.Tensor('int64', new BigInt64Array(prefix.length).fill(1n), [
      1,
      prefix.length,
    ]),
  };
  for (let l = 0; l < cfg.num_hidden_layers; l++)
    for (const kv of ['key', 'value'])
      feeds[`past_key_values.${l}.${kv}`] = new ort.Tensor('float32', new Float32Array(0), [
        1,
        cfg.num_key_value_heads,
        0,
        cfg.head_size,
      ]);
  const r = await session.run(feeds);
  await session.release();
  const logits = lastRowLogits(r.logits!);
  let top = 0;
  let amax = 0;
  for (let i = 0; i < logits.length; i++) {
    if (logits[i]! > logits[top]!) top = i;
    amax = Math.max(amax, Math.abs(logits[i]!));
  }
  return (logits[top]! - logits[pick]!) / amax;
}

// ---- the app, built and served with the model on one origin (cross-origin isolated)

function serve(dist: string) {
  const types: Record<string, string> = {
    '.html': 'text/html',
    '.js': 'text/javascript',
    '.mjs': 'text/javascript',
    '.css': 'text/css',
    '.wasm': 'application/wasm',
    '.json': 'application/json',
  };
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = decodeURIComponent(url.pathname);
    const [root, rel] = path.startsWith('/model/')
      ? [MODEL, path.slice('/model/'.length)]
      : [dist, path === '/' ? 'index.html' : path.slice(1)];
    const file = normalize(join(root, rel));
    if (
      !file.startsWith(normalize(root) + sep) ||
      !existsSync(file) ||
      statSync(file).isDirectory()
    ) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, {
      'Content-Type': types[extname(file)] ?? 'application/octet-stream',
      'Content-Length': statSync(file).size,
      'Cross-Origin-Opener-Policy': 'same-origin',
      'Cross-Origin-Embedder-Policy': 'require-corp',
      'Cross-Origin-Resource-Policy': 'same-origin',
    });
    if (req.method === 'HEAD') res.end();
    else createReadStream(file).pipe(res);
  });
  return new Promise<{ url: string; close: () => void }>((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      resolve({ url: `http://127.0.0.1:${port}/`, close: () => server.close() });
    }),
  );
}

/** Resident memory of the browser's processes (children of this one; Linux), sampled. */
function watchMemory() {
  let peak = 0;
  const sample = () => {
    if (process.platform !== 'linux') return;
    const r = spawnSync('ps', ['-e', '-o', 'pid=,ppid=,rss='], { encoding: 'utf8' });
    const rows = r.stdout
      .trim()
      .split('\n')
      .map((l) => l.trim().split(/\s+/).map(Number) as [number, number, number]);
    const tree = new Set([process.pid]);
    for (let grew = true; grew;) {
      grew = false;
      for (const [pid, ppid] of rows)
        if (tree.has(ppid) && !tree.has(pid)) {
          tree.add(pid);
          grew = true;
        }
    }
    tree.delete(process.pid);
    const kb = rows.filter(([pid]) => tree.has(pid)).reduce((a, [, , rss]) => a + rss, 0);
    peak = Math.max(peak, kb * 1024);
  };
  const timer = setInterval(sample, 1000);
  return {
    reset: () => (peak = 0),
    peak: () => (sample(), peak),
    stop: () => clearInterval(timer),
  };
}

interface BrowserRun {
  ready: ReadyMessage;
  warm: CompleteMessage | null;
  timed: CompleteMessage;
}

async function inBrowser(
  browser: Browser,
  url: string,
  backend: 'cpu' | 'ort-wasm',
  decode: number,
  warm: boolean,
): Promise<BrowserRun> {
  const page = await browser.newPage();
  page.setDefaultTimeout(0);
  try {
    await page.goto(`${url}?inference-test`);
    await page.waitForFunction(() => '__tabflowInference' in window);
    return await page.evaluate(
      async ({ backend, prompt, decode, warm }) => {
        const client = new window.__tabflowInference.InferenceClient({
          heartbeatTimeoutMs: 3_600_000,
        });
        const ready = await client.load({
          source: { kind: 'url', baseUrl: `${location.origin}/model/` },
          layout: 'genai',
          backend,
          dtype: 'auto',
          modelName: 'phi3-mini-random',
        });
        // A short run first, so that the kernels are compiled by the optimising tier.
        const warmed = warm
          ? await client.generate(
              { kind: 'prompt', prompt: 'river stone cloud lamp' },
              {
                max_tokens: 4,
                temperature: 0,
              },
            ).result
          : null;
        const timed = await client.generate(
          { kind: 'prompt', prompt },
          { max_tokens: decode + 1, temperature: 0 },
        ).result;
        client.dispose();
        return { ready, warm: warmed, timed };
      },
      { backend, prompt, decode, warm },
    );
  } finally {
    await page.close();
  }
}

function findChromium(): string | undefined {
  if (process.env.CHROMIUM_PATH) return process.env.CHROMIUM_PATH;
  const script = fileURLToPath(new URL('../scripts/find-chromium.mjs', import.meta.url));
  const r = spawnSync('node', [script], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim().split('\n').pop() || undefined : undefined;
}

const gb = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;
const weightBytes = statSync(join(MODEL, `${GRAPH}.data`)).size;

const bandwidth = await readBandwidth(THREADS);
console.log(`read bandwidth from wasm, ${THREADS} threads: ${bandwidth.toFixed(1)} GB/s`);
// Native runs once before and once after the browser (best of the two): on a shared machine the
// load can change between the halves of the run, and a slow native side would flatter the ratio.
const nativeRuns = [await nativeBaseline()];
let native = nativeRuns[0]!;
console.log(
  `onnxruntime-node ${THREADS} threads: decode ${native.tps.toFixed(2)} tok/s, TTFT ${(native.ttftMs / 1000).toFixed(1)} s`,
);

const dist = mkdtempSync(join(tmpdir(), 'tabflow-bench-'));
const build = spawnSync('npx', ['vite', 'build', '--logLevel', 'error', '--outDir', dist], {
  stdio: 'inherit',
});
if (build.status !== 0) throw new Error('vite build failed');
const server = await serve(dist);
const browser = await chromium.launch({
  executablePath: findChromium(),
  args: ['--no-sandbox', '--disable-gpu', `--renderer-process-limit=4`],
});
const mem = watchMemory();
try {
  const cpu = await inBrowser(browser, server.url, 'cpu', DECODE, true);
  const cpuPeak = mem.peak();
  nativeRuns.push(await nativeBaseline());
  const after = nativeRuns[1]!;
  console.log(
    `onnxruntime-node ${THREADS} threads, again after the browser: decode ${after.tps.toFixed(2)} tok/s, TTFT ${(after.ttftMs / 1000).toFixed(1)} s (ratios below use the faster of the two)`,
  );
  native = {
    tps: Math.max(...nativeRuns.map((r) => r.tps)),
    ttftMs: Math.min(...nativeRuns.map((r) => r.ttftMs)),
    ids: native.ids,
  };
  const c = cpu.ready.cpu!;
  const tps = cpu.timed.timings.tokensPerSecond;
  const achieved = (weightBytes * tps) / 1e9;
  console.log(
    `CPU decoder (${c.variant}, relaxed check ${c.relaxedCheck}, ${cpu.ready.threads} threads): decode ${tps.toFixed(2)} tok/s = ${(tps / native.tps).toFixed(2)}x native; TTFT ${(cpu.timed.timings.ttftMs / 1000).toFixed(1)} s = ${(native.ttftMs / cpu.timed.timings.ttftMs).toFixed(2)}x native speed`,
  );
  console.log(
    `  ${(weightBytes / 1e9).toFixed(2)} GB of weights per token: ${achieved.toFixed(1)} GB/s achieved of ${bandwidth.toFixed(1)} GB/s measured (${((100 * achieved) / bandwidth).toFixed(0)}%)`,
  );
  const ids = cpu.timed.choices[0]!.tokenIds;
  const diff = ids.findIndex((id, i) => id !== native.ids[i]);
  console.log(
    `  wasm memory ${gb(c.wasmBytes)} (context ${c.contextLength}); browser processes peak RSS ${gb(cpuPeak)}; load ${(cpu.ready.loadMs / 1000).toFixed(1)} s; greedy ids ${diff < 0 ? `all ${ids.length} equal to onnxruntime-node's` : `first differ at ${diff}`}`,
  );
  if (diff >= 0) {
    const margin = await nativeMargin([...promptIds, ...ids.slice(0, diff)], ids[diff]!);
    console.log(
      `  at step ${diff} native's own choice leads the decoder's by ${margin.toExponential(1)} of the largest |logit| (int8 rounding noise: up to 5e-2, see docs/PERFORMANCE.md)`,
    );
  }
  if (!SKIP_ORT_WEB) {
    mem.reset();
    const web = await inBrowser(browser, server.url, 'ort-wasm', ORT_WEB_DECODE, false);
    const wtps = web.timed.timings.tokensPerSecond;
    console.log(
      `stock onnxruntime-web wasm (${web.ready.threads} threads, ${ORT_WEB_DECODE} tokens): decode ${wtps.toFixed(2)} tok/s = ${(wtps / native.tps).toFixed(2)}x native; TTFT ${(web.timed.timings.ttftMs / 1000).toFixed(1)} s; CPU decoder is ${(tps / wtps).toFixed(1)}x its decode speed; browser peak RSS ${gb(mem.peak())}`,
    );
  }
} finally {
  mem.stop();
  await browser.close();
  server.close();
  rmSync(dist, { recursive: true, force: true });
}
process.exit(0);
