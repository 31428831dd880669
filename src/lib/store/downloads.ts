import type { AnyDB } from './db.ts';
import {
  checkLastChunkReadable,
  deleteBlob,
  StorageQuotaError,
  type BlobFileRecord,
} from './blobs.ts';

/**
 * Unfinished downloads of model files. A file is written as an ordinary chunked blob (the
 * `blobFiles` / `blobChunks` layout of blobs.ts), but one chunk at a time, each chunk stored in
 * the same transaction as the download record that counts it. So after a crash, a dropped
 * connection or a closed tab, `chunksDone` says exactly which bytes are safely stored, and the
 * download continues from `chunksDone * chunkSize`.
 */

export interface DownloadFileState {
  /** Path in the source repository. */
  remotePath: string;
  /** Path in the model version being built (`model/onnx/model_q4.onnx`). */
  path: string;
  size: number;
  /** Git or LFS object id from the file list, when known. */
  oid?: string;
  blobId: string;
  chunkSize: number;
  /** Chunks stored: always chunks 0..chunksDone-1 of the file. */
  chunksDone: number;
}

/** `downloading` is written when a run starts; a record left so by a closed tab is resumable. */
export type DownloadStatus = 'downloading' | 'paused' | 'interrupted' | 'failed';

export interface DownloadRecord {
  id: string;
  /** Hugging Face model id (`owner/name`). */
  repoId: string;
  /** The revision asked for (`main`). */
  revision: string;
  /** The commit it resolved to: every request of this download uses it. */
  commit: string;
  /** Folder inside the repo ('' or ending in '/'). */
  subfolder: string;
  layout: 'web' | 'genai';
  dtype?: 'q4' | 'q4f16';
  /** Registered model the files become a version of. */
  modelName: string;
  hubUrl: string;
  files: DownloadFileState[];
  totalBytes: number;
  status: DownloadStatus;
  /** Why it stopped (interrupted or failed). */
  error?: string;
  createdAt: number;
  updatedAt: number;
}

export function storedBytes(f: DownloadFileState): number {
  return Math.min(f.size, f.chunksDone * f.chunkSize);
}

export function fileComplete(f: DownloadFileState): boolean {
  return storedBytes(f) >= f.size && (f.size > 0 || f.chunksDone > 0);
}

export function downloadedBytes(rec: DownloadRecord): number {
  return rec.files.reduce((n, f) => n + storedBytes(f), 0);
}

export async function putDownload(db: AnyDB, rec: DownloadRecord): Promise<void> {
  await db.put('downloads', rec);
}

export async function getDownload(db: AnyDB, id: string): Promise<DownloadRecord | undefined> {
  return (await db.get('downloads', id)) as DownloadRecord | undefined;
}

/** Oldest first. */
export async function listDownloads(db: AnyDB): Promise<DownloadRecord[]> {
  return (await db.getAllFromIndex('downloads', 'createdAt')) as DownloadRecord[];
}

/** Changes a download's status (and error) if it still exists. */
export async function setDownloadStatus(
  db: AnyDB,
  id: string,
  status: DownloadStatus,
  error?: string,
): Promise<DownloadRecord | undefined> {
  const tx = db.transaction('downloads', 'readwrite');
  const rec = (await tx.store.get(id)) as DownloadRecord | undefined;
  if (rec) {
    rec.status = status;
    if (error === undefined) delete rec.error;
    else rec.error = error;
    rec.updatedAt = Date.now();
    await tx.store.put(rec);
  }
  await tx.done;
  return rec;
}

/** Deletes the record only: its blobs now belong to a model version. */
export async function forgetDownload(db: AnyDB, id: string): Promise<void> {
  await db.delete('downloads', id);
}

/** Deletes the record and every byte it stored. */
export async function deleteDownload(db: AnyDB, id: string): Promise<void> {
  const rec = await getDownload(db, id);
  await db.delete('downloads', id);
  for (const f of rec?.files ?? []) await deleteBlob(db, f.blobId).catch(() => undefined);
}

/** Blobs held by unfinished downloads: garbage collection must keep them. */
export async function getDownloadBlobIds(db: AnyDB): Promise<Set<string>> {
  const ids = new Set<string>();
  for (const rec of await listDownloads(db)) for (const f of rec.files) ids.add(f.blobId);
  return ids;
}

export class DownloadGoneError extends Error {
  override name = 'DownloadGoneError';
  constructor(id: string) {
    super(`Download ${id} no longer exists (it was cancelled).`);
  }
}

