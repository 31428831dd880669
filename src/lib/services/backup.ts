/**
 * "Export everything" and "Import everything": the whole store (experiments, runs, metrics,
 * artifacts, registry, conversations, evaluation projects, unfinished downloads and, optionally,
 * model weights) as one zip, and back.
 *
 * Layout of the archive:
 *   tabflow-backup.json          manifest: format, schema version, stores and record counts
 *   stores/<store>.jsonl         one JSON line per record (store/backup.ts encodes typed arrays...)
 *   chunks/<file id>/<index>     the stored files' chunks, byte for byte
 *
 * Import replaces what is stored, all or nothing for the records: everything is read and checked
 * first, the file chunks are written next (a failure deletes them again), and then one
 * transaction clears every store and writes the backup's records. Files only the old data used
 * are deleted afterwards. A backup made with an older database schema is brought forward first
 * (store/backup.ts, upgradeBackup): stores added since come out empty. One made by a newer app
 * is refused.
 */
import { DB_VERSION, type AnyDB } from '../store/db.ts';
import { StorageQuotaError, deleteBlob, type BlobFileRecord } from '../store/blobs.ts';
import {
  BackupFormatError,
  describeStores,
  lineToRecord,
  readStore,
  recordToLine,
  upgradeBackup,
  type StoreInfo,
  type StoredRecord,
} from '../store/backup.ts';
import { ensureSpaceFor, type EstimateFn } from '../store/quota.ts';
import {
  ArchiveError,
  openZip,
  readEntryText,
  zipToBlob,
  type ArchiveEntry,
  type ZipWriteEntry,
} from '../archive/index.ts';
import type { ModelFileRecord } from '../store/model-files.ts';
import type { ModelVersionRecord } from '../store/registry.ts';
import { isWeightFile, WEIGHTS_REMOVED_TAG } from './storage-usage.ts';
import { emitStoreChange } from './events.ts';

export { BackupFormatError };

export const BACKUP_FORMAT = 'tabflow.backup/1';
export const BACKUP_MANIFEST = 'tabflow-backup.json';

export interface BackupManifest {
  format: typeof BACKUP_FORMAT;
  /** Schema version (number of migrations) of the database it was made from. */
  dbVersion: number;
  createdAt: string;
  includesWeights: boolean;
  stores: StoreInfo[];
  /** Files left out (model weights when includesWeights is false). */
  omittedFiles: string[];
  /** Bytes of all chunks in the archive. */
  chunkBytes: number;
}

export interface BackupProgress {
  phase: 'records' | 'files' | 'checking' | 'writing files' | 'writing records' | 'cleaning up';
  /** Bytes or records done in this phase, and the total when known. */
  done: number;
  total: number;
}

export interface ExportEverythingOptions {
  includeWeights?: boolean;
  onProgress?: (p: BackupProgress) => void;
}

const CHUNK_STORE = 'blobChunks';
const enc = new TextEncoder();

const inBrowser =
  typeof window !== 'undefined' ||
  (typeof self !== 'undefined' &&
    typeof (self as { importScripts?: unknown }).importScripts === 'function');

function chunkPath(fileId: string, index: number): string {
  return `chunks/${encodeURIComponent(fileId)}/${index}`;
}

async function chunkSize(v: unknown): Promise<number> {
  if (v instanceof Uint8Array) return v.length;
  if (typeof Blob !== 'undefined' && v instanceof Blob) return v.size;
  if (v instanceof ArrayBuffer) return v.byteLength;
  throw new Error('Corrupt stored chunk: unexpected value');
}

/** Model files that are weights (left out unless weights are included). */
async function weightFileIds(db: AnyDB): Promise<Set<string>> {
  const files = (await db.getAll('modelFiles')) as ModelFileRecord[];
  return new Set(files.filter((f) => isWeightFile(f.path, f.size)).map((f) => f.blobId));
}

