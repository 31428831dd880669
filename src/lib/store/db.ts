import { openDB, type IDBPDatabase, type IDBPTransaction } from 'idb';

/**
 * The one IndexedDB database of the app.
 *
 * WARNING: DB_VERSION is `MIGRATIONS.length`. Never edit a migration that has shipped:
 * append a new one. A test opens a database written at every earlier version and upgrades it.
 */
export const DB_NAME = 'tabflow';

export type AnyDB = IDBPDatabase<unknown>;
export type UpgradeTx = IDBPTransaction<unknown, string[], 'versionchange'>;

export interface Migration {
  /** What this step adds, for the reader of the history. */
  description: string;
  up(db: AnyDB, tx: UpgradeTx): void | Promise<void>;
}

import { MIGRATIONS } from './migrations/index.ts';
export { MIGRATIONS };

export const DB_VERSION = MIGRATIONS.length;

export interface OpenOptions {
  name?: string;
  /** Open at an older version (tests that upgrade old databases). */
  version?: number;
  /** Called when another tab wants to upgrade the schema: this tab must close and reload. */
  onVersionChange?: () => void;
}

export async function openDatabase(opts: OpenOptions = {}): Promise<AnyDB> {
  const version = opts.version ?? DB_VERSION;
  const db = await openDB(opts.name ?? DB_NAME, version, {
    async upgrade(db, oldVersion, newVersion, tx) {
      const target = newVersion ?? version;
      for (let v = oldVersion; v < target; v++) {
        const step = MIGRATIONS[v];
        if (!step) throw new Error(`No migration to database version ${v + 1}`);
        await step.up(db as AnyDB, tx as unknown as UpgradeTx);
      }
    },
    blocking() {
      // Another tab is upgrading: let it, and tell the user this tab must reload.
      db.close();
      opts.onVersionChange?.();
    },
  });
  return db as AnyDB;
}

let shared: Promise<AnyDB> | undefined;

/** The app's database, opened once per page or worker. */
export function getDatabase(): Promise<AnyDB> {
  shared ??= openDatabase({
    onVersionChange: () => {
      shared = undefined;
      if (typeof dispatchEvent === 'function') dispatchEvent(new CustomEvent('tabflow:db-upgrade'));
    },
  });
  return shared;
}

/** Tests and "reset everything" use this to drop the cached connection. */
export function resetDatabaseConnection(): void {
  shared = undefined;
}
