import 'fake-indexeddb/auto';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { openDatabase, type AnyDB } from '../../src/lib/store/db.ts';
import {
  getBlobRecord,
  readBlobBytes,
  readBlobRange,
  writeBlob,
} from '../../src/lib/store/blobs.ts';

let n = 0;
const fresh = () => openDatabase({ name: `blob-range-test-${n++}` });
const pattern = (len: number) => new Uint8Array(len).map((_, i) => (i * 131 + (i >> 8)) & 0xff);

describe('readBlobRange', () => {
  it('reads any range across chunk boundaries byte-exact', async () => {
    const db = await fresh();
    const bytes = pattern(10_000);
    await writeBlob(db, 'f', bytes, { chunkSize: 1024 });
    await fc.assert(
      fc.asyncProperty(fc.nat(10_000), fc.nat(10_000), async (a, b) => {
        const [s, e] = a <= b ? [a, b] : [b, a];
        expect(await readBlobRange(db, 'f', s, e)).toEqual(bytes.subarray(s, e));
      }),
      { numRuns: 60 },
    );
  });

  it('refuses ranges outside the file and files that are missing', async () => {
    const db = await fresh();
    await writeBlob(db, 'f', pattern(100), { chunkSize: 32 });
    await expect(readBlobRange(db, 'f', 90, 101)).rejects.toThrow(
      /range 90-101 is outside its 100 bytes/,
    );
    await expect(readBlobRange(db, 'f', -1, 5)).rejects.toThrow(/outside/);
    await expect(readBlobRange(db, 'nope', 0, 1)).rejects.toThrow(/No stored file with id nope/);
    await db.delete('blobChunks', ['f', 2]);
    await expect(readBlobRange(db, 'f', 60, 70)).rejects.toThrow(/missing chunk 2/);
  });
});

/** A property of `target`, methods bound to it (idb's objects keep their state in private slots). */
function own(target: object, prop: string | symbol): unknown {
  const v = Reflect.get(target, prop) as unknown;
  return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
}

/** The database with its first `fails` readwrite transactions on blobChunks refused as Chromium does. */
function refusingBlobs(db: AnyDB, fails: number): { db: AnyDB; refused: () => number } {
  let refused = 0;
  const wrapped = new Proxy(db, {
    get(target, prop) {
      if (prop !== 'transaction') return own(target, prop);
      return (stores: string | string[], mode?: IDBTransactionMode) => {
        const tx = target.transaction(stores as 'blobChunks', mode);
        if (stores === 'blobChunks' && mode === 'readwrite' && refused < fails) {
          refused++;
          // Chromium rejects the transaction after the puts were queued: nothing commits.
          queueMicrotask(() => {
            try {
              tx.abort();
            } catch {
              // already finished
            }
          });
          const done = tx.done.then(
            () => undefined,
            () => {
              throw new DOMException('Failed to write blobs (InvalidBlob)', 'DataError');
            },
          );
          done.catch(() => undefined);
          return new Proxy(tx, {
            get: (t, p) => (p === 'done' ? done : own(t, p)),
          });
        }
        return tx;
      };
    },
  });
  return { db: wrapped, refused: () => refused };
}

describe('writeBlob and Chromium refusing a transaction of Blobs (InvalidBlob)', () => {
  it('writes the refused chunks again, one per transaction, and stores the same bytes', async () => {
    const base = await fresh();
    const { db, refused } = refusingBlobs(base, 5);
    const bytes = pattern(5000);
    const retries: number[] = [];
    const rec = await writeBlob(db, 'f', bytes, {
      chunkSize: 1000,
      retryPauseMs: 1,
      onRetry: (_, n) => retries.push(n),
    });
    expect(refused()).toBe(5);
    expect(retries).toEqual([1, 2, 3, 4, 5]);
    expect(rec).toMatchObject({ size: 5000, chunkCount: 5, complete: true });
    expect(await readBlobBytes(base, 'f')).toEqual(bytes);
  });

  it('fails on the sixth refusal and leaves nothing behind', async () => {
    const base = await fresh();
    const { db } = refusingBlobs(base, 6);
    await expect(
      writeBlob(db, 'f', pattern(5000), { chunkSize: 1000, retryPauseMs: 1 }),
    ).rejects.toThrow(/InvalidBlob/);
    expect(await getBlobRecord(base, 'f')).toBeUndefined();
    expect(await base.count('blobChunks')).toBe(0);
  });
});
