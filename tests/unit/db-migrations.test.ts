import 'fake-indexeddb/auto';
import { describe, expect, it } from 'vitest';
import { DB_VERSION, MIGRATIONS, openDatabase, type AnyDB } from '../../src/lib/store/db.ts';
import { readBlobBytes, writeBlob } from '../../src/lib/store/blobs.ts';
import { TrackingClient } from '../../src/lib/services/tracking.ts';

/**
 * What a database written at version v holds, and how to check it survived an upgrade.
 * A version without an entry here (a later migration) is still opened and upgraded.
 */
const seeds: Record<number, { write(db: AnyDB): Promise<void>; check(db: AnyDB): Promise<void> }> =
  {
    1: {
      async write(db) {
        await writeBlob(db, 'weights', new Uint8Array([1, 2, 3, 4]), { chunkSize: 2 });
      },
      async check(db) {
        expect(await readBlobBytes(db, 'weights')).toEqual(new Uint8Array([1, 2, 3, 4]));
      },
    },
    2: {
      async write(db) {
        const c = new TrackingClient(db);
        const exp = await c.createExperiment('from v2', { experimentId: '42' });
        const run = await c.startRun({ experimentId: exp, runName: 'old-run', startTime: 1 });
        await c.logParam(run.runId, 'lr', '0.01');
        await c.logMetric(run.runId, 'acc', 0.9, { step: 1, timestamp: 2 });
        await c.logText(run.runId, 'kept', 'notes.txt');
      },
      async check(db) {
        const c = new TrackingClient(db);
        expect((await c.getExperiment('42')).name).toBe('from v2');
        const { runs } = await c.searchRuns({
          experimentIds: ['42'],
          filter: "metrics.acc > 0.5 and params.lr = '0.01'",
        });
        expect(runs.map((r) => r.info.runName)).toEqual(['old-run']);
        expect(await c.readArtifactText(runs[0]!.info.runId, 'notes.txt')).toBe('kept');
      },
    },
  };

describe('database migrations', () => {
  it('has one migration per version, each described', () => {
    expect(MIGRATIONS.length).toBe(DB_VERSION);
    for (const m of MIGRATIONS) expect(m.description.length).toBeGreaterThan(0);
  });

  for (let v = 1; v <= DB_VERSION; v++) {
    it(`upgrades a database written at version ${v} to ${DB_VERSION} and keeps its data`, async () => {
      const name = `migrate-from-${v}`;
      const old = await openDatabase({ name, version: v });
      expect(old.version).toBe(v);
      for (let s = 1; s <= v; s++) await seeds[s]?.write(old);
      const storesBefore = [...old.objectStoreNames];
      old.close();

      const db = await openDatabase({ name });
      expect(db.version).toBe(DB_VERSION);
      for (const s of storesBefore) expect([...db.objectStoreNames]).toContain(s);
      for (let s = 1; s <= v; s++) await seeds[s]?.check(db);
      // The upgraded database is fully usable at the current version.
      const c = new TrackingClient(db);
      const exp = await c.createExperiment(`after upgrade ${v}`);
      const run = await c.startRun({ experimentId: exp });
      await c.logMetric(run.runId, 'm', 1);
      expect((await c.getRun(run.runId)).metrics['m']?.value).toBe(1);
      db.close();
    });
  }

  it('a fresh database has every tracking store and index', async () => {
    const db = await openDatabase({ name: 'fresh-schema' });
    const names = [...db.objectStoreNames];
    for (const s of [
      'experiments',
      'runs',
      'latestMetrics',
      'metricHistory',
      'artifacts',
      'mlrunsFiles',
    ]) {
      expect(names).toContain(s);
    }
    const tx = db.transaction(['runs', 'latestMetrics', 'metricHistory', 'experiments']);
    expect([...tx.objectStore('runs').indexNames].sort()).toEqual([
      'experimentId',
      'experimentStart',
      'paramKV',
      'tagKV',
    ]);
    expect(tx.objectStore('latestMetrics').keyPath).toBeNull();
    expect(tx.objectStore('metricHistory').keyPath).toEqual(['runId', 'key', 'seq']);
    expect(tx.objectStore('experiments').index('name').unique).toBe(true);
    await tx.done;
    db.close();
  });
});
