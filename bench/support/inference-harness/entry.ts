// Page side of the inference harness (built by build.ts, driven by Playwright from the
// inference bench and the browser logits test). It combines the app's real parts: the inference
// client and worker, the chunked blob store, and a logits side door (logits-worker.ts).
import { InferenceClient } from '../../../src/lib/inference/client.ts';
import type {
  Backend,
  BackendPreference,
  CompleteMessage,
  ModelLayout,
  ReadyMessage,
} from '../../../src/lib/inference/protocol.ts';
import { readBlob, writeBlob } from '../../../src/lib/store/blobs.ts';
import { openDatabase } from '../../../src/lib/store/db.ts';
import type { ForcedRun, LogitsReply, LogitsRequest } from './logits-worker.ts';

/** Streams a fixture file from the harness server. */
async function fetchBody(url: string): Promise<{ body: ReadableStream<Uint8Array>; size: number }> {
  const r = await fetch(url);
  if (!r.ok || !r.body) throw new Error(`${url}: HTTP ${r.status}`);
  return { body: r.body, size: Number(r.headers.get('content-length') ?? 0) };
}

async function* chunks(body: ReadableStream<Uint8Array>): AsyncGenerator<Uint8Array> {
  const reader = body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    yield value;
  }
}

function toBase64(a: Float32Array): string {
  const bytes = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

export interface LoadOutcome {
  ready: ReadyMessage;
  /** From the load request to the end of session creation (the warm-up token not included). */
  sessionMs: number;
  /** Until ready, warm-up token included. */
  totalMs: number;
}

export interface MemoryReport {
  /** performance.measureUserAgentSpecificMemory() total (page + its workers), if available. */
  uaBytes: number | null;
  uaError: string | null;
  /** performance.memory.usedJSHeapSize of the page (Chromium only). */
  pageHeapBytes: number | null;
}

let client: InferenceClient | null = null;
let logitsWorker: Worker | null = null;
let nextId = 1;

const harness = {
  isolated: () => crossOriginIsolated,

  async adapter(): Promise<Record<string, unknown> | null> {
    const gpu = (navigator as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
    const a = (await gpu?.requestAdapter()) as
      { info?: Record<string, unknown>; features: Set<string> } | null | undefined;
    if (!a) return null;
    const info = a.info ?? {};
    return {
      vendor: info.vendor,
      architecture: info.architecture,
      description: info.description,
      isFallbackAdapter: info.isFallbackAdapter,
      shaderF16: a.features.has('shader-f16'),
    };
  },

  /** Fixture files as plain Blobs (test sizes only: each is read whole into memory). */
  async fetchBlobs(base: string, names: string[]): Promise<Record<string, Blob>> {
    const out: Record<string, Blob> = {};
    for (const n of names) {
      const r = await fetch(base + n);
      if (!r.ok) throw new Error(`${n}: HTTP ${r.status}`);
      out[n] = await r.blob();
    }
    return out;
  },

  /** Writes each file into IndexedDB as chunked Blobs (the app's weights store). */
  async storeModel(
    dbName: string,
    base: string,
    names: string[],
  ): Promise<{ ms: number; bytes: number }> {
    const db = await openDatabase({ name: dbName });
    const t0 = performance.now();
    let bytes = 0;
    try {
      for (const n of names) {
        const { body, size } = await fetchBody(base + n);
        const rec = await writeBlob(db, `bench/${n}`, chunks(body), { expectedSize: size });
        bytes += rec.size;
      }
    } finally {
      db.close();
    }
    return { ms: performance.now() - t0, bytes };
  },

  /** The stored files as IndexedDB-backed Blobs (nothing is read yet). */
  async blobsFromStore(dbName: string, names: string[]): Promise<Record<string, Blob>> {
    const db = await openDatabase({ name: dbName });
    try {
      const out: Record<string, Blob> = {};
      for (const n of names) out[n] = await readBlob(db, `bench/${n}`);
      return out;
    } finally {
      db.close();
    }
  },

  /**
   * The files fetched into memory and wrapped as Blobs of 64 MiB ArrayBuffer parts (the in-memory
   * baseline). One ArrayBuffer per file is not possible above 2 GiB: Chromium refuses to post
   * (clone or transfer) an ArrayBuffer that large to a worker.
   */
  async memoryBlobs(base: string, names: string[]): Promise<Record<string, Blob>> {
    const PART = 64 * 1024 * 1024;
    const out: Record<string, Blob> = {};
    for (const n of names) {
      const { body } = await fetchBody(base + n);
      const parts: Uint8Array[] = [];
      let part = new Uint8Array(PART);
      let fill = 0;
      for await (let c of chunks(body)) {
        while (c.length) {
          const take = Math.min(c.length, PART - fill);
          part.set(c.subarray(0, take), fill);
          fill += take;
          c = c.subarray(take);
          if (fill === PART) {
            parts.push(part);
            part = new Uint8Array(PART);
            fill = 0;
          }
        }
      }
      if (fill) parts.push(part.slice(0, fill));
      out[n] = new Blob(parts as BlobPart[]);
    }
    return out;
  },

  /** Loads a model into the real inference worker (a fresh client each time). */
  async load(
    files: Record<string, Blob | ArrayBuffer>,
    layout: ModelLayout,
    backend: BackendPreference,
    weightsReading?: 'on-demand' | 'whole-file',
  ): Promise<LoadOutcome> {
    client?.dispose();
    client = new InferenceClient({ heartbeatTimeoutMs: 600_000 });
    const t0 = performance.now();
    let sessionMs = -1;
    const ready = await client.load(
      {
        source: { kind: 'files', files },
        layout,
        backend,
        dtype: 'auto',
        modelName: 'bench',
        ...(weightsReading ? { weightsReading } : {}),
      },
      (p) => {
        if (p.phase === 'warmup' && sessionMs < 0) sessionMs = performance.now() - t0;
      },
    );
    return { ready, sessionMs, totalMs: performance.now() - t0 };
  },

  async generate(prompt: string, maxTokens: number): Promise<CompleteMessage> {
    if (!client) throw new Error('load a model first');
    return client.generate({ kind: 'prompt', prompt }, { max_tokens: maxTokens, temperature: 0 })
      .result;
  },

  /** Unloads and drops the client (and with it the source files it kept for reload()). */
  async unload(): Promise<void> {
    await client?.unload();
    client?.dispose();
    client = null;
  },

  async memory(): Promise<MemoryReport> {
    const perf = performance as Performance & {
      measureUserAgentSpecificMemory?: () => Promise<{ bytes: number }>;
      memory?: { usedJSHeapSize: number };
    };
    let uaBytes: number | null = null;
    let uaError: string | null = null;
    if (perf.measureUserAgentSpecificMemory) {
      try {
        uaBytes = (await perf.measureUserAgentSpecificMemory()).bytes;
      } catch (e) {
        uaError = String(e);
      }
    } else uaError = 'performance.measureUserAgentSpecificMemory is not available';
    return { uaBytes, uaError, pageHeapBytes: perf.memory?.usedJSHeapSize ?? null };
  },

  /**
   * Builds the engine for (layout, backend) in a worker of its own and returns, per run, the
   * logits before each forced step as base64 float32 (steps x vocab).
   */
  async forcedLogits(
    layout: ModelLayout,
    backend: Backend,
    files: Record<string, Blob>,
    runs: ForcedRun[],
  ): Promise<{ dtype: string; threads: number; adapter: unknown; logits: string[] }> {
    logitsWorker ??= new Worker(new URL('./logits-worker.ts', import.meta.url), {
      type: 'module',
      name: 'logits-check',
    });
    const w = logitsWorker;
    const id = nextId++;
    const reply = await new Promise<LogitsReply>((resolve, reject) => {
      w.onmessage = (ev: MessageEvent<LogitsReply>) => {
        if (ev.data.id === id) resolve(ev.data);
      };
      w.onerror = (ev) => reject(new Error(`logits worker: ${ev.message}`));
      const req: LogitsRequest = { id, layout, backend, files, runs };
      w.postMessage(req);
    });
    if (reply.error) throw new Error(reply.error);
    return {
      dtype: reply.dtype!,
      threads: reply.threads!,
      adapter: reply.adapter ?? null,
      logits: reply.logits!.map(toBase64),
    };
  },
};

export type InferenceHarness = typeof harness;
(globalThis as { __harness?: InferenceHarness }).__harness = harness;
