import type { AnyDB } from './db.ts';

/**
 * Chunked blob storage. Big files (artifacts, model weights) are split into chunks kept in
 * `blobChunks` under [fileId, index]; `blobFiles` holds one small record per file. Records that
 * list runs or models only hold a file id, never the bytes.
 *
 * Measured in Chromium (2 GiB in a worker): 64 MiB Blob chunks, 8 per transaction, write at
 * 420-470 MB/s; 4 MiB chunks manage ~175 MB/s. Hence 64 MiB chunks. Four per transaction, not
 * eight: Chromium 156 refuses transactions of Blobs (`DataError: Failed to write blobs
 * (InvalidBlob)`) when a fast writer in the page creates Blob data faster than it can move it out
 * of memory. Writing 3 GiB from the page, 8 per transaction met 4 refusals and a 2.6 GiB peak,
 * 4 per transaction 2 refusals and a 1.6 GiB peak, at the same speed; the refused chunks are
 * written again below (docs/PERFORMANCE.md, "Reading weights back in the session that wrote them").
 */
export const DEFAULT_CHUNK_SIZE = 64 * 1024 * 1024;
const CHUNKS_PER_TX = 4;
/** Refusals (`InvalidBlob`) one batch of chunks tolerates; the next one fails the write. */
const INVALID_BLOB_REFUSALS = 5;
/** Wait before writing refused chunks again (times the refusals so far): Chromium frees the refused Blobs meanwhile. */
const RETRY_PAUSE_MS = 250;
const pause = (ms: number) => new Promise<void>((ok) => setTimeout(ok, ms));

export interface BlobFileRecord {
  id: string;
  size: number;
  type: string;
  chunkSize: number;
  chunkCount: number;
  /** false while a write is under way or after it was interrupted (resumable or collectable). */
  complete: boolean;
  createdAt: number;
}

export class StorageQuotaError extends Error {
  override name = 'StorageQuotaError';
  constructor(
    readonly neededBytes: number,
    cause?: unknown,
  ) {
    super(
      `The browser refused to store more data (quota exceeded). About ${formatBytes(neededBytes)} more space is needed; free space in Settings → Storage or delete model weights.`,
      { cause },
    );
  }
}

export function formatBytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

const inBrowser =
  typeof window !== 'undefined' ||
  (typeof self !== 'undefined' &&
    typeof (self as { importScripts?: unknown }).importScripts === 'function') ||
  (typeof navigator !== 'undefined' && /Chrome|Firefox|Safari/.test(navigator.userAgent ?? ''));

function toStored(bytes: Uint8Array): Blob | Uint8Array {
  // Chromium stores Blob values fastest and keeps them out of the JS heap; Node's
  // fake-indexeddb cannot structured-clone Blobs, so plain bytes are kept there.
  return inBrowser ? new Blob([bytes as BlobPart]) : bytes;
}

async function fromStored(v: unknown): Promise<Uint8Array> {
  if (v instanceof Uint8Array) return v;
  if (v instanceof Blob) return new Uint8Array(await v.arrayBuffer());
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  throw new Error('Corrupt blob chunk: unexpected stored value');
}

/**
 * Thrown when the browser accepted a file's chunks but cannot read them back: Chromium keeps
 * Blob data in memory (about 2 GiB here) in a private window (no disk), and Blob values past
 * that limit are lost while the write itself succeeds.
 */
export class StoredDataUnreadableError extends Error {
  override name = 'StoredDataUnreadableError';
  constructor(
    readonly fileId: string,
    readonly chunkIndex: number,
    cause: unknown,
  ) {
    super(
      `The browser stored the file but cannot read it back (chunk ${chunkIndex}: ${cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause)}). ` +
        'A private window keeps stored data in memory, about 2 GB at most: use a normal window for large models.',
      { cause },
    );
  }
}

