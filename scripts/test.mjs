// `npm test`: every check, in the order that fails fastest.
//   format → types (svelte-check, tsc) → unit tests (Vitest, Node) → build →
//   browser tests (Playwright, real Chromium against `vite preview`) → interop (Python MLflow).
// Ends with one line "N passed, N failed, N skipped" over all test tiers.
// `node scripts/test.mjs --only unit|browser|check|interop` runs one tier.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { ensureChromium } from './find-chromium.mjs';

const args = process.argv.slice(2);
const onlyIdx = args.indexOf('--only');
const only = onlyIdx >= 0 ? args[onlyIdx + 1] : null;
const want = (tier) => only === null || only === tier;

const totals = { passed: 0, failed: 0, skipped: 0 };
const failures = [];
const started = Date.now();

function run(label, cmd, cmdArgs, env = {}) {
  const t0 = Date.now();
  console.log(`\n▶ ${label}`);
  const r = spawnSync(cmd, cmdArgs, { stdio: 'inherit', env: { ...process.env, ...env } });
  const secs = ((Date.now() - t0) / 1000).toFixed(1);
  if (r.status !== 0) {
    failures.push(label);
    console.log(`✗ ${label} failed (${secs} s)`);
    return false;
  }
  console.log(`✓ ${label} (${secs} s)`);
  return true;
}

function readJson(path) {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return null;
  }
}

mkdirSync('test-results', { recursive: true });

// A fresh clone has no node_modules: install exactly the locked dependencies first, so `npm test`
// alone works on a clean checkout (npm ci downloads nothing at test time beyond the registry).
if (!existsSync('node_modules/.package-lock.json')) {
  if (!run('dependencies (npm ci)', 'npm', ['ci', '--no-audit', '--no-fund'])) {
    console.log('npm ci failed: install the dependencies with `npm install`, then run `npm test`.');
    process.exit(1);
  }
}

// The CPU decoder's WebAssembly kernels are compiled from AssemblyScript (npm only, no system
// toolchain); type checks, unit tests and the build all need them.
run('kernels (AssemblyScript → wasm)', 'node', ['scripts/build-kernels.mjs']);

if (want('check')) {
  run('format (prettier --check)', 'npx', ['prettier', '--check', '--log-level', 'warn', '.']);
  run('types (svelte-check)', 'npx', [
    'svelte-check',
    '--tsconfig',
    './tsconfig.json',
    '--threshold',
    'error',
  ]);
  run('types (tsc: tests, scripts, config)', 'npx', [
    'tsc',
    '-p',
    'tsconfig.node.json',
    '--noEmit',
  ]);
}

if (want('unit')) {
  rmSync('test-results/unit.json', { force: true });
  run('unit tests (Vitest in Node)', 'npx', [
    'vitest',
    'run',
    '--project',
    'unit',
    '--reporter=default',
    '--reporter=json',
    '--outputFile.json=test-results/unit.json',
  ]);
  const j = readJson('test-results/unit.json');
  if (j) {
    totals.passed += j.numPassedTests ?? 0;
    totals.failed += j.numFailedTests ?? 0;
    totals.skipped += (j.numPendingTests ?? 0) + (j.numTodoTests ?? 0);
  }
}

// The browser tier's interop specs read and write with Python MLflow: prepare its venvs first
// (from PyPI, once; without python3 those specs skip with one line, as the interop tier does).
if ((want('browser') || want('interop')) && existsSync('scripts/test-interop.mjs')) {
  spawnSync('node', ['scripts/test-interop.mjs', '--prepare'], { stdio: 'inherit' });
}

if (want('browser')) {
  if (run('build (vite build)', 'npx', ['vite', 'build', '--logLevel', 'warn'])) {
    const chromium = ensureChromium();
    console.log(`Chromium: ${chromium}`);
    rmSync('test-results/browser.json', { force: true });
    run('browser tests (Playwright, Chromium)', 'npx', ['playwright', 'test'], {
      CHROMIUM_PATH: chromium,
    });
    const j = readJson('test-results/browser.json');
    if (j?.stats) {
      totals.passed += (j.stats.expected ?? 0) + (j.stats.flaky ?? 0);
      totals.failed += j.stats.unexpected ?? 0;
      totals.skipped += j.stats.skipped ?? 0;
    }
  }
}

if (want('interop') && existsSync('scripts/test-interop.mjs')) {
  run('interop (Python MLflow judges)', 'node', ['scripts/test-interop.mjs']);
  const j = readJson('test-results/interop.json');
  if (j) {
    totals.passed += j.passed ?? 0;
    totals.failed += j.failed ?? 0;
    totals.skipped += j.skipped ?? 0;
  }
}

const mins = ((Date.now() - started) / 60000).toFixed(1);
if (failures.length) console.log(`\nFailed steps: ${failures.join('; ')}`);
console.log(`\nAll tiers took ${mins} min.`);
if (failures.length && totals.failed === 0) totals.failed = failures.length;
console.log(`${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
process.exit(failures.length ? 1 : 0);
