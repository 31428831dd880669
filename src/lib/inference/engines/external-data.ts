// External data (the weights of an .onnx graph) handed to onnxruntime-web without holding the
// whole file in JS memory.
//
// onnxruntime-web mounts each external-data file in a JS map (`mountExternalData`); while the
// session is created, its C++ side looks the file up once per initializer and takes
// `file.subarray(offset, offset + length)`, after checking `offset + length <= file.byteLength`,
// then copies those bytes into its wasm heap (wasm EP) or uploads them into a GPU buffer (WebGPU
// EP). It never touches the file in any other way, and its loader passes a Uint8Array through
// untouched. So a Uint8Array stand-in that answers `byteLength` with the file's size and
// `subarray` with a synchronous read of just that range lets onnxruntime pull each tensor from
// disk as it needs it: JS holds one tensor at a time instead of the whole file beside the heap.
//
// The contract is onnxruntime's internals, checked in onnxruntime-web 1.31.0-dev (the asyncify,
// JSEP and plain builds; see tests/unit/inference-external-data.test.ts, which runs the real
// wasm). The stand-in refuses every other use loudly, so a version that reads the file some other
// way fails the load with a message instead of reading zeros.

/** Reads bytes [start, end) of a file synchronously. */
export type SyncRangeReader = (start: number, end: number) => Uint8Array;

export interface LazyFileStats {
  /** Ranges onnxruntime asked for. */
  reads: number;
  bytesRead: number;
  /** The largest single range: the most this file makes JS hold at once. */
  largestRead: number;
  /**
   * The stand-in's own complaint, if it refused a use. onnxruntime swallows exceptions thrown
   * while it reads external data and reports a bare error code, so the reason is kept here.
   */
  misuse?: string;
}

export interface LazyExternalFile {
  /** Give this to onnxruntime as `externalData[i].data`. */
  readonly data: Uint8Array;
  readonly stats: LazyFileStats;
}

export class LazyFileMisuse extends Error {
  override name = 'LazyFileMisuse';
}

/** Properties a Promise resolution or a debugger may probe; answered as a plain object would. */
const HARMLESS = new Set<string | symbol>(['constructor', Symbol.toStringTag]);

/**
 * A stand-in for a whole external-data file of `size` bytes whose ranges are read on demand
 * through `read` (which must return exactly `end - start` bytes).
 */
export function lazyExternalFile(
  name: string,
  size: number,
  read: SyncRangeReader,
): LazyExternalFile {
  const stats: LazyFileStats = { reads: 0, bytesRead: 0, largestRead: 0 };
  const refuse = (message: string): never => {
    stats.misuse ??= message;
    throw new LazyFileMisuse(message);
  };
  const subarray = (begin?: number, end?: number): Uint8Array => {
    const start = begin ?? 0;
    const stop = end ?? size;
    if (!Number.isInteger(start) || !Number.isInteger(stop) || start < 0 || stop > size) {
      refuse(`${name}: range ${start}-${stop} is outside the file (${size} bytes)`);
    }
    let bytes: Uint8Array;
    try {
      bytes = stop > start ? read(start, stop) : new Uint8Array(0);
    } catch (e) {
      const why = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
      stats.misuse ??= `${name}: reading bytes ${start}-${stop} failed (${why})`;
      throw e;
    }
    if (bytes.length !== stop - start) {
      refuse(
        `${name}: reading bytes ${start}-${stop} gave ${bytes.length} bytes, expected ${stop - start}`,
      );
    }
    stats.reads++;
    stats.bytesRead += bytes.length;
    stats.largestRead = Math.max(stats.largestRead, bytes.length);
    return bytes;
  };
  // A Proxy over an empty Uint8Array: `instanceof Uint8Array` holds (onnxruntime's loader checks
  // it and passes the value through), while every byte stays on disk until asked for.
  const data = new Proxy(new Uint8Array(0), {
    get(target, prop) {
      if (prop === 'byteLength' || prop === 'length') return size;
      if (prop === 'subarray') return subarray;
      if (prop === 'then') return undefined;
      if (typeof prop === 'symbol' || HARMLESS.has(prop)) return Reflect.get(target, prop);
      return refuse(
        `${name}: onnxruntime read the external data through .${prop}, which the on-demand loader ` +
          'does not support (an onnxruntime-web version this app was not checked against?)',
      );
    },
  });
  return { data, stats };
}

/** `FileReaderSync` where the platform has it (dedicated workers): a Blob's range, read synchronously. */
export function blobRangeReader(blob: Blob): SyncRangeReader | null {
  const Reader = (globalThis as { FileReaderSync?: new () => FileReaderSync }).FileReaderSync;
  if (!Reader) return null;
  const reader = new Reader();
  return (start, end) => new Uint8Array(reader.readAsArrayBuffer(blob.slice(start, end)));
}

interface FileReaderSync {
  readAsArrayBuffer(blob: Blob): ArrayBuffer;
}

/**
 * After the session exists: throws unless onnxruntime read the file through the stand-in (a
 * non-empty file it never read means it took the weights from somewhere else, or not at all).
 */
export function checkLazyFileUsed(name: string, size: number, stats: LazyFileStats): void {
  if (size > 0 && stats.reads === 0) {
    throw new LazyFileMisuse(
      `${name}: onnxruntime created the session without reading any of its ${size} bytes of external data`,
    );
  }
}
