import { defineConfig, type Plugin } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';

// Multi-threaded wasm needs a cross-origin isolated page. Dev and preview send the headers
// themselves; on GitHub Pages (no custom headers) the service worker adds them.
const isolation = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

// Files above this size are not precached on install (the 27 MB onnxruntime wasm, say):
// the service worker caches them the first time they are used instead.
const PRECACHE_LIMIT = 4 * 1024 * 1024;

/** Emits sw.js with the build id and the app shell's file list filled in. */
function serviceWorker(): Plugin {
  return {
    name: 'tabflow-service-worker',
    apply: 'build',
    generateBundle(_options, bundle) {
      const publicFiles = readdirSync(new URL('./public/', import.meta.url)).filter(
        (f) => !f.startsWith('.'),
      );
      const shell = ['./', './index.html', ...publicFiles.map((f) => `./${f}`)];
      const hash = createHash('sha256');
      for (const [fileName, item] of Object.entries(bundle).sort(([a], [b]) =>
        a.localeCompare(b),
      )) {
        const size = item.type === 'chunk' ? item.code.length : item.source.length;
        hash.update(fileName);
        hash.update(item.type === 'chunk' ? item.code : item.source);
        if (size <= PRECACHE_LIMIT && !fileName.endsWith('.map')) shell.push(`./${fileName}`);
      }
      const template = readFileSync(new URL('./src/sw/sw.js', import.meta.url), 'utf8');
      const source = template
        .replace('__BUILD_ID__', hash.digest('hex').slice(0, 16))
        .replace('__SHELL_FILES__', JSON.stringify(shell));
      this.emitFile({ type: 'asset', fileName: 'sw.js', source });
    },
  };
}

// Several local builds can coexist (for example one per browser-test run) by naming their folder.
const outDir = process.env.TABFLOW_OUT_DIR ?? 'dist';

export default defineConfig({
  // Relative asset URLs: the build works from any sub-path (user.github.io/tabflow/).
  base: './',
  plugins: [svelte(), serviceWorker()],
  server: { headers: isolation },
  preview: { headers: isolation },
  worker: { format: 'es' },
  build: { outDir, target: 'es2022', sourcemap: false, chunkSizeWarningLimit: 4096 },
  optimizeDeps: { include: ['onnxruntime-web', '@huggingface/transformers', 'idb'] },
});
