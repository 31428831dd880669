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
};

(globalThis as unknown as { tabflowReliability?: ReliabilityHook }).tabflowReliability = hook;
