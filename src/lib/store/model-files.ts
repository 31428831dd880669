import type { AnyDB } from './db.ts';
import { deleteBlob, readBlob, readBlobChunks, writeBlob } from './blobs.ts';

/**
 * The file tree of a model version: path -> blob id and size. Each blob holds the bytes as they
 * were imported, so a file the app did not change exports byte-identical. A file the app does
 * change gets a new blob and `modified: true`.
 */
export interface ModelFileRecord {
  versionId: string;
  /** Model-relative, '/'-separated (`MLmodel`, `artifacts/phi3/genai_config.json`). */
  path: string;
  blobId: string;
  size: number;
  /** CRC-32 of the bytes when known (from the zip it came in). */
  crc32?: number;
  /** true once the app rewrote the file (then it is no longer the imported bytes). */
  modified?: boolean;
}

export function newModelBlobId(): string {
  return `model-${crypto.randomUUID()}`;
}

export async function listModelFiles(db: AnyDB, versionId: string): Promise<ModelFileRecord[]> {
  const recs = (await db.getAllFromIndex(
    'modelFiles',
    'versionId',
    versionId,
  )) as ModelFileRecord[];
  return recs.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

export async function getModelFile(
  db: AnyDB,
  versionId: string,
  path: string,
): Promise<ModelFileRecord | undefined> {
  return (await db.get('modelFiles', [versionId, path])) as ModelFileRecord | undefined;
}

export async function readModelFile(db: AnyDB, versionId: string, path: string): Promise<Blob> {
  const rec = await getModelFile(db, versionId, path);
  if (!rec) throw new Error(`Model version file '${path}' not found`);
  return readBlob(db, rec.blobId);
}

export async function readModelFileText(
  db: AnyDB,
  versionId: string,
  path: string,
): Promise<string> {
  return (await readModelFile(db, versionId, path)).text();
}

export function readModelFileChunks(db: AnyDB, rec: ModelFileRecord): AsyncGenerator<Uint8Array> {
  return readBlobChunks(db, rec.blobId);
}

/** Replaces one file's bytes (an edit by the app); the old blob is deleted. */
export async function replaceModelFile(
  db: AnyDB,
  versionId: string,
  path: string,
  bytes: Uint8Array,
): Promise<ModelFileRecord> {
  const old = await getModelFile(db, versionId, path);
  const blobId = newModelBlobId();
  await writeBlob(db, blobId, bytes);
  const rec: ModelFileRecord = { versionId, path, blobId, size: bytes.length, modified: true };
  await db.put('modelFiles', rec);
  if (old) await deleteBlob(db, old.blobId);
  return rec;
}

/** Every blob a model version refers to: for garbage collection together with other stores. */
export async function getModelFileBlobIds(db: AnyDB): Promise<Set<string>> {
  const recs = (await db.getAll('modelFiles')) as ModelFileRecord[];
  return new Set(recs.map((r) => r.blobId));
}

/** Deletes blobs (best effort): used after the records pointing at them are gone. */
export async function deleteBlobs(db: AnyDB, blobIds: Iterable<string>): Promise<void> {
  for (const id of blobIds) await deleteBlob(db, id).catch(() => undefined);
}