/** The whole store as one zip (a Blob; in browsers its parts stay out of the JS heap). */
export async function exportEverything(
  db: AnyDB,
  opts: ExportEverythingOptions = {},
): Promise<Blob> {
  const includeWeights = opts.includeWeights ?? false;
  const stores = (await describeStores(db)).filter((s) => s.name !== CHUNK_STORE);
  const omitted = includeWeights ? new Set<string>() : await weightFileIds(db);
  const blobs = ((await db.getAll('blobFiles')) as BlobFileRecord[]).filter(
    (b) => !omitted.has(b.id),
  );
  const chunkKeys: [string, number][] = [];
  let chunkBytes = 0;
  for (const b of blobs) {
    const keys = (await db.getAllKeys(
      CHUNK_STORE,
      IDBKeyRange.bound([b.id, 0], [b.id, Number.MAX_SAFE_INTEGER]),
    )) as unknown as [string, number][];
    chunkKeys.push(...keys);
    chunkBytes += b.complete ? b.size : 0;
  }
  const manifest: BackupManifest = {
    format: BACKUP_FORMAT,
    dbVersion: DB_VERSION,
    createdAt: new Date().toISOString(),
    includesWeights: includeWeights,
    // The blobFiles count is of the records written (omitted files are left out).
    stores: stores.map((s) => (s.name === 'blobFiles' ? { ...s, count: blobs.length } : s)),
    omittedFiles: [...omitted].sort(),
    chunkBytes,
  };
  const totalRecords = stores.reduce((n, s) => n + s.count, 0);
  let recordsDone = 0;
  let bytesDone = 0;

  async function* storeLines(name: string): AsyncGenerator<Uint8Array> {
    for await (const page of readStore(db, name)) {
      let text = '';
      for (const r of page) {
        if (name === 'blobFiles' && omitted.has((r.value as BlobFileRecord).id)) continue;
        text += recordToLine(r);
      }
      recordsDone += page.length;
      opts.onProgress?.({ phase: 'records', done: recordsDone, total: totalRecords });
      if (text) yield enc.encode(text);
    }
  }

  async function* entries(): AsyncGenerator<ZipWriteEntry> {
    yield { path: BACKUP_MANIFEST, data: enc.encode(JSON.stringify(manifest, null, 2) + '\n') };
    for (const s of stores) {
      yield { path: `stores/${s.name}.jsonl`, data: storeLines(s.name), compress: true };
    }
    for (const key of chunkKeys) {
      const v = await db.get(CHUNK_STORE, key);
      if (v === undefined) continue;
      const size = await chunkSize(v);
      yield {
        path: chunkPath(key[0], key[1]),
        data: v as Uint8Array | Blob,
        size,
        compress: false,
      };
      bytesDone += size;
      opts.onProgress?.({ phase: 'files', done: bytesDone, total: chunkBytes });
    }
  }
  return zipToBlob(entries());
}

// ---------------------------------------------------------------- import

export interface ImportEverythingOptions {
  onProgress?: (p: BackupProgress) => void;
  /** Storage estimate (tests); navigator.storage.estimate() by default. */
  estimate?: EstimateFn;
}

export interface ImportEverythingResult {
  manifest: BackupManifest;
  /** Records written per store. */
  records: Record<string, number>;
  files: number;
  bytes: number;
}

async function* lines(entry: ArchiveEntry): AsyncGenerator<string> {
  const dec = new TextDecoder('utf-8', { fatal: true });
  let rest = '';
  for await (const piece of entry.open()) {
    rest += dec.decode(piece, { stream: true });
    let nl: number;
    while ((nl = rest.indexOf('\n')) >= 0) {
      yield rest.slice(0, nl);
      rest = rest.slice(nl + 1);
    }
  }
  rest += dec.decode();
  if (rest) yield rest;
}

async function entryBytes(entry: ArchiveEntry): Promise<Uint8Array> {
  const out = new Uint8Array(entry.size);
  let o = 0;
  for await (const c of entry.open()) {
    if (o + c.length > out.length) throw new BackupFormatError('longer than declared', entry.path);
    out.set(c, o);
    o += c.length;
  }
  return out;
}

function parseManifest(text: string): BackupManifest {
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch (e) {
    throw new BackupFormatError(`not valid JSON (${(e as Error).message})`, BACKUP_MANIFEST);
  }
  const o = m as Partial<BackupManifest> | null;
  if (!o || o.format !== BACKUP_FORMAT) {
    throw new BackupFormatError(
      `expected "format": "${BACKUP_FORMAT}" (this is not a Tabflow backup, or a newer one)`,
      BACKUP_MANIFEST,
    );
  }
  if (typeof o.dbVersion !== 'number' || !Array.isArray(o.stores)) {
    throw new BackupFormatError('expected "dbVersion" and "stores"', BACKUP_MANIFEST);
  }
  return o as BackupManifest;
}

