// The CPU decoder with helper threads on one shared WebAssembly.Memory (rows of each matmul and
// heads of attention split between threads) gives the single-threaded engine's logits exactly.
import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadCpuEngine } from '../../src/lib/inference/cpu/engine.ts';
import { normalizePath, type ModelFiles } from '../../src/lib/inference/engines/files.ts';
import { fileKernelLoader, nodeThread } from '../helpers/cpu-kernels.ts';
import { ensureTinyPhi3, type TinyPhi3Paths } from '../helpers/tiny-phi3.ts';

function dirFiles(dir: string): ModelFiles {
  const p = (path: string) => join(dir, normalizePath(path));
  return {
    name: basename(dir),
    has: async (path) => existsSync(p(path)),
    bytes: async (path) => new Uint8Array(readFileSync(p(path))),
    text: async (path) => readFileSync(p(path), 'utf8'),
    response: async (path) =>
      existsSync(p(path)) ? new Response(readFileSync(p(path))) : undefined,
  };
}

let fx: TinyPhi3Paths;
beforeAll(async () => {
  fx = await ensureTinyPhi3();
});

async function run(threads: number, activations: 'int8' | 'f32'): Promise<Float32Array[]> {
  const engine = await loadCpuEngine(dirFiles(fx.genai), {
    loadKernel: fileKernelLoader,
    threads,
    activations,
    spawnThread: nodeThread,
  });
  try {
    expect(engine.cpu.threads).toBe(threads);
    const out = [await engine.lm.forward([32010, 300, 301, 302, 500, 32007, 32001])];
    for (const id of [400, 401, 402, 403, 404, 405]) out.push(await engine.lm.forward([id]));
    return out;
  } finally {
    await engine.dispose();
  }
}

describe('CPU decoder threads', () => {
  for (const activations of ['int8', 'f32'] as const) {
    it(`gives the single-threaded logits with 2 and 3 threads (${activations} activations)`, async () => {
      const one = await run(1, activations);
      for (const threads of [2, 3]) {
        const many = await run(threads, activations);
        // Each output element is computed by exactly one thread with the same kernel: bit-identical.
        many.forEach((l, i) => expect(Array.from(l)).toEqual(Array.from(one[i]!)));
      }
    });
  }
});
