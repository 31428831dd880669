/**
 * Verbs over the app's one database for UI code, which never opens IndexedDB itself: the
 * database's lifecycle events, storage checks, sync clients and mlflow.db in and out. Each opens
 * the shared connection (once per page) and passes it on.
 */
import { DB_EVENTS, getDatabase } from '../store/db.ts';
import { formatBytes } from '../store/blobs.ts';
import { ensureSpaceFor } from '../store/quota.ts';
import { collectOrphanFiles, type GcOptions, type GcResult } from './storage-usage.ts';
import { syncClientFor, type RemoteServer, type SyncClient } from './sync.ts';
import {
  exportMlflowDbZip,
  importMlflowDb,
  type MlflowDbExportOptions,
  type MlflowDbImportOptions,
} from './mlflow-db.ts';

/** Window events the database fires: another tab upgraded it, blocked it, or the browser closed it. */
export { DB_EVENTS };

/** Refuses early, with the numbers, when the browser says `payloadBytes` will not fit. */
export { ensureSpaceFor };

/** Sizes written as the storage layer's own messages write them (`153.0 MB`). */
export const formatStoredBytes: (n: number) => string = formatBytes;

/** Resolves once the database is open (a blocked open waits for the other tab to let go). */
export async function whenDatabaseOpen(): Promise<void> {
  await getDatabase();
}

/** Removes stored files that nothing refers to. */
export async function collectOrphanFilesNow(opts?: GcOptions): Promise<GcResult> {
  return collectOrphanFiles(await getDatabase(), opts);
}

/** A client that pushes to and pulls from `server`, over this page's database. */
export async function getSyncClient(server: RemoteServer): Promise<SyncClient> {
  return syncClientFor(await getDatabase(), server);
}

/** Imports an mlflow.db (MLflow 2.x or 3.x) into this browser's store. */
export async function importMlflowDbFile(bytes: Uint8Array, options?: MlflowDbImportOptions) {
  return importMlflowDb(await getDatabase(), bytes, options);
}

/** Everything stored here as MLflow's own database and artifacts, zipped. */
export async function exportMlflowDbFile(options?: MlflowDbExportOptions): Promise<Uint8Array> {
  return exportMlflowDbZip(await getDatabase(), options);
}
