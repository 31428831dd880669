// Node side of the wllama harness: builds the page (entry.ts and wllama's own wasm) with Vite into
// a folder; bench/support/inference-harness/build.ts serves it cross-origin isolated, next to
// folders of GGUF files.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = fileURLToPath(new URL('.', import.meta.url));

/** Builds the page into `outDir` (a fresh temporary folder when not given) and returns it. */
export async function buildWllamaHarness(outDir?: string): Promise<string> {
  const { build } = await import('vite');
  const out = outDir ?? mkdtempSync(join(tmpdir(), 'wllama-harness-'));
  await build({
    configFile: false,
    root: HERE,
    base: './',
    logLevel: 'warn',
    build: {
      outDir: out,
      emptyOutDir: true,
      target: 'es2022',
      minify: false,
      assetsInlineLimit: 0,
      chunkSizeWarningLimit: 1 << 20,
      rollupOptions: { input: join(HERE, 'index.html') },
    },
  });
  return out;
}
