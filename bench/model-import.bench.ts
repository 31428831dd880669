/**
 * Import of a generated model zip: throughput and peak memory.
 * MODEL_BENCH_MB sets the weight size (default 2048, the 2 GB target);
 * MODEL_BENCH_STORE_MB the part also written into IndexedDB (fake-indexeddb keeps it in the
 * Node heap, so that stage is run on a smaller model; in a browser IndexedDB is off-heap).
 * Baseline: reading the same file's bytes with Blob.slice, measured in this run.
 */
import 'fake-indexeddb/auto';
import { createWriteStream, openAsBlob, rmSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { writeZip, openZip } from '../src/lib/archive/index.ts';
import { openDatabase } from '../src/lib/store/db.ts';
import { importModelZip } from '../src/lib/services/model-import.ts';

const MB = 2 ** 20;
const weightsMb = Number(process.env.MODEL_BENCH_MB ?? 2048);
const storeMb = Number(process.env.MODEL_BENCH_STORE_MB ?? 256);

function sampler() {
  let peakHeap = 0;
  let peakExternal = 0;
  const tick = () => {
    const m = process.memoryUsage();
    peakHeap = Math.max(peakHeap, m.heapUsed);
    peakExternal = Math.max(peakExternal, m.external + m.arrayBuffers);
  };
  const t = setInterval(tick, 20);
  return {
    stop() {
      clearInterval(t);
      tick();
      return { peakHeapMb: peakHeap / MB, peakExternalMb: peakExternal / MB };
    },
  };
}

async function makeZip(path: string, mb: number): Promise<void> {
  const art = 'artifacts/phi3-mini-onnx';
  async function* weights(): AsyncGenerator<Uint8Array> {
    // Pseudo-random bytes: int4 weights do not compress.
    let x = 0x9e3779b9;
    for (let i = 0; i < mb; i++) {
      const c = new Uint8Array(MB);
      const w = new Uint32Array(c.buffer);
      for (let k = 0; k < w.length; k++) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        w[k] = x >>> 0;
      }
      yield c;
    }
  }
  const enc = new TextEncoder();
  const out = createWriteStream(path);
  for await (const chunk of writeZip([
    {
      path: 'MLmodel',
      data: enc.encode(
        `flavors:\n  python_function:\n    artifacts:\n      phi3-mini-onnx:\n        path: ${art}\n    loader_module: mlflow.pyfunc.model\n    python_model: python_model.pkl\nsignature:\n  inputs: '[{"type": "string", "name": "prompt", "required": true}]'\n  outputs: '[{"type": "string", "required": true}]'\n  params: null\n`,
      ),
    },
    { path: 'python_model.pkl', data: new Uint8Array(2000) },
    { path: `${art}/genai_config.json`, data: enc.encode('{"model": {"type": "phi3"}}') },
    { path: `${art}/tokenizer.json`, data: enc.encode('{"model": {"vocab": {}}}'.repeat(20000)) },
    { path: `${art}/model.onnx`, data: new Uint8Array(200_000) },
    { path: `${art}/model.onnx.data`, data: weights(), size: mb * MB, compress: false },
  ])) {
    if (!out.write(chunk)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'model-bench-'));
  try {
    const big = join(dir, 'big.zip');
    await makeZip(big, weightsMb);
    const blob = await openAsBlob(big);
    const sizeMb = blob.size / MB;

    // Baseline: read every byte of the file.
    let t = performance.now();
    for (let off = 0; off < blob.size; off += 4 * MB)
      await blob.slice(off, off + 4 * MB).arrayBuffer();
    const baseline = sizeMb / ((performance.now() - t) / 1000);

    // Guards + streaming read with CRC checks of every entry (what an import does before the store).
    global.gc?.();
    let s = sampler();
    t = performance.now();
    const zip = await openZip(blob);
    for (const e of zip.entries) for await (const _ of e.open());
    const check = sizeMb / ((performance.now() - t) / 1000);
    const mem = s.stop();

    console.log(`model zip: ${sizeMb.toFixed(0)} MB`);
    console.log(`baseline  raw file read           ${baseline.toFixed(0)} MB/s`);
    console.log(
      `checked   guards + inflate + CRC   ${check.toFixed(0)} MB/s (${(check / baseline).toFixed(2)}x baseline), peak JS heap ${mem.peakHeapMb.toFixed(0)} MB, peak buffers ${mem.peakExternalMb.toFixed(0)} MB ${mem.peakHeapMb < 300 ? '(under 300 MB)' : '(OVER 300 MB)'}`,
    );

    // Full import (zip -> blob store -> registry) on a smaller model: fake-indexeddb is in-heap.
    const small = join(dir, 'small.zip');
    await makeZip(small, storeMb);
    const smallBlob = await openAsBlob(small);
    const db = await openDatabase({ name: 'bench-import' });
    s = sampler();
    t = performance.now();
    await importModelZip(db, Object.assign(smallBlob, { name: 'small.zip' }), { name: 'bench' });
    const imp = smallBlob.size / MB / ((performance.now() - t) / 1000);
    s.stop();
    console.log(
      `import    ${(smallBlob.size / MB).toFixed(0)} MB into fake-indexeddb   ${imp.toFixed(0)} MB/s (${(imp / baseline).toFixed(2)}x baseline)`,
    );
    db.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
