// Node side of the inference harness: builds the page (entry.ts, with the app's inference worker
// and store) with Vite into a temporary folder, and serves it cross-origin isolated, like
// `vite preview`, next to model folders from disk.
import { createReadStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { extname, join, normalize, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = fileURLToPath(new URL('.', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript',
  '.mjs': 'text/javascript',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
};

/** Builds the harness page; returns the output folder (remove it with `rmSync` when done). */
export async function buildHarness(): Promise<string> {
  const { build } = await import('vite');
  const outDir = mkdtempSync(join(tmpdir(), 'inference-harness-'));
  await build({
    configFile: false,
    root: HERE,
    base: './',
    logLevel: 'warn',
    worker: { format: 'es' },
    build: {
      outDir,
      emptyOutDir: true,
      target: 'es2022',
      minify: false,
      chunkSizeWarningLimit: 1 << 20,
      rollupOptions: { input: join(HERE, 'index.html') },
    },
  });
  return outDir;
}

export interface HarnessServer {
  /** The harness page. */
  url: string;
  /** Base URL of a model folder registered under `key`. */
  modelUrl(key: string): string;
  close(): Promise<void>;
}

/**
 * Serves the built page at `/` and each model folder at `/__models/<key>/`, with the isolation
 * headers the app's own server sends (SharedArrayBuffer, so onnxruntime gets its threads) and a
 * Content-Length on every file (the page preallocates buffers from it).
 */
export async function serveHarness(
  distDir: string,
  models: Record<string, string>,
): Promise<HarnessServer> {
  const roots = new Map<string, string>([['', resolve(distDir)]]);
  for (const [k, dir] of Object.entries(models)) roots.set(`__models/${k}`, resolve(dir));
  const server: Server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname).slice(1);
    let root = roots.get('')!;
    let rel = path;
    for (const [prefix, dir] of roots) {
      if (prefix && path.startsWith(`${prefix}/`)) {
        root = dir;
        rel = path.slice(prefix.length + 1);
      }
    }
    let file = normalize(join(root, rel || 'index.html'));
    if (!file.startsWith(root)) return void res.writeHead(403).end();
    try {
      if (statSync(file).isDirectory()) file = join(file, 'index.html');
      const size = statSync(file).size;
      res.writeHead(200, {
        'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
        'content-length': String(size),
        'cache-control': 'no-store',
        'cross-origin-opener-policy': 'same-origin',
        'cross-origin-embedder-policy': 'require-corp',
        'cross-origin-resource-policy': 'same-origin',
      });
      createReadStream(file).pipe(res);
    } catch {
      res.writeHead(404).end('not found');
    }
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const port = (server.address() as { port: number }).port;
  const url = `http://127.0.0.1:${port}/`;
  return {
    url: `${url}index.html`,
    modelUrl: (key) => `${url}__models/${key}/`,
    close: () =>
      new Promise((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}

export function removeHarness(distDir: string): void {
  rmSync(distDir, { recursive: true, force: true });
}

/** The launch flags the browser tests use (headless as root, WebGPU on SwiftShader without a GPU). */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--enable-unsafe-webgpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
