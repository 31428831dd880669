// Row-split threading for the CPU decoder: N-1 helper threads share the engine's one
// WebAssembly.Memory (one copy of the weights) and instantiate the same kernels on it. The
// engine thread writes a job into a small control block in that memory, wakes the helpers with
// Atomics.notify, does its own share and waits for the rest. Helpers park in Atomics.wait
// between jobs: spinning threads starve the browser's background compiler on 2-core machines.
// Atomics.wait is not allowed on a page's main thread; the engine runs in the inference worker.
import { instantiateKernels, type KernelExports, type KernelSet } from './kernels.ts';

/** A helper thread says this once its kernels are instantiated. */
export const THREAD_READY = 'cpu-decoder-thread-ready';

const GEN = 0;
const PENDING = 1;
const OP = 2;
const ARGS = 3;
/** Int32 slots of the control block. */
export const CONTROL_INTS = 32;

const enum Op {
  Stop = 0,
  MatmulQ4 = 1,
  MatmulQ4F32 = 2,
  Attention = 3,
}

/** What a helper thread is sent once, at start-up. */
export interface ThreadInit {
  type: 'init';
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  control: number;
  index: number;
  count: number;
}

/** The few parts of a Worker (browser) or worker_threads Worker (Node) the pool uses. */
export interface ThreadHandle {
  postMessage(message: ThreadInit): void;
  /** Resolves when the thread has instantiated the kernels. */
  ready: Promise<void>;
  terminate(): void;
}

function share(total: number, index: number, count: number): [number, number] {
  const per = Math.ceil(total / count);
  return [Math.min(total, index * per), Math.min(total, (index + 1) * per)];
}

/** Runs this thread's share of the job in the control block. */
function runShare(k: KernelExports, c: Int32Array, f: Float32Array, index: number, count: number) {
  const a = (i: number) => c[ARGS + i]!;
  switch (c[OP]) {
    case Op.MatmulQ4: {
      const [n0, n1] = share(a(7), index, count);
      if (n1 > n0) k.matmulQ4(a(0), a(1), a(2), a(3), a(4), a(5), a(6), n0, n1, a(8), a(9));
      break;
    }
    case Op.MatmulQ4F32: {
      const [n0, n1] = share(a(5), index, count);
      if (n1 > n0) k.matmulQ4F32(a(0), a(1), a(2), a(3), a(4), n0, n1, a(6), a(7));
      break;
    }
    case Op.Attention: {
      const [h0, h1] = share(a(7), index, count);
      const cap = a(10);
      const scratch = (a(12) >>> 0) + index * cap * 4;
      if (h1 > h0) {
        k.attention(
          a(0),
          a(1),
          a(2),
          a(3),
          a(4),
          a(5),
          a(6),
          a(7),
          a(8),
          a(9),
          cap,
          f[ARGS + 11]!,
          h0,
          h1,
          scratch,
          a(13),
        );
      }
      break;
    }
  }
}

/** The body of a helper thread: call with the init message; returns when told to stop. */
export function serveThread(init: ThreadInit, post: (message: string) => void): void {
  const k = instantiateKernels({ module: init.module }, init.memory);
  const c = new Int32Array(init.memory.buffer, init.control, CONTROL_INTS);
  const f = new Float32Array(init.memory.buffer, init.control, CONTROL_INTS);
  let seen = Atomics.load(c, GEN);
  post(THREAD_READY);
  for (;;) {
    Atomics.wait(c, GEN, seen);
    seen = Atomics.load(c, GEN);
    if (c[OP] === Op.Stop) return;
    runShare(k, c, f, init.index, init.count);
    if (Atomics.sub(c, PENDING, 1) === 1) Atomics.notify(c, PENDING);
  }
}

/** The engine side: dispatches kernels over itself and the helper threads. */
export class ThreadPool {
  private readonly c: Int32Array;
  private readonly f: Float32Array;

