// Compiles the CPU decoder's AssemblyScript kernels to WebAssembly with the compiler from npm
// (no system toolchain): SIMD128 and relaxed-SIMD builds of the same source, each for a shared
// memory (threads; needs a cross-origin isolated page) and a plain one, written to the
// git-ignored src/lib/inference/cpu/kernels/build/. Skips the work when the outputs match the
// source and compiler version. `node scripts/build-kernels.mjs [--force]`.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const SRC = join(ROOT, 'src', 'lib', 'inference', 'cpu', 'kernels');
const OUT = join(SRC, 'build');
const STAMP = join(OUT, '.source-hash');

const SHARED = ['--sharedMemory', '--enable', 'threads'];
const RELAXED = ['--enable', 'relaxed-simd'];

export const VARIANTS = {
  simd: [],
  relaxed: RELAXED,
  'simd-shared': SHARED,
  'relaxed-shared': [...RELAXED, ...SHARED],
};

function sourceHash() {
  const h = createHash('sha256');
  const asc = JSON.parse(
    readFileSync(join(ROOT, 'node_modules', 'assemblyscript', 'package.json')),
  );
  h.update(asc.version);
  h.update(readFileSync(fileURLToPath(import.meta.url)));
  for (const f of readdirSync(SRC)
    .filter((f) => f.endsWith('.ts'))
    .sort()) {
    h.update(f);
    h.update(readFileSync(join(SRC, f)));
  }
  return h.digest('hex');
}

function stamp() {
  try {
    return readFileSync(STAMP, 'utf8');
  } catch {
    return null;
  }
}

/** Builds the kernels if stale; returns the paths of the .wasm files by variant. */
export async function buildKernels({ force = false, log = () => {} } = {}) {
  const paths = Object.fromEntries(
    Object.keys(VARIANTS).map((v) => [v, join(OUT, `decoder-${v}.wasm`)]),
  );
  const hash = sourceHash();
  if (!force && stamp() === hash) return paths;
  const { default: asc } = await import('assemblyscript/asc');
  mkdirSync(OUT, { recursive: true });
  for (const [variant, flags] of Object.entries(VARIANTS)) {
    const started = performance.now();
    const tmp = `${paths[variant]}.tmp-${process.pid}`;
    const stderr = [];
    const { error } = await asc.main(
      [
        join(SRC, 'decoder.ts'),
        '--outFile',
        tmp,
        '-O3',
        '--noAssert',
        '--runtime',
        'stub',
        '--importMemory',
        '--initialMemory',
        '1',
        '--maximumMemory',
        '65536',
        '--noExportMemory',
        '--enable',
        'simd',
        ...flags,
      ],
      { stderr: { write: (s) => stderr.push(String(s)) }, stdout: { write: () => {} } },
    );
    if (error) throw new Error(`build-kernels: ${variant}: ${error.message}\n${stderr.join('')}`);
    // Parallel test workers may build at once: each writes its own file and renames it.
    renameSync(tmp, paths[variant]);
    log(`${variant}: ${paths[variant]} (${Math.round(performance.now() - started)} ms)`);
  }
  writeFileSync(STAMP, hash);
  return paths;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await buildKernels({ force: process.argv.includes('--force'), log: (l) => console.log(l) });
}
