// The CPU decoder's KV cache in fp32 against fp16 on the full-size random-weight Phi-3-mini
// (genai layout), over a long sequence: the same prompt, then the same teacher-forced ids (the
// fp32 run's greedy choices) on both; per-step logits compared, prefill and decode timed in the
// same run. Also loads the model with no context cap to show what each cache type holds.
//   npx tsx bench/cpu-decoder-kv.bench.ts [--prompt 1536] [--decode 32] [--threads 2]
//   [--activations int8|f32]
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Readable } from 'node:stream';
import { loadCpuEngine, type KvCacheType } from '../src/lib/inference/cpu/engine.ts';
import { normalizePath, type ModelFiles } from '../src/lib/inference/engines/files.ts';
import { fileKernelLoader, nodeThread } from '../tests/helpers/cpu-kernels.ts';
import { argmax } from '../tests/helpers/tiny-phi3.ts';

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const PROMPT = arg('--prompt', 1536);
const DECODE = arg('--decode', 32);
const THREADS = arg('--threads', 2);
const ACT = process.argv.includes('--activations')
  ? (process.argv[process.argv.indexOf('--activations') + 1] as 'int8' | 'f32')
  : 'int8';
const DIR = join('fixtures', 'generated', 'phi3-mini-random', 'genai');
if (!existsSync(join(DIR, 'genai_config.json'))) {
  console.log(`${DIR} is missing: run npx tsx scripts/make-tiny-phi3.ts --preset full`);
  process.exit(1);
}

function dirFiles(dir: string): ModelFiles {
  const p = (path: string) => join(dir, normalizePath(path));
  return {
    name: basename(dir),
    has: async (path) => existsSync(p(path)),
    bytes: async (path) => new Uint8Array(readFileSync(p(path))),
    text: async (path) => readFileSync(p(path), 'utf8'),
    response: async (path) =>
      new Response(Readable.toWeb(createReadStream(p(path))) as ReadableStream<Uint8Array>),
  };
}

const prompt = Array.from({ length: PROMPT }, (_, i) => 300 + ((i * 53) % 900));
let forced: number[] | null = null;
const runs: Record<string, { logits: Float32Array[]; prefillMs: number; tps: number }> = {};
for (const kvCache of ['f32', 'f16'] as KvCacheType[]) {
  const engine = await loadCpuEngine(dirFiles(DIR), {
    loadKernel: fileKernelLoader,
    threads: THREADS,
    spawnThread: nodeThread,
    activations: ACT,
    kvCache,
    maxContext: PROMPT + DECODE + 8,
  });
  await engine.lm.forward(prompt.slice(0, 8)); // warm-up
  await engine.lm.reset();
  let t0 = performance.now();
  const logits = [await engine.lm.forward(prompt)];
  const prefillMs = performance.now() - t0;
  const ids: number[] = forced ?? [argmax(logits[0]!)];
  t0 = performance.now();
  for (let s = 1; s < DECODE; s++) {
    logits.push(await engine.lm.forward([ids[s - 1]!]));
    if (!forced) ids.push(argmax(logits[s]!));
  }
  const tps = ((DECODE - 1) * 1000) / (performance.now() - t0);
  forced = ids;
  runs[kvCache] = { logits, prefillMs, tps };
  console.log(
    `KV ${kvCache}: ${PROMPT}-token prefill ${(prefillMs / 1000).toFixed(1)} s, decode at ${PROMPT}-${PROMPT + DECODE} tokens of context ${tps.toFixed(2)} tok/s (${engine.cpu.activations} activations, ${THREADS} threads)`,
  );
  await engine.dispose();
}
const a = runs.f32!;
const b = runs.f16!;
let worst = 0;
let worstRel = 0;
let differ = 0;
for (let s = 0; s < a.logits.length; s++) {
  let d = 0;
  let mx = 0;
  for (let i = 0; i < a.logits[s]!.length; i++) {
    d = Math.max(d, Math.abs(a.logits[s]![i]! - b.logits[s]![i]!));
    mx = Math.max(mx, Math.abs(a.logits[s]![i]!));
  }
  worst = Math.max(worst, d);
  worstRel = Math.max(worstRel, d / mx);
  if (argmax(a.logits[s]!) !== argmax(b.logits[s]!)) differ++;
}
console.log(
  `fp16 vs fp32 KV over ${PROMPT + DECODE} tokens: max |logit diff| ${worst.toExponential(2)} (${worstRel.toExponential(2)} of max |logit|), argmax differs at ${differ} of ${a.logits.length} steps; prefill ${(a.prefillMs / b.prefillMs).toFixed(2)}x, decode ${(b.tps / a.tps).toFixed(2)}x the fp32 cache's speed`,
);
for (const kvCache of ['f32', 'f16', 'auto'] as const) {
  const e = await loadCpuEngine(dirFiles(DIR), {
    loadKernel: fileKernelLoader,
    kvCache,
    threads: THREADS,
    spawnThread: nodeThread,
  });
  console.log(
    `no cap, KV ${kvCache} (${e.cpu.kvCache}): context ${e.cpu.contextCapacity} tokens, wasm memory ${(e.cpu.wasmBytes / 2 ** 20).toFixed(0)} MiB`,
  );
  if (kvCache === 'auto') {
    const long = Array.from({ length: e.cpu.contextCapacity + 1 }, () => 300);
    await e.lm.forward(long).then(
      () => console.log('a prompt longer than the context was accepted: wrong'),
      (err: Error) => console.log(`a ${long.length}-token prompt: ${err.message}`),
    );
  }
  await e.dispose();
}
process.exit(0);
