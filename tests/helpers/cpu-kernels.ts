// Builds the CPU decoder's wasm kernels (once, skipped when up to date) and reads them from disk,
// so Node tests instantiate exactly what the app ships.
import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { KernelLoader } from '../../src/lib/inference/cpu/kernels.ts';
import { THREAD_READY, type ThreadHandle } from '../../src/lib/inference/cpu/threads.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
let built = false;

export function ensureKernelsBuilt(): void {
  if (built) return;
  execFileSync(process.execPath, [join(ROOT, 'scripts', 'build-kernels.mjs')], { stdio: 'pipe' });
  built = true;
}

export const fileKernelLoader: KernelLoader = async (url) => {
  ensureKernelsBuilt();
  return new Uint8Array(await readFile(fileURLToPath(url)));
};

/** A CPU decoder helper thread on worker_threads (TypeScript through tsx). */
export function nodeThread(): ThreadHandle {
  const entry = new URL('./cpu-thread-node.ts', import.meta.url).href;
  // worker_threads ignores --import in execArgv here: register tsx inside the thread instead.
  const boot = `import('tsx/esm/api').then((t) => { t.register(); return import(${JSON.stringify(entry)}); })`;
  const w = new Worker(boot, { eval: true });
  const ready = new Promise<void>((resolve, reject) => {
    w.on('message', (m) => {
      if (m === THREAD_READY) resolve();
    });
    w.on('error', reject);
  });
  return {
    postMessage: (m) => w.postMessage(m),
    ready,
    terminate: () => void w.terminate(),
  };
}
