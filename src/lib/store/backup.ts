import type { AnyDB } from './db.ts';

/**
 * Reading and writing whole object stores for "Export everything" / "Import everything".
 * Records become JSON lines. What JSON cannot hold as is (typed arrays, non-finite numbers, -0,
 * dates, undefined) is written as a tagged object `{"$tabflow": kind, ...}`; a plain object that
 * itself has a `$tabflow` key is wrapped so it cannot be mistaken for one.
 */

const TAG = '$tabflow';

const TYPED = {
  Uint8Array,
  Int8Array,
  Uint16Array,
  Int16Array,
  Uint32Array,
  Int32Array,
  Float32Array,
  Float64Array,
  Uint8ClampedArray,
  BigInt64Array,
  BigUint64Array,
} as const;
type TypedName = keyof typeof TYPED;

export class BackupFormatError extends Error {
  override name = 'BackupFormatError';
  constructor(
    message: string,
    /** The backup entry at fault (`stores/runs.jsonl`), with its line when known. */
    readonly file?: string,
    readonly line?: number,
  ) {
    super(file ? `${file}${line !== undefined ? `:${line}` : ''}: ${message}` : message);
  }
}

function toBase64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

function fromBase64(b64: string): Uint8Array<ArrayBuffer> {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** A structured-clone value as a JSON-safe value. */
export function encodeValue(v: unknown): unknown {
  if (v === undefined) return { [TAG]: 'undefined' };
  if (typeof v === 'number') {
    if (Number.isNaN(v)) return { [TAG]: 'num', v: 'NaN' };
    if (v === Infinity) return { [TAG]: 'num', v: 'Infinity' };
    if (v === -Infinity) return { [TAG]: 'num', v: '-Infinity' };
    if (Object.is(v, -0)) return { [TAG]: 'num', v: '-0' };
    return v;
  }
  if (typeof v === 'bigint') return { [TAG]: 'bigint', v: v.toString() };
  if (v === null || typeof v !== 'object') return v;
  if (ArrayBuffer.isView(v)) {
    const name = v.constructor.name as TypedName;
    if (!(name in TYPED)) throw new BackupFormatError(`cannot back up a ${name}`);
    const bytes = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    return { [TAG]: 'typed', t: name, d: toBase64(bytes) };
  }
  if (v instanceof ArrayBuffer) return { [TAG]: 'buffer', d: toBase64(new Uint8Array(v)) };
  if (v instanceof Date) return { [TAG]: 'date', v: v.getTime() };
  if (Array.isArray(v)) return v.map(encodeValue);
  if (typeof Blob !== 'undefined' && v instanceof Blob) {
    throw new BackupFormatError('a record holds a Blob; only the chunk store may');
  }
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) out[k] = encodeValue(x);
  return TAG in out ? { [TAG]: 'object', v: out } : out;
}

/** The inverse of encodeValue. Throws BackupFormatError on a tag it does not know. */
export function decodeValue(v: unknown): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map(decodeValue);
  const o = v as Record<string, unknown>;
  if (TAG in o) {
    switch (o[TAG]) {
      case 'undefined':
        return undefined;
      case 'num':
        if (o.v === 'NaN') return NaN;
        if (o.v === 'Infinity') return Infinity;
        if (o.v === '-Infinity') return -Infinity;
        if (o.v === '-0') return -0;
        break;
      case 'bigint':
        if (typeof o.v === 'string') return BigInt(o.v);
        break;
      case 'typed': {
        const ctor = TYPED[o.t as TypedName];
        if (!ctor || typeof o.d !== 'string') break;
        const bytes = fromBase64(o.d);
        if (bytes.length % ctor.BYTES_PER_ELEMENT !== 0) break;
        return new ctor(bytes.buffer as ArrayBuffer, 0, bytes.length / ctor.BYTES_PER_ELEMENT);
      }
      case 'buffer':
        if (typeof o.d === 'string') return fromBase64(o.d).buffer;
        break;
      case 'date':
        if (typeof o.v === 'number') return new Date(o.v);
        break;
      case 'object': {
        if (o.v === null || typeof o.v !== 'object') break;
        const out: Record<string, unknown> = {};
        for (const [k, x] of Object.entries(o.v as Record<string, unknown>))
          out[k] = decodeValue(x);
        return out;
      }
    }
    throw new BackupFormatError(`unknown or malformed tagged value ${JSON.stringify(o[TAG])}`);
  }
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(o)) out[k] = decodeValue(x);
  return out;
}

/** One record of a store: its key (stores without a key path only) and value. */
export interface StoredRecord {
  key?: IDBValidKey;
  value: unknown;
}

export interface StoreInfo {
  name: string;
  /** null: keys are kept beside the values. */
  keyPath: string | string[] | null;
  count: number;
}

export async function describeStores(db: AnyDB): Promise<StoreInfo[]> {
  const names = Array.from(db.objectStoreNames);
  const tx = db.transaction(names);
  const out: StoreInfo[] = [];
  for (const name of names) {
    const store = tx.objectStore(name);
    out.push({
      name,
      keyPath: store.keyPath as string | string[] | null,
      count: await store.count(),
    });
  }
  await tx.done;
  return out;
}