/**
 * Reads the last chunk of a file just written, whole, and throws StoredDataUnreadableError if
 * the browser cannot. Past Chromium's in-memory Blob limit in a private window every later chunk
 * is unreadable while the write reported success (measured: 3 GiB in an off-the-record context,
 * the chunks past 2 GiB); the last chunk is one of them, so the write fails at once instead of
 * the model load later. A 1-byte read of each chunk right after its transaction did not notice.
 * Files smaller than one chunk are not checked (an extra read per small artifact would slow
 * imports of thousands of files, and the limit is reached by large files). Costs one chunk read
 * (~0.1 s) per large file. Exported for writers that store chunks themselves (downloads).
 */
export async function checkLastChunkReadable(db: AnyDB, rec: BlobFileRecord): Promise<void> {
  if (rec.chunkCount === 0 || rec.size < rec.chunkSize) return;
  const index = rec.chunkCount - 1;
  const v = (await db.get('blobChunks', [rec.id, index])) as unknown;
  if (!(v instanceof Blob)) return;
  try {
    await v.arrayBuffer();
  } catch (e) {
    throw new StoredDataUnreadableError(rec.id, index, e);
  }
}

function isInvalidBlobError(e: unknown): boolean {
  return e instanceof Error && e.name === 'DataError' && /InvalidBlob|write blobs/i.test(e.message);
}

function isQuotaError(e: unknown): boolean {
  return e instanceof Error && (e.name === 'QuotaExceededError' || /quota/i.test(e.message));
}

/** Re-chunks any byte stream into fixed-size pieces. */
async function* rechunk(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  size: number,
): AsyncGenerator<Uint8Array> {
  let buf = new Uint8Array(size);
  let fill = 0;
  for await (const piece of source) {
    let off = 0;
    while (off < piece.length) {
      const n = Math.min(size - fill, piece.length - off);
      buf.set(piece.subarray(off, off + n), fill);
      fill += n;
      off += n;
      if (fill === size) {
        yield buf;
        buf = new Uint8Array(size);
        fill = 0;
      }
    }
  }
  if (fill > 0) yield buf.subarray(0, fill);
}

export function blobSource(blob: Blob, piece = 8 * 1024 * 1024): AsyncIterable<Uint8Array> {
  return {
    async *[Symbol.asyncIterator]() {
      for (let off = 0; off < blob.size; off += piece) {
        yield new Uint8Array(await blob.slice(off, off + piece).arrayBuffer());
      }
    },
  };
}

export interface WriteBlobOptions {
  type?: string;
  chunkSize?: number;
  onProgress?: (bytesWritten: number) => void;
  signal?: AbortSignal;
  /** Size if known up front: used only for the quota message. */
  expectedSize?: number;
  /**
   * Chunks held before they are written in one transaction (default 4; see CHUNKS_PER_TX). A stream
   * from the network passes 1 so that at most one chunk is in memory while it is stored.
   */
  chunksPerTransaction?: number;
  /** Called when Chromium refused a transaction (`InvalidBlob`) and its chunks are written again. */
  onRetry?: (error: unknown, refusals: number) => void;
  /** Pause before the first retry of refused chunks, in ms (default 250; grows with each refusal). */
  retryPauseMs?: number;
}

/**
 * Writes a file as chunks. All-or-nothing: on any failure the chunks written so far are deleted
 * and the error is rethrown (a quota failure as StorageQuotaError).
 */
