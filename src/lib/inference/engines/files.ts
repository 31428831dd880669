import type { ModelSource } from '../protocol.ts';
import { InferenceError } from '../protocol.ts';
import { blobRangeReader, type SyncRangeReader } from './external-data.ts';

export type ByteProgress = (loaded: number, total: number) => void;

/** Read access to one model folder, wherever its files live. Paths are relative to the folder. */
export interface ModelFiles {
  /** A short name for messages (the folder's name). */
  readonly name: string;
  has(path: string): Promise<boolean>;
  bytes(path: string, onProgress?: ByteProgress): Promise<Uint8Array>;
  text(path: string): Promise<string>;
  /** The file as an HTTP response (what transformers.js reads); undefined when absent. */
  response(path: string): Promise<Response | undefined>;
  /** A path on a local disk (Node), so that onnxruntime-node opens the file and its external data itself. */
  localPath?(path: string): string;
  /**
   * Synchronous reads of any byte range of the file, where the file stays on disk (IndexedDB
   * Blobs in a worker, via FileReaderSync): lets onnxruntime pull weights tensor by tensor.
   * Undefined when the file is not held that way (then read it whole with `bytes`).
   */
  rangeReader?(path: string): Promise<{ size: number; read: SyncRangeReader } | undefined>;
}

export function normalizePath(path: string): string {
  const parts = path
    .replace(/\\/g, '/')
    .split('/')
    .filter((p) => p !== '' && p !== '.');
  if (parts.some((p) => p === '..')) {
    throw new InferenceError('bad-request', `Model file path leaves the model folder: ${path}`);
  }
  return parts.join('/');
}

// Big files are read in slices so progress can be reported and no second full-size copy is made.
const SLICE = 64 * 1024 * 1024;

/**
 * Copies a stream of pieces into one buffer of `total` bytes, pulling the next piece only after
 * the previous one was copied: besides the result, at most one piece is alive at a time.
 */
export async function assembleChunks(
  total: number,
  pieces: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  onProgress?: ByteProgress,
  what = 'file',
): Promise<Uint8Array> {
  const out = new Uint8Array(total);
  let off = 0;
  for await (const piece of pieces) {
    if (off + piece.length > total) {
      throw new InferenceError('load-failed', `${what}: longer than its recorded size ${total}`);
    }
    out.set(piece, off);
    off += piece.length;
    onProgress?.(off, total);
  }
  if (off !== total) {
    throw new InferenceError('load-failed', `${what}: ${off} bytes read, expected ${total}`);
  }
  if (total === 0) onProgress?.(0, 0);
  return out;
}

async function* blobSlices(blob: Blob): AsyncGenerator<Uint8Array> {
  for (let off = 0; off < blob.size; off += SLICE) {
    yield new Uint8Array(await blob.slice(off, off + SLICE).arrayBuffer());
  }
}

function readBlob(blob: Blob, onProgress?: ByteProgress, what?: string): Promise<Uint8Array> {
  return assembleChunks(blob.size, blobSlices(blob), onProgress, what);
}

/** Files handed over in memory: Blobs (IndexedDB-backed ones stay on disk until read) or ArrayBuffers. */
export function filesFromMap(name: string, files: Record<string, Blob | ArrayBuffer>): ModelFiles {
  const map = new Map<string, Blob | ArrayBuffer>();
  for (const [k, v] of Object.entries(files)) map.set(normalizePath(k), v);
  const get = (path: string) => {
    const v = map.get(normalizePath(path));
    if (v === undefined) throw new InferenceError('load-failed', `The model has no file ${path}`);
    return v;
  };
  return {
    name,
    has: async (path) => map.has(normalizePath(path)),
    bytes: async (path, onProgress) => {
      const v = get(path);
      if (v instanceof ArrayBuffer) {
        onProgress?.(v.byteLength, v.byteLength);
        return new Uint8Array(v);
      }
      return readBlob(v, onProgress, path);
    },
    text: async (path) => {
      const v = get(path);
      return v instanceof ArrayBuffer ? new TextDecoder().decode(v) : v.text();
    },
    response: async (path) => {
      const v = map.get(normalizePath(path));
      if (v === undefined) return undefined;
      const size = v instanceof ArrayBuffer ? v.byteLength : v.size;
      return new Response(v, { headers: { 'content-length': String(size) } });
    },
    rangeReader: async (path) => {
      const v = get(path);
      if (!(v instanceof Blob)) return undefined;
      const read = blobRangeReader(v);
      return read ? { size: v.size, read } : undefined;
    },
  };
}

/** A folder served over HTTP(S). */
export function filesFromUrl(baseUrl: string): ModelFiles {
  const base = baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`;
  const url = (path: string) => new URL(normalizePath(path), base).href;
  const name = base.split('/').filter(Boolean).pop() ?? 'model';
  const fetchOk = async (path: string) => {
    const r = await fetch(url(path));
    if (!r.ok) throw new InferenceError('load-failed', `${url(path)}: HTTP ${r.status}`);
    return r;
  };
  return {
    name,
    has: async (path) => {
      const r = await fetch(url(path), { method: 'HEAD' });
      return r.ok;
    },
    bytes: async (path, onProgress) => {
      const r = await fetchOk(path);
      const total = Number(r.headers.get('content-length') ?? 0);
      if (!r.body || !total) {
        const b = new Uint8Array(await r.arrayBuffer());
        onProgress?.(b.length, b.length);
        return b;
      }
      const out = new Uint8Array(total);
      const reader = r.body.getReader();
      let off = 0;
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (off + value.length > total) {
          throw new InferenceError('load-failed', `${url(path)}: longer than its Content-Length`);
        }
        out.set(value, off);
        off += value.length;
        onProgress?.(off, total);
      }
      return off === total ? out : out.subarray(0, off);
    },
    text: async (path) => (await fetchOk(path)).text(),
    response: async (path) => {
      const r = await fetch(url(path));
      return r.ok ? r : undefined;
    },
  };
}

export function filesFromSource(source: ModelSource, name?: string): ModelFiles {
  if (source.kind === 'files') return filesFromMap(name ?? 'model', source.files);
  return filesFromUrl(source.baseUrl);
}

export async function readJson(files: ModelFiles, path: string): Promise<Record<string, unknown>> {
  const text = await files.text(path);
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new InferenceError('load-failed', `${path}: not valid JSON (${(e as Error).message})`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) {
    throw new InferenceError('load-failed', `${path}: expected a JSON object`);
  }
  return v as Record<string, unknown>;
}
