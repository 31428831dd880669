// Node side of the blob store harness: builds the page with Vite into a temporary folder and
// serves it on 127.0.0.1.
import { createReadStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { extname, join, normalize, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = fileURLToPath(new URL('.', import.meta.url));

export async function buildBlobHarness(): Promise<string> {
  const { build } = await import('vite');
  const outDir = mkdtempSync(join(tmpdir(), 'blob-harness-'));
  await build({
    configFile: false,
    root: HERE,
    base: './',
    logLevel: 'warn',
    worker: { format: 'es' },
    build: { outDir, emptyOutDir: true, target: 'es2022', minify: false },
  });
  return outDir;
}

export async function serveBlobHarness(
  dist: string,
): Promise<{ url: string; close(): Promise<void> }> {
  const root = resolve(dist);
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname).slice(1);
    const file = normalize(join(root, path || 'index.html'));
    if (!file.startsWith(root)) return void res.writeHead(403).end();
    try {
      const size = statSync(file).size;
      res.writeHead(200, {
        'content-type': extname(file) === '.html' ? 'text/html' : 'text/javascript',
        'content-length': String(size),
      });
      createReadStream(file).pipe(res);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/index.html`,
    close: () =>
      new Promise((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}

export function removeBlobHarness(dist: string): void {
  rmSync(dist, { recursive: true, force: true });
}