  private constructor(
    private readonly k: KernelExports,
    memory: WebAssembly.Memory,
    control: number,
    private readonly threads: ThreadHandle[],
  ) {
    this.c = new Int32Array(memory.buffer, control, CONTROL_INTS);
    this.f = new Float32Array(memory.buffer, control, CONTROL_INTS);
  }

  get size(): number {
    return this.threads.length + 1;
  }

  static async start(
    k: KernelExports,
    kernels: KernelSet,
    memory: WebAssembly.Memory,
    control: number,
    helpers: ThreadHandle[],
  ): Promise<ThreadPool> {
    const count = helpers.length + 1;
    helpers.forEach((t, i) =>
      t.postMessage({ type: 'init', module: kernels.module, memory, control, index: i + 1, count }),
    );
    await Promise.all(helpers.map((t) => t.ready));
    return new ThreadPool(k, memory, control, helpers);
  }

  private run(op: Op, args: number[], scale?: number): void {
    const c = this.c;
    c[OP] = op;
    for (let i = 0; i < args.length; i++) c[ARGS + i] = args[i]! | 0;
    if (scale !== undefined) this.f[ARGS + 11] = scale;
    Atomics.store(c, PENDING, this.threads.length);
    Atomics.add(c, GEN, 1);
    Atomics.notify(c, GEN);
    runShare(this.k, c, this.f, 0, this.size);
    for (;;) {
      const left = Atomics.load(c, PENDING);
      if (left === 0) break;
      Atomics.wait(c, PENDING, left);
    }
  }

  matmulQ4(
    w: number,
    ws: number,
    xq: number,
    xs: number,
    xc: number,
    m: number,
    nb: number,
    n: number,
    out: number,
    outStride: number,
  ): void {
    this.run(Op.MatmulQ4, [w, ws, xq, xs, xc, m, nb, n, out, outStride]);
  }

  matmulQ4F32(
    w: number,
    ws: number,
    xf: number,
    m: number,
    nb: number,
    n: number,
    out: number,
    outStride: number,
  ): void {
    this.run(Op.MatmulQ4F32, [w, ws, xf, m, nb, n, out, outStride]);
  }

  /** `scratch` holds `size` blocks of `capacity` floats, one per thread; `half`: fp16 caches. */
  attention(
    q: number,
    qStride: number,
    kCache: number,
    vCache: number,
    out: number,
    m: number,
    past: number,
    heads: number,
    kvHeads: number,
    headSize: number,
    capacity: number,
    scale: number,
    scratch: number,
    half: number,
  ): void {
    this.run(
      Op.Attention,
      [
        q,
        qStride,
        kCache,
        vCache,
        out,
        m,
        past,
        heads,
        kvHeads,
        headSize,
        capacity,
        0,
        scratch,
        half,
      ],
      scale,
    );
  }

  stop(): void {
    this.c[OP] = Op.Stop;
    Atomics.add(this.c, GEN, 1);
    Atomics.notify(this.c, GEN);
    for (const t of this.threads) t.terminate();
  }
}

/** A module worker running thread-worker.ts (browsers). */
export function browserThread(): ThreadHandle {
  const w = new Worker(new URL('./thread-worker.ts', import.meta.url), {
    type: 'module',
    name: 'cpu-decoder-thread',
  });
  const ready = new Promise<void>((resolve, reject) => {
    w.onmessage = (e) => {
      if (e.data === THREAD_READY) resolve();
    };
    w.onerror = (e) => reject(new Error(`CPU decoder thread failed to start: ${e.message}`));
  });
  return { postMessage: (m) => w.postMessage(m), ready, terminate: () => w.terminate() };
}

/** Threads for this page: hardware concurrency capped at 4, or 1 without cross-origin isolation. */
export function defaultThreadCount(): number {
  const g = globalThis as {
    crossOriginIsolated?: boolean;
    navigator?: { hardwareConcurrency?: number };
  };
  if (g.crossOriginIsolated !== true || typeof Worker === 'undefined') return 1;
  return Math.max(1, Math.min(g.navigator?.hardwareConcurrency ?? 1, 4));
}