// Same rule as blobs.ts: Chromium keeps Blob values out of the JS heap and reads them lazily;
// fake-indexeddb in Node cannot clone Blobs, so plain bytes are stored there.
const inBrowser =
  typeof window !== 'undefined' ||
  (typeof self !== 'undefined' &&
    typeof (self as { importScripts?: unknown }).importScripts === 'function') ||
  (typeof navigator !== 'undefined' && /Chrome|Firefox|Safari/.test(navigator.userAgent ?? ''));

const isQuotaError = (e: unknown) =>
  e instanceof Error && (e.name === 'QuotaExceededError' || /quota/i.test(e.message));

async function putChunkOnce(
  db: AnyDB,
  id: string,
  fileIndex: number,
  value: Blob | Uint8Array,
  length: number,
): Promise<DownloadRecord> {
  const tx = db.transaction(['downloads', 'blobFiles', 'blobChunks'], 'readwrite');
  const downloads = tx.objectStore('downloads');
  const rec = (await downloads.get(id)) as DownloadRecord | undefined;
  const file = rec?.files[fileIndex];
  if (!rec || !file) {
    tx.abort();
    await tx.done.catch(() => undefined);
    throw new DownloadGoneError(id);
  }
  const index = file.chunksDone;
  const expected = Math.min(file.chunkSize, file.size - index * file.chunkSize);
  if (length !== expected && !(file.size === 0 && length === 0)) {
    tx.abort();
    await tx.done.catch(() => undefined);
    throw new Error(
      `Chunk ${index} of ${file.path} has ${length} bytes where ${expected} were expected`,
    );
  }
  // Failures of these requests surface through tx.done; their own promises are not awaited.
  tx.objectStore('blobChunks').put(value, [file.blobId, index]).catch(ignore);
  file.chunksDone = index + 1;
  const size = storedBytes(file);
  const blobRec: BlobFileRecord = {
    id: file.blobId,
    size,
    type: '',
    chunkSize: file.chunkSize,
    chunkCount: file.chunksDone,
    complete: size >= file.size,
    createdAt: rec.createdAt,
  };
  tx.objectStore('blobFiles').put(blobRec).catch(ignore);
  rec.updatedAt = Date.now();
  downloads.put(rec).catch(ignore);
  await tx.done;
  return rec;
}

const ignore = (): void => undefined;

/** Chromium's InvalidBlob refusals tolerated per chunk before the download fails. */
const MAX_REFUSALS = 5;

/**
 * Stores the next chunk of file `fileIndex` and counts it, atomically. Returns the updated record.
 * Throws DownloadGoneError when the download was cancelled meanwhile (nothing is written),
 * StorageQuotaError when the browser refuses the bytes, and StoredDataUnreadableError when a
 * completed file cannot be read back (the chunks stay, so the download can be resumed or discarded).
 */
export async function storeDownloadChunk(
  db: AnyDB,
  id: string,
  fileIndex: number,
  bytes: Uint8Array,
  opts: { retryPauseMs?: number } = {},
): Promise<DownloadRecord> {
  const pause = opts.retryPauseMs ?? 250;
  let rec: DownloadRecord | undefined;
  for (let refusals = 0; !rec; refusals++) {
    // A fresh Blob per attempt: Chromium refuses some large Blob writes ("DataError: Failed to
    // write blobs (InvalidBlob)", most often while it still holds earlier chunks) and accepts the
    // same bytes after a pause (see writeBlob in blobs.ts).
    const value = inBrowser ? new Blob([bytes as BlobPart]) : bytes;
    try {
      rec = await putChunkOnce(db, id, fileIndex, value, bytes.length);
    } catch (e) {
      if (e instanceof Error && e.name === 'DataError' && refusals < MAX_REFUSALS) {
        await new Promise((r) => setTimeout(r, pause * (refusals + 1)));
        continue;
      }
      if (isQuotaError(e)) {
        const now = await getDownload(db, id);
        const left = now ? now.totalBytes - downloadedBytes(now) : bytes.length;
        throw new StorageQuotaError(left, e);
      }
      throw e;
    }
  }
  const file = rec.files[fileIndex]!;
  if (storedBytes(file) >= file.size) {
    // The file is complete: make sure the browser can read what it kept (a private window loses
    // data past about 2 GB while reporting success). The partial download stays resumable.
    await checkLastChunkReadable(db, {
      id: file.blobId,
      size: file.size,
      type: '',
      chunkSize: file.chunkSize,
      chunkCount: file.chunksDone,
      complete: true,
      createdAt: rec.createdAt,
    });
  }
  return rec;
}