export async function writeBlob(
  db: AnyDB,
  id: string,
  source: Blob | Uint8Array | AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  opts: WriteBlobOptions = {},
): Promise<BlobFileRecord> {
  const chunkSize = opts.chunkSize ?? DEFAULT_CHUNK_SIZE;
  const it: AsyncIterable<Uint8Array> | Iterable<Uint8Array> =
    source instanceof Blob ? blobSource(source) : source instanceof Uint8Array ? [source] : source;
  const record: BlobFileRecord = {
    id,
    size: 0,
    type: opts.type ?? (source instanceof Blob ? source.type : '') ?? '',
    chunkSize,
    chunkCount: 0,
    complete: false,
    createdAt: Date.now(),
  };
  await db.put('blobFiles', record);
  let pending: Uint8Array[] = [];
  const flush = async () => {
    if (pending.length === 0) return;
    try {
      await writeBatch(pending);
    } catch (e) {
      // Chromium sometimes refuses a transaction's Blobs (`InvalidBlob`: on the first large
      // write of a profile, and every time 8 x 64 MiB were put at once from the page). Nothing
      // of it committed; the same bytes go through in smaller transactions, so they are written
      // again one chunk per transaction (five refusals in all are tolerated, with a growing pause before each retry).
      if (!isInvalidBlobError(e)) throw e;
      let refusals = 1;
      opts.onRetry?.(e, refusals);
      await pause(opts.retryPauseMs ?? RETRY_PAUSE_MS);
      for (const c of pending) {
        for (;;) {
          try {
            await writeBatch([c]);
            break;
          } catch (again) {
            if (++refusals > INVALID_BLOB_REFUSALS || !isInvalidBlobError(again)) throw again;
            opts.onRetry?.(again, refusals);
            await pause((opts.retryPauseMs ?? RETRY_PAUSE_MS) * refusals);
          }
        }
      }
    }
    pending = [];
    opts.onProgress?.(record.size);
  };
  const writeBatch = async (batch: Uint8Array[]) => {
    const tx = db.transaction('blobChunks', 'readwrite');
    const store = tx.objectStore('blobChunks');
    // Every request's promise is awaited with the transaction: when one fails (quota) the
    // transaction aborts and all of them reject; left unawaited they would surface as unhandled
    // rejections. The chunk count only advances once the transaction committed.
    const requests: Promise<unknown>[] = [];
    let count = record.chunkCount;
    let size = record.size;
    let thrown: { error: unknown } | null = null;
    try {
      for (const c of batch) {
        requests.push(store.put(toStored(c), [id, count]));
        count++;
        size += c.length;
      }
    } catch (e) {
      // A put that throws at once (quota, clone error): nothing of this batch may commit.
      thrown = { error: e };
      try {
        tx.abort();
      } catch {
        // already finished or aborting
      }
    }
    const settled = await Promise.allSettled([...requests, tx.done]);
    const failures = settled
      .filter((r): r is PromiseRejectedResult => r.status === 'rejected')
      .map((r) => r.reason as unknown);
    // The request that failed carries the cause; the others only say they were aborted.
    const cause = failures.find(
      (e) => !(e instanceof Error && /^(AbortError|TransactionInactiveError)$/.test(e.name)),
    );
    if (cause !== undefined) throw cause;
    if (thrown) throw thrown.error;
    if (failures.length > 0) throw failures[0];
    record.chunkCount = count;
    record.size = size;
  };
  try {
    for await (const chunk of rechunk(it, chunkSize)) {
      opts.signal?.throwIfAborted();
      // rechunk reuses no buffers, but the last piece is a view: copy to own its bytes.
      pending.push(chunk.byteLength === chunk.buffer.byteLength ? chunk : chunk.slice());
      if (pending.length >= (opts.chunksPerTransaction ?? CHUNKS_PER_TX)) await flush();
    }
    await flush();
    await checkLastChunkReadable(db, record);
    record.complete = true;
    await db.put('blobFiles', record);
    return { ...record };
  } catch (e) {
    await deleteBlob(db, id).catch(() => undefined);
    if (isQuotaError(e)) throw new StorageQuotaError(opts.expectedSize ?? record.size, e);
    throw e;
  }
}

export async function getBlobRecord(db: AnyDB, id: string): Promise<BlobFileRecord | undefined> {
  return (await db.get('blobFiles', id)) as BlobFileRecord | undefined;
}

