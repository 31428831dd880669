// The interop tier: real Python MLflow (3.x, and one late 2.x) and onnxruntime-genai judge the
// files the app reads and writes. Called by scripts/test.mjs (npm test, npm run test:interop).
//
// - No python3: prints one line and records every interop test as skipped.
// - Creates the virtual environments when missing (.venv from scripts/interop/requirements.txt,
//   .venv-mlflow2 from requirements-mlflow2.txt), or refreshes them when a requirements file
//   changed. That is the only network use; the tests themselves use 127.0.0.1 at most.
// - Runs Vitest with vitest.interop.config.ts and writes test-results/interop.json
//   ({passed, failed, skipped}) for the summary line.
// Extra arguments are passed to Vitest (e.g. a test file to run alone).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const RESULTS = 'test-results/interop.json';
const VITEST_JSON = 'test-results/interop-vitest.json';
const TEST_DIR = 'tests/interop';

const VENVS = [
  { dir: '.venv', requirements: 'scripts/interop/requirements.txt', env: 'TABFLOW_PY_MLFLOW3' },
  {
    dir: '.venv-mlflow2',
    requirements: 'scripts/interop/requirements-mlflow2.txt',
    env: 'TABFLOW_PY_MLFLOW2',
  },
];

mkdirSync('test-results', { recursive: true });

function writeResults(r) {
  writeFileSync(RESULTS, JSON.stringify(r) + '\n');
}

/** Counted from the source so a machine without Python still reports what it skipped. */
function countTests() {
  if (!existsSync(TEST_DIR)) return 0;
  let n = 0;
  for (const f of readdirSync(TEST_DIR, { recursive: true })) {
    if (!String(f).endsWith('.test.ts')) continue;
    const text = readFileSync(join(TEST_DIR, String(f)), 'utf8');
    n += (text.match(/^\s*(?:it|test)(?:\.\w+)?\(/gm) ?? []).length;
  }
  return n;
}

function findPython() {
  for (const cmd of ['python3', 'python']) {
    const r = spawnSync(cmd, ['-c', 'import sys; print(sys.version_info[0])'], {
      encoding: 'utf8',
    });
    if (r.status === 0 && r.stdout.trim() === '3') return cmd;
  }
  return null;
}

const binDir = process.platform === 'win32' ? 'Scripts' : 'bin';
const venvPython = (dir) =>
  resolve(dir, binDir, process.platform === 'win32' ? 'python.exe' : 'python');

function stampOf(requirements, python) {
  const v = spawnSync(python, ['--version'], { encoding: 'utf8' });
  return createHash('sha256')
    .update(readFileSync(requirements))
    .update(v.stdout + v.stderr)
    .digest('hex');
}

/** Returns the venv's python, creating or updating the venv if needed; null if that failed. */
function ensureVenv({ dir, requirements }, python3) {
  const py = venvPython(dir);
  const stampFile = join(dir, '.requirements.sha256');
  if (existsSync(py)) {
    const want = stampOf(requirements, py);
    if (existsSync(stampFile) && readFileSync(stampFile, 'utf8') === want) return py;
  }
  const t0 = Date.now();
  console.log(`Preparing ${dir} from ${requirements} (needs PyPI once)…`);
  if (!existsSync(py)) {
    const r = spawnSync(python3, ['-m', 'venv', dir], { stdio: 'inherit' });
    if (r.status !== 0) {
      rmSync(dir, { recursive: true, force: true });
      return null;
    }
  }
  const r = spawnSync(
    py,
    ['-m', 'pip', 'install', '-q', '--disable-pip-version-check', '-r', requirements],
    { stdio: 'inherit' },
  );
  if (r.status !== 0) return null;
  writeFileSync(stampFile, stampOf(requirements, py));
  console.log(`${dir} ready in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  return py;
}

// `--prepare`: only create or refresh the venvs (npm test does this before the browser tier,
// whose interop specs need them), then stop.
const prepareOnly = process.argv.includes('--prepare');
const total = prepareOnly ? 0 : countTests();
const python3 = findPython();
if (prepareOnly) {
  if (python3) for (const v of VENVS) ensureVenv(v, python3);
  process.exit(0);
}
if (!python3) {
  console.log('interop tier skipped: python3 not found');
  writeResults({ passed: 0, failed: 0, skipped: total });
  process.exit(0);
}

const env = { ...process.env };
for (const v of VENVS) {
  const py = ensureVenv(v, python3);
  if (py) env[v.env] = py;
  else console.log(`Could not prepare ${v.dir}; the tests that need it will fail or be skipped.`);
}
if (!env.TABFLOW_PY_MLFLOW3) {
  console.log(`interop tier failed: could not install ${VENVS[0].requirements} into .venv`);
  writeResults({ passed: 0, failed: total || 1, skipped: 0 });
  process.exit(1);
}

rmSync(VITEST_JSON, { force: true });
const r = spawnSync(
  'npx',
  [
    'vitest',
    'run',
    '--config',
    'vitest.interop.config.ts',
    '--reporter=default',
    '--reporter=json',
    `--outputFile.json=${VITEST_JSON}`,
    ...process.argv.slice(2),
  ],
  { stdio: 'inherit', env },
);

let j = null;
try {
  j = JSON.parse(readFileSync(VITEST_JSON, 'utf8'));
} catch {
  // Vitest did not get as far as writing results; counted as one failure below.
}
const results = j
  ? {
      passed: j.numPassedTests ?? 0,
      failed: j.numFailedTests ?? 0,
      skipped: (j.numPendingTests ?? 0) + (j.numTodoTests ?? 0),
    }
  : { passed: 0, failed: 1, skipped: 0 };
if (r.status !== 0 && results.failed === 0) results.failed = 1;
writeResults(results);
process.exit(r.status === 0 ? 0 : 1);
