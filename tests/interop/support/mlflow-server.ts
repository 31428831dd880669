// A real `mlflow server` on 127.0.0.1 for interop tests: sqlite backend, artifact proxy, and the
// security middleware's CORS list set for a browser origin when one is given.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { PY, PythonError, tempDir, type Flavour } from './python.ts';

export interface MlflowServer {
  url: string;
  port: number;
  /** Everything the server printed so far (for failure messages). */
  log(): string;
  stop(): Promise<void>;
}

function tryListen(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on('error', reject);
    s.listen(port, '127.0.0.1', () => {
      const addr = s.address();
      const bound = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(bound));
    });
  });
}

const claimed = new Set<number>();

/**
 * A port free on 127.0.0.1. Set TABFLOW_INTEROP_PORTS=<first>-<last> to keep servers inside a
 * range (machines that share a host between several test runs); otherwise the system picks one.
 */
export async function freePort(): Promise<number> {
  const range = /^(\d+)-(\d+)$/.exec(process.env.TABFLOW_INTEROP_PORTS ?? '');
  if (!range) return tryListen(0);
  const [first, last] = [Number(range[1]), Number(range[2])];
  // Test files run in parallel processes that each probe the range: start each process at its own
  // place in it, so two of them rarely probe the same free port before either binds it.
  const size = last - first + 1;
  const offset = (process.pid * 7919) % size;
  for (let i = 0; i < size; i++) {
    const port = first + ((offset + i) % size);
    if (claimed.has(port)) continue;
    try {
      await tryListen(port);
      claimed.add(port);
      return port;
    } catch {
      // taken: try the next one
    }
  }
  throw new Error(`No free port in TABFLOW_INTEROP_PORTS=${first}-${last}`);
}

export interface StartOptions {
  backendStoreUri: string;
  artifactsDestination: string;
  /** Browser origins allowed to call the API (MLflow 3.5+ security middleware). */
  corsAllowedOrigins?: string[];
  flavour?: Flavour;
  /** An interpreter with MLflow installed (default: the flavour's venv). */
  python?: string;
  timeoutMs?: number;
}

export async function startMlflowServer(options: StartOptions): Promise<MlflowServer> {
  const python = options.python ?? PY[options.flavour ?? 'mlflow3'];
  if (!python) throw new PythonError('No interpreter for the MLflow server');
  const port = await freePort();
  const args = [
    '-m',
    'mlflow',
    'server',
    '--host',
    '127.0.0.1',
    '--port',
    String(port),
    '--workers',
    '1',
    '--backend-store-uri',
    options.backendStoreUri,
    '--serve-artifacts',
    '--artifacts-destination',
    options.artifactsDestination,
  ];
  if (options.corsAllowedOrigins?.length) {
    args.push('--cors-allowed-origins', options.corsAllowedOrigins.join(','));
  }
  const output: string[] = [];
  const child: ChildProcess = spawn(python, args, {
    cwd: tempDir('server-cwd'),
    env: {
      ...process.env,
      PYTHONUNBUFFERED: '1',
      MLFLOW_DISABLE_TELEMETRY: 'true',
      DO_NOT_TRACK: 'true',
      GIT_PYTHON_REFRESH: 'quiet',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: process.platform !== 'win32',
  });
  child.stdout?.on('data', (b: Buffer) => output.push(b.toString('utf8')));
  child.stderr?.on('data', (b: Buffer) => output.push(b.toString('utf8')));
  const url = `http://127.0.0.1:${port}`;
  let exited = false;
  child.on('exit', () => (exited = true));

  const stop = async () => {
    if (exited || child.pid === undefined) return;
    const done = new Promise<void>((r) => child.once('exit', () => r()));
    // The server runs uvicorn workers as children: end the whole process group we started.
    try {
      if (process.platform !== 'win32') process.kill(-child.pid, 'SIGTERM');
      else child.kill('SIGTERM');
    } catch {
      // already gone
    }
    const timer = setTimeout(() => {
      try {
        if (process.platform !== 'win32') process.kill(-child.pid!, 'SIGKILL');
        else child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }, 5000);
    await done;
    clearTimeout(timer);
  };

  const deadline = Date.now() + (options.timeoutMs ?? 120_000);
  while (Date.now() < deadline) {
    if (exited) break;
    try {
      const r = await fetch(`${url}/health`);
      if (r.ok) return { url, port, log: () => output.join(''), stop };
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  await stop();
  throw new PythonError(`mlflow server did not become healthy:\n${output.join('').slice(-4000)}`);
}