/**
 * Every record of a store in key order, read in pages (each page in its own short transaction,
 * so a consumer that awaits other work between pages does not hold the store open).
 */
export async function* readStore(
  db: AnyDB,
  name: string,
  pageSize = 500,
): AsyncGenerator<StoredRecord[]> {
  let after: IDBValidKey | undefined;
  for (;;) {
    const tx = db.transaction(name);
    const range = after === undefined ? undefined : IDBKeyRange.lowerBound(after, true);
    const keys = await tx.store.getAllKeys(range, pageSize);
    const values = await tx.store.getAll(range, pageSize);
    const inline = tx.store.keyPath !== null;
    await tx.done;
    if (keys.length === 0) return;
    yield keys.map((key, i) => (inline ? { value: values[i] } : { key, value: values[i] }));
    if (keys.length < pageSize) return;
    after = keys[keys.length - 1];
  }
}

/** A record as one JSON line. */
export function recordToLine(r: StoredRecord): string {
  return (
    JSON.stringify(
      r.key === undefined
        ? { v: encodeValue(r.value) }
        : { k: encodeValue(r.key), v: encodeValue(r.value) },
    ) + '\n'
  );
}

/** Parses one JSON line back into a record (errors name the file and line). */
export function lineToRecord(
  line: string,
  file: string,
  lineNo: number,
  needsKey: boolean,
): StoredRecord {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch (e) {
    throw new BackupFormatError(`not valid JSON (${(e as Error).message})`, file, lineNo);
  }
  if (raw === null || typeof raw !== 'object' || !('v' in raw)) {
    throw new BackupFormatError('expected an object with a "v" field', file, lineNo);
  }
  const o = raw as { k?: unknown; v: unknown };
  if (needsKey && !('k' in o)) throw new BackupFormatError('expected a key ("k")', file, lineNo);
  try {
    const rec: StoredRecord = { value: decodeValue(o.v) };
    if (needsKey) rec.key = decodeValue(o.k) as IDBValidKey;
    return rec;
  } catch (e) {
    if (e instanceof BackupFormatError) throw new BackupFormatError(e.message, file, lineNo);
    throw e;
  }
}

// ---------------------------------------------------------------- older schema versions

/**
 * What each schema step means for a backup made before it: `BACKUP_UPGRADES[i]` goes with
 * `MIGRATIONS[i]` (database version i to i + 1). A backup made at version k holds the stores of
 * version k; bringing it forward applies steps k..current-1 to its records, as opening that old
 * database in this app would have migrated it.
 */
export interface BackupUpgrade {
  /** Object stores the step creates (an older backup has none: they come out empty). */
  newStores: readonly string[];
  /**
   * Rewrites the records of stores that existed before the step, for steps that change their
   * shape (a new required field, a renamed key). No step has needed one yet.
   */
  upgrade?(records: Map<string, StoredRecord[]>): void;
}

/** One entry per migration, in order; a test checks them against the migrations' stores. */
export const BACKUP_UPGRADES: readonly BackupUpgrade[] = [
  { newStores: ['blobFiles', 'blobChunks'] },
  {
    newStores: [
      'experiments',
      'runs',
      'latestMetrics',
      'metricHistory',
      'artifacts',
      'mlrunsFiles',
    ],
  },
  { newStores: ['registeredModels', 'modelVersions', 'modelFiles'] },
  { newStores: ['conversations', 'evalProjects'] },
  { newStores: ['downloads'] },
];

/** The object stores of the database at a schema version. */
export function storesAtVersion(version: number): Set<string> {
  return new Set(BACKUP_UPGRADES.slice(0, version).flatMap((s) => s.newStores));
}

/**
 * Brings the records of a backup made at schema `from` forward to schema `to`: the stores later
 * steps add are listed, empty, and each step's record upgrade runs. `stores` and `records` are
 * changed in place. Throws BackupFormatError (naming `file`) for a store that schema `from` did
 * not have, or for a version this app knows no steps for.
 */
export function upgradeBackup(
  from: number,
  to: number,
  stores: StoreInfo[],
  records: Map<string, StoredRecord[]>,
  file?: string,
): void {
  if (!Number.isInteger(from) || from < 1 || from > to || to > BACKUP_UPGRADES.length) {
    throw new BackupFormatError(`no upgrade from database schema ${from} to ${to}`, file);
  }
  const had = storesAtVersion(from);
  for (const s of stores) {
    if (!had.has(s.name)) {
      throw new BackupFormatError(
        `object store '${s.name}' did not exist in database schema ${from}`,
        file,
      );
    }
  }
  for (let v = from; v < to; v++) {
    const step = BACKUP_UPGRADES[v]!;
    step.upgrade?.(records);
    for (const name of step.newStores) {
      if (stores.some((s) => s.name === name)) continue;
      stores.push({ name, keyPath: null, count: 0 });
      records.set(name, []);
    }
  }
}
