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
  /**
   * Called when this tab wants to upgrade but another tab keeps the old schema open (an older
   * build that does not close on request): the open waits until that tab closes or reloads.
   */
  onBlocked?: () => void;
  /** Called when the browser closed the connection (storage cleared, disk error). */
  onTerminated?: () => void;
  /** Steps after the shipped ones: only tests use this, to play a newer build in another tab. */
  extraMigrations?: readonly Migration[];
}

/** Events the page hears (on globalThis) about the database's life across tabs. */
export const DB_EVENTS = {
  /** Another tab upgraded the schema; this tab's connection is closed and it must reload. */
  upgrade: 'tabflow:db-upgrade',
  /** This tab waits for other tabs to close the old schema. */
  blocked: 'tabflow:db-blocked',
  /** The stored database is newer than this build (a newer version runs in another tab). */
  newer: 'tabflow:db-newer',
  /** The browser closed the connection. */
  terminated: 'tabflow:db-terminated',
} as const;

/** The stored database was made by a newer build of the app. */
export class DatabaseTooNewError extends Error {
  override name = 'DatabaseTooNewError';
  constructor(cause?: unknown) {
    super(
      'The data in this browser was written by a newer version of Tabflow (open in another tab?). Reload this tab to get the newer version.',
      { cause },
    );
  }
}

function announce(type: string): void {
  if (typeof dispatchEvent === 'function' && typeof CustomEvent === 'function') {
    dispatchEvent(new CustomEvent(type));
  }
}

export async function openDatabase(opts: OpenOptions = {}): Promise<AnyDB> {
  const steps = opts.extraMigrations ? [...MIGRATIONS, ...opts.extraMigrations] : MIGRATIONS;
  const version = opts.version ?? steps.length;
  const db = await openDB(opts.name ?? DB_NAME, version, {
    async upgrade(db, oldVersion, newVersion, tx) {
      const target = newVersion ?? version;
      for (let v = oldVersion; v < target; v++) {
        const step = steps[v];
        if (!step) throw new Error(`No migration to database version ${v + 1}`);
        await step.up(db as AnyDB, tx as unknown as UpgradeTx);
      }
    },
    blocking() {
      // Another tab is upgrading: let it, and tell the user this tab must reload.
      db.close();
      opts.onVersionChange?.();
    },
    blocked() {
      opts.onBlocked?.();
    },
    terminated() {
      opts.onTerminated?.();
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
      announce(DB_EVENTS.upgrade);
    },
    onBlocked: () => announce(DB_EVENTS.blocked),
    onTerminated: () => {
      shared = undefined;
      announce(DB_EVENTS.terminated);
    },
  }).catch((e: unknown) => {
    shared = undefined;
    if (e instanceof Error && e.name === 'VersionError') {
      announce(DB_EVENTS.newer);
      throw new DatabaseTooNewError(e);
    }
    throw e;
  });
  return shared;
}

/** Tests and "reset everything" use this to drop the cached connection. */
export function resetDatabaseConnection(): void {
  shared = undefined;
}
