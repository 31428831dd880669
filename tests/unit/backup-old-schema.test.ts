// "Import everything" of a backup made with an older database schema: its records are brought
// forward as the migrations would have brought the old database (the oracle: that very database,
// opened by this app), and a backup from a newer app is refused with nothing written.
import 'fake-indexeddb/auto';
import { describe, expect, it } from 'vitest';
import { strToU8, unzipSync, zipSync } from 'fflate';
import { createHash } from 'node:crypto';
import { DB_VERSION, MIGRATIONS, openDatabase, type AnyDB } from '../../src/lib/store/db.ts';
import { TrackingClient } from '../../src/lib/services/tracking.ts';
import { RegistryClient } from '../../src/lib/services/registry.ts';
import { createConversation } from '../../src/lib/services/conversations.ts';
import { createProject } from '../../src/lib/services/projects.ts';
import { putDownload } from '../../src/lib/store/downloads.ts';
import {
  BACKUP_MANIFEST,
  BackupFormatError,
  exportEverything,
  importEverything,
} from '../../src/lib/services/backup.ts';
import { BACKUP_UPGRADES, storesAtVersion } from '../../src/lib/store/backup.ts';

let n = 0;
const dbName = () => `backup-old-${n++}`;

const bytes = (size: number, seed: number) =>
  new Uint8Array(size).map((_, i) => (i * seed + 3) & 0xff);

/** Every object store: its [key, value] pairs in key order (chunks as a digest of their bytes). */
async function snapshot(db: AnyDB): Promise<Record<string, [unknown, unknown][]>> {
  const out: Record<string, [unknown, unknown][]> = {};
  for (const name of Array.from(db.objectStoreNames).sort()) {
    const keys = await db.getAllKeys(name);
    const values = await db.getAll(name);
    out[name] = await Promise.all(
      keys.map(async (k, i) => {
        const v = values[i];
        const b = v instanceof Blob ? new Uint8Array(await v.arrayBuffer()) : v;
        const shown =
          b instanceof Uint8Array ? createHash('sha256').update(b).digest('hex') : (b as unknown);
        return [k, shown] as [unknown, unknown];
      }),
    );
  }
  return out;
}

/** Tracking data (and, from schema 3, a registered model) written by the app into an old database. */
async function populateOld(db: AnyDB, version: number): Promise<void> {
  const t = new TrackingClient(db);
  const exp = await t.createExperiment('old <i>schema</i>', { tags: { team: 'a' } });
  const run = await t.startRun({ experimentId: exp, runName: 'r1', tags: { note: 'x' } });
  await t.logParams(run.runId, { lr: 0.01 });
  await t.logMetrics(run.runId, [
    { key: 'loss', value: 1.5, step: 0, timestamp: 1 },
    { key: 'loss', value: Number.NaN, step: 1, timestamp: 2 },
    { key: 'acc', value: -0, step: 0, timestamp: 3 },
  ]);
  await t.logArtifact(run.runId, 'data/blob.bin', bytes(70_000, 7));
  await t.endRun(run.runId);
  if (version >= 3) {
    const reg = new RegistryClient(db);
    await reg.createRegisteredModel('old-model', { description: 'made at schema 3' });
    await reg.setRegisteredModelTag('old-model', 'k', 'v');
  }
}

/** A backup as the app at schema `version` wrote it: that schema's stores and its number. */
async function oldBackup(db: AnyDB, version: number): Promise<Blob> {
  const files = unzipSync(
    new Uint8Array(await (await exportEverything(db, { includeWeights: true })).arrayBuffer()),
  );
  const manifest = JSON.parse(new TextDecoder().decode(files[BACKUP_MANIFEST]!)) as {
    dbVersion: number;
    stores: { name: string }[];
  };
  expect(manifest.stores.map((s) => s.name).sort()).toEqual(
    [...storesAtVersion(version)].filter((s) => s !== 'blobChunks').sort(),
  );
  manifest.dbVersion = version;
  files[BACKUP_MANIFEST] = strToU8(JSON.stringify(manifest));
  return new Blob([zipSync(files) as BlobPart]);
}

