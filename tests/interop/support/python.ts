// Running the Python judges from interop tests, and moving folders between disk and the app.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const SCRIPTS = join(ROOT, 'scripts', 'interop');

/** Interpreters of the two virtual environments (set by scripts/test-interop.mjs). */
export const PY = {
  mlflow3: process.env.TABFLOW_PY_MLFLOW3 ?? '',
  mlflow2: process.env.TABFLOW_PY_MLFLOW2 ?? '',
} as const;
export type Flavour = keyof typeof PY;

export class PythonError extends Error {}

/**
 * Runs scripts/interop/<script> with the given venv and returns its stdout. The working
 * directory defaults to a fresh temp dir so MLflow records no git info of this repository.
 */
export function runPython(
  flavour: Flavour,
  script: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<string> {
  const python = PY[flavour];
  if (!python) throw new PythonError(`No interpreter for ${flavour}: run via npm run test:interop`);
  const cwd = options.cwd ?? tempDir('py-cwd');
  return new Promise((resolve, reject) => {
    const child = spawn(python, [join(SCRIPTS, script), ...args], {
      cwd,
      env: { ...process.env, PYTHONUNBUFFERED: '1', PYTHONDONTWRITEBYTECODE: '1', ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 170_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out).toString('utf8');
      if (code === 0) return resolve(stdout);
      const stderr = Buffer.concat(err).toString('utf8');
      reject(
        new PythonError(
          `${script} ${args.join(' ')} exited with ${code}:\n${stderr.slice(-4000)}${stdout.slice(-2000)}`,
        ),
      );
    });
  });
}

/** Runs a script whose stdout ends with one JSON document, and parses it. */
export async function runPythonJson<T = unknown>(
  flavour: Flavour,
  script: string,
  args: string[],
  options: Parameters<typeof runPython>[3] = {},
): Promise<T> {
  const out = await runPython(flavour, script, args, options);
  const start = out.search(/^[[{]/m);
  if (start < 0) throw new PythonError(`${script} printed no JSON:\n${out.slice(-2000)}`);
  return JSON.parse(out.slice(start)) as T;
}

const temps: string[] = [];

export function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), `tabflow-interop-${prefix}-`));
  temps.push(d);
  return d;
}

export function removeTempDirs(): void {
  if (process.env.TABFLOW_KEEP_INTEROP_TMP) return;
  for (const d of temps.splice(0)) rmSync(d, { recursive: true, force: true });
}

/** Every file under `dir`, by '/'-separated path relative to it. */
export function readTree(dir: string): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const full = join(entry.parentPath, entry.name);
    out.set(relative(dir, full).split(sep).join('/'), new Uint8Array(readFileSync(full)));
  }
  return out;
}

/** Writes files (null = an empty folder) under `dir`. */
export function writeTree(dir: string, files: Map<string, Uint8Array | null>): void {
  for (const [path, bytes] of files) {
    const full = join(dir, ...path.split('/').filter(Boolean));
    if (bytes === null) mkdirSync(full, { recursive: true });
    else {
      mkdirSync(dirname(full), { recursive: true });
      writeFileSync(full, bytes);
    }
  }
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** `file:` URI of a local absolute path, as Python's pathlib writes it. */
export function fileUri(path: string): string {
  const p = path.split(sep).join('/');
  return `file://${p.startsWith('/') ? '' : '/'}${p}`;
}
