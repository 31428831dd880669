/**
 * Browser tests of storage faults, many tabs and backups drive these services through
 * `globalThis.tabflowReliability`, installed only on pages opened with `?test` (see
 * DbUpgradeBanner.svelte). Production pages never load this module.
 */
import {
  DB_NAME,
  DB_VERSION,
  getDatabase,
  openDatabase,
  resetDatabaseConnection,
} from '../store/db.ts';
import { writeBlob, StorageQuotaError } from '../store/blobs.ts';
import { ensureSpaceFor } from '../store/quota.ts';
import { exportEverything, importEverything } from './backup.ts';
import { encodeValue } from '../store/backup.ts';
import { collectOrphanFiles, deleteModelWeights, storageUsage } from './storage-usage.ts';

export interface ReliabilityHook {
  DB_VERSION: number;
  getDatabase: typeof getDatabase;
  /** Opens the app's database one version higher, as a newer build in another tab would. */
  upgradeAsNewerBuild(): Promise<{ version: number }>;
  exportEverything: typeof exportEverything;
  importEverything: typeof importEverything;
  storageUsage: typeof storageUsage;
  deleteModelWeights: typeof deleteModelWeights;
  collectOrphanFiles: typeof collectOrphanFiles;
  ensureSpaceFor: typeof ensureSpaceFor;
  writeBlob: typeof writeBlob;
  StorageQuotaError: typeof StorageQuotaError;
  resetDatabaseConnection: typeof resetDatabaseConnection;
  /** Every object store as JSON text per record (chunk bytes as SHA-256), for comparisons. */
  snapshotStores(): Promise<Record<string, string[]>>;
}

async function digest(v: unknown): Promise<string> {
  const bytes =
    v instanceof Blob ? await v.arrayBuffer() : v instanceof Uint8Array ? v : new Uint8Array();
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes as BufferSource));
  return Array.from(d, (x) => x.toString(16).padStart(2, '0')).join('');
}

const hook: ReliabilityHook = {
  DB_VERSION,
  getDatabase,
  async upgradeAsNewerBuild() {
    const db = await openDatabase({
      name: DB_NAME,
      extraMigrations: [
        {
          description: 'test: a newer build adds a store',
          up(d) {
            d.createObjectStore('newerBuildOnly');
          },
        },
      ],
    });
    const version = db.version;
    db.close();
    return { version };
  },
  exportEverything,
  importEverything,
  storageUsage,
  deleteModelWeights,
  collectOrphanFiles,
  ensureSpaceFor,
  writeBlob,
  StorageQuotaError,
  resetDatabaseConnection,
  async snapshotStores() {
    const db = await getDatabase();
    const out: Record<string, string[]> = {};
    for (const name of Array.from(db.objectStoreNames)) {
      const keys = await db.getAllKeys(name);
      const values = await db.getAll(name);
      out[name] = await Promise.all(
        keys.map(async (k, i) =>
          JSON.stringify([
            encodeValue(k),
            name === 'blobChunks' ? await digest(values[i]) : encodeValue(values[i]),
          ]),
        ),
      );
    }
    return out;
  },
};

(globalThis as unknown as { tabflowReliability?: ReliabilityHook }).tabflowReliability = hook;