/** A current store with something in every part of the app (all replaced by the import). */
async function populateCurrent(db: AnyDB): Promise<void> {
  const t = new TrackingClient(db);
  const exp = await t.createExperiment('current');
  const r = await t.startRun({ experimentId: exp });
  await t.logArtifact(r.runId, 'old.bin', bytes(5000, 9));
  await new RegistryClient(db).createRegisteredModel('current-model');
  await createConversation(db, { mode: 'chat', model: null, title: 'hi' });
  await createProject(db, { name: 'eval', rows: [{ prompt: 'a', expected: 'b' }] });
  await putDownload(db, {
    id: 'dl-1',
    repoId: 'o/r',
    revision: 'main',
    commit: 'abc',
    files: [],
    createdAt: 1,
    updatedAt: 2,
  } as unknown as Parameters<typeof putDownload>[1]);
}

describe('backups from older database schemas', () => {
  it('the upgrade steps name the stores each migration creates', async () => {
    expect(BACKUP_UPGRADES).toHaveLength(MIGRATIONS.length);
    for (let v = 1; v <= DB_VERSION; v++) {
      const db = await openDatabase({ name: dbName(), version: v });
      expect(new Set(Array.from(db.objectStoreNames))).toEqual(storesAtVersion(v));
      db.close();
    }
  });

  it.each([2, 3])(
    'a schema-%i backup imports as its database, migrated, would be',
    async (version) => {
      const name = dbName();
      const old = await openDatabase({ name, version });
      await populateOld(old, version);
      const backup = await oldBackup(old, version);
      old.close();

      const target = await openDatabase({ name: dbName() });
      await populateCurrent(target);
      const res = await importEverything(target, backup);
      expect(res.manifest.dbVersion).toBe(version);
      expect(res.records['runs']).toBe(1);
      expect(res.records['conversations']).toBe(0);

      // The oracle: the old database itself, opened (and so migrated) by this app.
      const migrated = await openDatabase({ name });
      expect(await snapshot(target)).toEqual(await snapshot(migrated));
      expect(await target.count('conversations')).toBe(0);
      expect(await target.count('downloads')).toBe(0);
      expect(await target.count('registeredModels')).toBe(version >= 3 ? 1 : 0);
      const t = new TrackingClient(target);
      const [exp] = await t.listExperiments();
      expect(exp?.name).toBe('old <i>schema</i>');
      migrated.close();
    },
  );

  it('a backup from a newer app is refused, naming both schemas, and nothing is written', async () => {
    const source = await openDatabase({ name: dbName() });
    await populateOld(source, DB_VERSION);
    const files = unzipSync(new Uint8Array(await (await exportEverything(source)).arrayBuffer()));
    const manifest = JSON.parse(new TextDecoder().decode(files[BACKUP_MANIFEST]!)) as {
      dbVersion: number;
      stores: { name: string; keyPath: null; count: number }[];
    };
    manifest.dbVersion = DB_VERSION + 1;
    manifest.stores.push({ name: 'fromTheFuture', keyPath: null, count: 0 });
    files[BACKUP_MANIFEST] = strToU8(JSON.stringify(manifest));

    const target = await openDatabase({ name: dbName() });
    await populateCurrent(target);
    const before = await snapshot(target);
    const err = await importEverything(target, new Blob([zipSync(files) as BlobPart])).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(BackupFormatError);
    expect((err as Error).message).toContain(
      `the backup was made with database schema ${DB_VERSION + 1}, this app uses ${DB_VERSION}`,
    );
    expect((err as Error).message).toMatch(/newer app/);
    expect(await snapshot(target)).toEqual(before);
  });

  it('an old backup that lists a store its schema did not have is refused, nothing written', async () => {
    const old = await openDatabase({ name: dbName(), version: 2 });
    await populateOld(old, 2);
    const files = unzipSync(new Uint8Array(await (await oldBackup(old, 2)).arrayBuffer()));
    const manifest = JSON.parse(new TextDecoder().decode(files[BACKUP_MANIFEST]!)) as {
      stores: { name: string; keyPath: string | null; count: number }[];
    };
    manifest.stores.push({ name: 'conversations', keyPath: 'id', count: 0 });
    files[BACKUP_MANIFEST] = strToU8(JSON.stringify(manifest));

    const target = await openDatabase({ name: dbName() });
    await populateCurrent(target);
    const before = await snapshot(target);
    await expect(importEverything(target, new Blob([zipSync(files) as BlobPart]))).rejects.toThrow(
      /'conversations' did not exist in database schema 2/,
    );
    expect(await snapshot(target)).toEqual(before);
  });
});
