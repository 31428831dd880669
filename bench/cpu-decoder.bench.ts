// CPU decoder vs onnxruntime-node (native) on the full-size random-weight Phi-3-mini (genai
// layout), same thread count: decode tokens/s, time to first token for a 128-token prompt,
// achieved weight-read GB/s, memory. The model (2.3 GB) is generated once into the git-ignored
// fixtures/generated/phi3-mini-random/. Node runs the same wasm as Chromium (SIMD128 here;
// Node 20's relaxed SIMD is unusable), so these are first figures; Chromium is the real target.
//   npx tsx bench/cpu-decoder.bench.ts [--threads N] [--decode N]
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { basename, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { loadCpuEngine } from '../src/lib/inference/cpu/engine.ts';
import { normalizePath, type ModelFiles } from '../src/lib/inference/engines/files.ts';
import { generatePhi3 } from '../scripts/make-tiny-phi3.ts';
import { fileKernelLoader, nodeThread } from '../tests/helpers/cpu-kernels.ts';
import { argmax, lastRowLogits } from '../tests/helpers/tiny-phi3.ts';

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const THREADS = arg('--threads', 2);
const DECODE = arg('--decode', 16);
const PROMPT = 128;
const DIR = join('fixtures', 'generated', 'phi3-mini-random', 'genai');
const GRAPH = 'phi3-mini-4k-instruct-cpu-int4-rtn-block-32-acc-level-4.onnx';

function dirFiles(dir: string): ModelFiles {
  const p = (path: string) => join(dir, normalizePath(path));
  return {
    name: basename(dir),
    has: async (path) => existsSync(p(path)),
    bytes: async (path) => new Uint8Array(readFileSync(p(path))),
    text: async (path) => readFileSync(p(path), 'utf8'),
    // Streamed, as from IndexedDB in the browser: the 2.7 GB data file is never one buffer.
    response: async (path) =>
      new Response(Readable.toWeb(createReadStream(p(path))) as ReadableStream<Uint8Array>),
  };
}

if (!existsSync(join(DIR, GRAPH))) {
  console.log('generating the full-size model (about a minute, 2.3 GB)...');
  generatePhi3({
    outDir: join('fixtures', 'generated', 'phi3-mini-random'),
    preset: 'full',
    layouts: ['genai'],
  });
}
/** Greedy decoding on onnxruntime-node for the full shape (32 layers, 32 KV heads of 96). */
async function greedyOrt(session: ort.InferenceSession, ids: number[], steps: number) {
  const cfg = JSON.parse(readFileSync(join(DIR, 'genai_config.json'), 'utf8')).model.decoder;
  let past: Record<string, ort.Tensor> = {};
  for (let l = 0; l < cfg.num_hidden_layers; l++)
    for (const kv of ['key', 'value'])
      past[`past_key_values.${l}.${kv}`] = new ort.Tensor('float32', new Float32Array(0), [
        1,
        cfg.num_key_value_heads,
        0,
        cfg.head_size,
      ]);
  const out: number[] = [];
  let input = ids;
  let total = 0;
  for (let s = 0; s < steps; s++) {
    total += input.length;
    const r = await session.run({
      input_ids: new ort.Tensor('int64', BigInt64Array.from(input, BigInt), [1, input.length]),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(total).fill(1n), [1, total]),
      ...past,
    });
    out.push(argmax(lastRowLogits(r.logits!)));
    past = {};
    for (let l = 0; l < cfg.num_hidden_layers; l++)
      for (const kv of ['key', 'value'])
        past[`past_key_values.${l}.${kv}`] = r[`present.${l}.${kv}`]!;
    input = [out[out.length - 1]!];
  }
  return { ids: out };
}

const prompt = Array.from({ length: PROMPT }, (_, i) => 300 + ((i * 53) % 900));
const mb = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;

// onnxruntime-node, same threads.
const session = await ort.InferenceSession.create(join(DIR, GRAPH), {
  intraOpNumThreads: THREADS,
  interOpNumThreads: 1,
});
await greedyOrt(session, prompt.slice(0, 8), 2); // warm-up
let t0 = performance.now();
const ref1 = await greedyOrt(session, prompt, 1);
const ortTtft = performance.now() - t0;
t0 = performance.now();
const ref = await greedyOrt(session, prompt, DECODE + 1);
const ortTotal = performance.now() - t0;
const ortDecode = (DECODE * 1000) / (ortTotal - ortTtft);
await session.release();

const loadStart = performance.now();
const engine = await loadCpuEngine(dirFiles(DIR), {
  loadKernel: fileKernelLoader,
  threads: THREADS,
  spawnThread: nodeThread,
  maxContext: 2048,
});
const loadMs = performance.now() - loadStart;
await engine.lm.forward(prompt.slice(0, 8)); // warm-up (tier-up)
await engine.lm.reset();
t0 = performance.now();
let logits = await engine.lm.forward(prompt);
const ttft = performance.now() - t0;
const ids = [argmax(logits)];
t0 = performance.now();
for (let i = 0; i < DECODE; i++) {
  logits = await engine.lm.forward([ids[ids.length - 1]!]);
  ids.push(argmax(logits));
}
const decodeMs = performance.now() - t0;
const tps = (DECODE * 1000) / decodeMs;
const gbps = (engine.cpu.weightBytesPerToken * tps) / 1e9;
const same = ids.findIndex((id, i) => id !== ref.ids[i]);

console.log(
  `threads ${THREADS}, kernels ${engine.cpu.variant}, ${engine.cpu.activations} activations`,
);
console.log(
  `load ${(loadMs / 1000).toFixed(1)} s; wasm memory ${mb(engine.cpu.wasmBytes)}; context ${engine.cpu.contextCapacity} (KV cache ${engine.cpu.kvCache}); process RSS ${mb(process.memoryUsage().rss)}`,
);
console.log(
  `decode: ${tps.toFixed(2)} tok/s vs onnxruntime-node ${ortDecode.toFixed(2)} tok/s = ${(tps / ortDecode).toFixed(2)}x native`,
);
console.log(
  `TTFT (${PROMPT}-token prompt): ${ttft.toFixed(0)} ms vs onnxruntime-node ${ortTtft.toFixed(0)} ms = ${(ortTtft / ttft).toFixed(2)}x native speed`,
);
console.log(
  `weights read per token ${mb(engine.cpu.weightBytesPerToken)}: ${gbps.toFixed(1)} GB/s achieved`,
);
console.log(
  `greedy ids: ${same < 0 ? `all ${ids.length} equal to onnxruntime-node's` : `first difference at token ${same}`} (step-0 top id ${ref1.ids[0]} vs ${ids[0]})`,
);
await engine.dispose();
process.exit(0);
