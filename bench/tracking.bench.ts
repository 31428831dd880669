// Tracking store benchmarks, printed as ratios against baselines measured in the same run:
// 1. metric logging: log-batch calls of 1000 points vs the floor (the same points as one array in
//    one transaction);
// 2. a many-run experiment (20 params, 10 metrics each): first page, sort by a metric, and
//    `metrics.acc > 0.9 and params.lr = '0.01'`, vs reading every run and evaluating in JS.
// Runs in Node on fake-indexeddb, then in Chromium on its real IndexedDB when a Chromium is found
// (CHROMIUM_PATH, or scripts/find-chromium.mjs). Sizes: BENCH_POINTS (100000), BENCH_RUNS (10000);
// BENCH_NODE=0 or BENCH_CHROMIUM=0 skips one side.
import 'fake-indexeddb/auto';
import { createServer } from 'node:http';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { runTrackingBench, type BenchOptions } from './tracking/cases.ts';

const opts: BenchOptions = {
  points: Number(process.env['BENCH_POINTS'] ?? 100_000),
  runs: Number(process.env['BENCH_RUNS'] ?? 10_000),
  tag: 'bench',
};

function findChromium(): string | null {
  if (process.env['CHROMIUM_PATH']) return process.env['CHROMIUM_PATH'];
  const script = fileURLToPath(new URL('../scripts/find-chromium.mjs', import.meta.url));
  const r = spawnSync('node', [script], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim().split('\n').pop() || null : null;
}

async function bundle(): Promise<string> {
  const { build } = await import('vite');
  const entry = fileURLToPath(new URL('./tracking/browser-entry.ts', import.meta.url));
  const out = (await build({
    configFile: false,
    logLevel: 'silent',
    build: {
      write: false,
      minify: false,
      lib: { entry, formats: ['iife'], name: 'TabflowBench', fileName: 'bench' },
    },
  })) as { output: { code?: string }[] } | { output: { code?: string }[] }[];
  const first = Array.isArray(out) ? out[0]! : out;
  return first.output[0]!.code!;
}

async function inChromium(executablePath: string): Promise<void> {
  const code = await bundle();
  const html =
    '<!doctype html><meta charset="utf-8"><title>bench</title><script src="/bench.js"></script>';
  const server = createServer((req, res) => {
    if (req.url === '/bench.js')
      res.writeHead(200, { 'content-type': 'text/javascript' }).end(code);
    else res.writeHead(200, { 'content-type': 'text/html' }).end(html);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const port = (server.address() as { port: number }).port;
  const { chromium } = await import('@playwright/test');
  const browser = await chromium.launch({
    executablePath,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
  try {
    const page = await browser.newPage();
    page.on('console', (m) => console.log(m.text()));
    await page.goto(`http://127.0.0.1:${port}/`);
    await page.evaluate(
      (o) => (window as unknown as { runBench(o: unknown): Promise<void> }).runBench(o),
      {
        ...opts,
        tag: `bench-${Date.now()}`,
      },
    );
    console.log(`(${await browser.version()})`);
  } finally {
    await browser.close();
    server.close();
  }
}

if (process.env['BENCH_NODE'] !== '0') {
  console.log(
    "--- Node, fake-indexeddb (a first figure: its IndexedDB is much slower than a browser's)",
  );
  await runTrackingBench(opts, (s) => console.log(s));
}
if (process.env['BENCH_CHROMIUM'] !== '0') {
  const path = findChromium();
  if (!path) console.log('--- Chromium: none found (set CHROMIUM_PATH); skipped');
  else {
    console.log('--- Chromium, real IndexedDB');
    await inChromium(path);
  }
}