/**
 * Replaces the whole store with a backup made by exportEverything. Throws BackupFormatError
 * (naming the entry and line), ArchiveError (a damaged or hostile zip), InsufficientStorageError
 * (refused before writing) or StorageQuotaError (the browser ran out mid-way; nothing changed).
 */
export async function importEverything(
  db: AnyDB,
  file: Blob,
  opts: ImportEverythingOptions = {},
): Promise<ImportEverythingResult> {
  const zip = await openZip(file, {
    fileName: 'backup',
    limits: {
      maxEntries: 2_000_000,
      maxTotalSize: 2 ** 50,
      maxEntrySize: 2 ** 40,
      maxRatio: 10_000,
    },
  });
  const byPath = new Map(zip.entries.map((e) => [e.path, e]));
  const manifestEntry = byPath.get(BACKUP_MANIFEST);
  if (!manifestEntry) {
    throw new BackupFormatError(`no ${BACKUP_MANIFEST}: this is not a Tabflow backup`);
  }
  const manifest = parseManifest(await readEntryText(manifestEntry));
  // A backup from an older schema is brought forward once its records are read (below); one
  // from a newer app cannot be: this app does not know what the newer steps changed.
  if (
    !Number.isInteger(manifest.dbVersion) ||
    manifest.dbVersion < 1 ||
    manifest.dbVersion > DB_VERSION
  ) {
    throw new BackupFormatError(
      `the backup was made with database schema ${manifest.dbVersion}, this app uses ${DB_VERSION}; ` +
        (manifest.dbVersion > DB_VERSION
          ? 'open it with the newer app that made it.'
          : 'this is not a schema any version of the app wrote.'),
      BACKUP_MANIFEST,
    );
  }
  const present = new Set(Array.from(db.objectStoreNames));
  for (const s of manifest.stores) {
    if (!present.has(s.name) || s.name === CHUNK_STORE) {
      throw new BackupFormatError(`unknown object store '${s.name}'`, BACKUP_MANIFEST);
    }
  }

  // 1. Read and check every record before anything is written.
  const records = new Map<string, StoredRecord[]>();
  const tx0 = db.transaction(manifest.stores.map((s) => s.name));
  const inlineKeys = new Map(
    manifest.stores.map((s) => [s.name, tx0.objectStore(s.name).keyPath !== null] as const),
  );
  await tx0.done;
  let checked = 0;
  const totalRecords = manifest.stores.reduce((n, s) => n + s.count, 0);
  for (const s of manifest.stores) {
    const path = `stores/${s.name}.jsonl`;
    const entry = byPath.get(path);
    const list: StoredRecord[] = [];
    if (entry) {
      let n = 0;
      for await (const line of lines(entry)) {
        n++;
        if (line.trim() === '') continue;
        list.push(lineToRecord(line, path, n, !inlineKeys.get(s.name)));
        if (++checked % 2000 === 0)
          opts.onProgress?.({ phase: 'checking', done: checked, total: totalRecords });
      }
    }
    if (list.length !== s.count) {
      throw new BackupFormatError(
        `expected ${s.count} records, found ${list.length} (a damaged backup)`,
        path,
      );
    }
    records.set(s.name, list);
  }
  if (manifest.dbVersion < DB_VERSION) {
    // The stores later schema steps added come out empty, as a migrated database would have them.
    upgradeBackup(manifest.dbVersion, DB_VERSION, manifest.stores, records, BACKUP_MANIFEST);
  }
  const blobRecords = (records.get('blobFiles') ?? []).map((r) => r.value as BlobFileRecord);
  const restoredIds = new Set(blobRecords.map((b) => b.id));

  // Versions whose weights were left out say so, as if deleted in Settings.
  const omitted = new Set(manifest.omittedFiles ?? []);
  if (omitted.size > 0) {
    const versionsMissing = new Set(
      (records.get('modelFiles') ?? [])
        .map((r) => r.value as ModelFileRecord)
        .filter((f) => omitted.has(f.blobId))
        .map((f) => f.versionId),
    );
    const when = manifest.createdAt;
    for (const r of records.get('modelVersions') ?? []) {
      const v = r.value as ModelVersionRecord;
      if (versionsMissing.has(v.id)) v.tags = { ...v.tags, [WEIGHTS_REMOVED_TAG]: when };
    }
  }

  const chunkEntries: { entry: ArchiveEntry; fileId: string; index: number }[] = [];
  for (const e of zip.entries) {
    if (e.isDirectory || !e.path.startsWith('chunks/')) continue;
    const m = /^chunks\/([^/]+)\/(\d+)$/.exec(e.path);
    if (!m) throw new BackupFormatError('unexpected entry name', e.path);
    const fileId = decodeURIComponent(m[1]!);
    if (!restoredIds.has(fileId)) {
      throw new BackupFormatError(
        `a chunk of file '${fileId}', which the backup does not list`,
        e.path,
      );
    }
    chunkEntries.push({ entry: e, fileId, index: Number(m[2]) });
  }
  const chunkBytes = chunkEntries.reduce((n, c) => n + c.entry.size, 0);
  await ensureSpaceFor(chunkBytes + file.size / 10, 'the backup', opts.estimate);

  // 2. File chunks. Ids are never reused for other bytes, so a file already stored complete under
  // the same id holds the same bytes and is kept as it is.
  const existing = new Map(
    ((await db.getAll('blobFiles')) as BlobFileRecord[]).map((b) => [b.id, b] as const),
  );
  const written = new Set<string>();
  let bytesDone = 0;
  try {
    let batch: { key: [string, number]; value: Uint8Array | Blob }[] = [];
    const flush = async () => {
      if (batch.length === 0) return;
      const tx = db.transaction(CHUNK_STORE, 'readwrite');
      for (const c of batch) void tx.store.put(c.value, c.key);
      await tx.done;
      batch = [];
      opts.onProgress?.({ phase: 'writing files', done: bytesDone, total: chunkBytes });
    };
    let batchBytes = 0;
    for (const c of chunkEntries) {
      if (existing.get(c.fileId)?.complete) continue;
      const bytes = await entryBytes(c.entry);
      written.add(c.fileId);
      batch.push({
        key: [c.fileId, c.index],
        value: inBrowser ? new Blob([bytes as BlobPart]) : bytes,
      });
      bytesDone += bytes.length;
      batchBytes += bytes.length;
      if (batch.length >= 8 || batchBytes >= 256 * 2 ** 20) {
        await flush();
        batchBytes = 0;
      }
    }
    await flush();

    // 3. Records: one transaction clears every store and writes the backup's records.
    opts.onProgress?.({ phase: 'writing records', done: 0, total: totalRecords });
    const names = manifest.stores.map((s) => s.name);
    const tx = db.transaction(names, 'readwrite');
    for (const name of names) {
      const store = tx.objectStore(name);
      void store.clear();
      for (const r of records.get(name)!) {
        if (r.key === undefined) void store.put(r.value);
        else void store.put(r.value, r.key);
      }
    }
    await tx.done;
  } catch (e) {
    for (const id of written) {
      await db
        .delete(CHUNK_STORE, IDBKeyRange.bound([id, 0], [id, Number.MAX_SAFE_INTEGER]))
        .catch(() => undefined);
    }
    if (e instanceof Error && (e.name === 'QuotaExceededError' || /quota/i.test(e.message))) {
      throw new StorageQuotaError(chunkBytes, e);
    }
    throw e;
  }

  // 4. Files only the replaced data used.
  opts.onProgress?.({ phase: 'cleaning up', done: 0, total: existing.size });
  for (const id of existing.keys()) {
    if (!restoredIds.has(id)) await deleteBlob(db, id).catch(() => undefined);
  }
  emitStoreChange({ kind: 'import', id: '*' });
  emitStoreChange({ kind: 'registry', id: '*' });
  return {
    manifest,
    records: Object.fromEntries([...records].map(([k, v]) => [k, v.length])),
    files: restoredIds.size,
    bytes: chunkBytes,
  };
}

export { ArchiveError };