/** Streams a stored file chunk by chunk (bounded memory). */
export async function* readBlobChunks(db: AnyDB, id: string): AsyncGenerator<Uint8Array> {
  const rec = await getBlobRecord(db, id);
  if (!rec) throw new Error(`No stored file with id ${id}`);
  if (!rec.complete) throw new Error(`Stored file ${id} is incomplete (an interrupted write)`);
  for (let i = 0; i < rec.chunkCount; i++) {
    const v = await db.get('blobChunks', [id, i]);
    if (v === undefined) throw new Error(`Stored file ${id} is missing chunk ${i}`);
    yield await fromStored(v);
  }
}

/** The whole file as a Blob. In the browser this references the stored chunks without copying. */
export async function readBlob(db: AnyDB, id: string): Promise<Blob> {
  const rec = await getBlobRecord(db, id);
  if (!rec) throw new Error(`No stored file with id ${id}`);
  const parts: BlobPart[] = [];
  for (let i = 0; i < rec.chunkCount; i++) {
    const v = await db.get('blobChunks', [id, i]);
    if (v === undefined) throw new Error(`Stored file ${id} is missing chunk ${i}`);
    parts.push(v instanceof Blob ? v : ((await fromStored(v)) as BlobPart));
  }
  return new Blob(parts, { type: rec.type });
}

/**
 * Bytes [start, end) of a stored file, read from the chunks that hold them (never the whole
 * file): for consumers that want a range without building the whole-file Blob of `readBlob`.
 */
export async function readBlobRange(
  db: AnyDB,
  id: string,
  start: number,
  end: number,
): Promise<Uint8Array> {
  const rec = await getBlobRecord(db, id);
  if (!rec) throw new Error(`No stored file with id ${id}`);
  if (!rec.complete) throw new Error(`Stored file ${id} is incomplete (an interrupted write)`);
  if (
    !Number.isInteger(start) ||
    !Number.isInteger(end) ||
    start < 0 ||
    end > rec.size ||
    end < start
  ) {
    throw new RangeError(
      `Stored file ${id}: range ${start}-${end} is outside its ${rec.size} bytes`,
    );
  }
  const out = new Uint8Array(end - start);
  for (let i = Math.floor(start / rec.chunkSize); i < rec.chunkCount; i++) {
    const chunkStart = i * rec.chunkSize;
    if (chunkStart >= end) break;
    const v = await db.get('blobChunks', [id, i]);
    if (v === undefined) throw new Error(`Stored file ${id} is missing chunk ${i}`);
    const from = Math.max(start, chunkStart) - chunkStart;
    const to = Math.min(end, chunkStart + rec.chunkSize) - chunkStart;
    const piece =
      v instanceof Blob
        ? new Uint8Array(await v.slice(from, to).arrayBuffer())
        : (await fromStored(v)).subarray(from, to);
    if (piece.length !== to - from) {
      throw new Error(`Stored file ${id}: chunk ${i} is shorter than its recorded size`);
    }
    out.set(piece, chunkStart + from - start);
  }
  return out;
}

export async function readBlobBytes(db: AnyDB, id: string): Promise<Uint8Array> {
  return new Uint8Array(await (await readBlob(db, id)).arrayBuffer());
}

export async function deleteBlob(db: AnyDB, id: string): Promise<void> {
  const tx = db.transaction(['blobFiles', 'blobChunks'], 'readwrite');
  await tx
    .objectStore('blobChunks')
    .delete(IDBKeyRange.bound([id, 0], [id, Number.MAX_SAFE_INTEGER]));
  await tx.objectStore('blobFiles').delete(id);
  await tx.done;
}

/** Deletes files no record refers to. Returns the ids removed. */
export async function collectGarbage(db: AnyDB, referenced: Set<string>): Promise<string[]> {
  const ids = (await db.getAllKeys('blobFiles')) as string[];
  const removed: string[] = [];
  for (const id of ids) {
    if (!referenced.has(id)) {
      await deleteBlob(db, id);
      removed.push(id);
    }
  }
  return removed;
}
