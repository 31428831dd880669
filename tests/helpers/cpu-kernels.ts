// Builds the CPU decoder's wasm kernels (once, skipped when up to date) and reads them from disk,
// so Node tests instantiate exactly what the app ships.
import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KernelLoader } from '../../src/lib/inference/cpu/kernels.ts';

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
