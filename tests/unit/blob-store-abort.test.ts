// A chunk write whose transaction aborts part-way (a quota failure reported by the request, as
// browsers do) must reject writeBlob with that cause, leave nothing behind, and leave no
// unhandled promise rejection from the other requests of the aborted transaction.
import 'fake-indexeddb/auto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openDatabase, type AnyDB } from '../../src/lib/store/db.ts';
import {
  StorageQuotaError,
  getBlobRecord,
  readBlobBytes,
  writeBlob,
} from '../../src/lib/store/blobs.ts';

let n = 0;
const fresh = () => openDatabase({ name: `blob-abort-test-${n++}` });

const unhandled: unknown[] = [];
const onUnhandled = (e: unknown) => unhandled.push(e);
beforeEach(() => {
  unhandled.length = 0;
  process.on('unhandledRejection', onUnhandled);
});
afterEach(() => {
  process.off('unhandledRejection', onUnhandled);
});

/**
 * A database whose `blobChunks` put number `failAt` (1-based) fails the way a browser reports a
 * full disk: the request rejects with QuotaExceededError and its transaction aborts. The other
 * requests of the batch then reject with AbortError.
 */
function quotaAt(db: AnyDB, failAt: number): AnyDB {
  let puts = 0;
  return new Proxy(db, {
    get(t, p) {
      if (p !== 'transaction') {
        const v = Reflect.get(t, p, t);
        return typeof v === 'function' ? v.bind(t) : v;
      }
      return (...args: Parameters<AnyDB['transaction']>) => {
        const tx = t.transaction(...args);
        return new Proxy(tx, {
          get(tt, q) {
            if (q !== 'objectStore') {
              const v = Reflect.get(tt, q, tt);
              return typeof v === 'function' ? v.bind(tt) : v;
            }
            return (name: string) => {
              const store = tt.objectStore(name);
              return new Proxy(store, {
                get(s, r) {
                  const v = Reflect.get(s, r, s);
                  if (r !== 'put' || name !== 'blobChunks') {
                    return typeof v === 'function' ? v.bind(s) : v;
                  }
                  return (...a: unknown[]) => {
                    const real = (v as (...x: unknown[]) => Promise<unknown>).apply(s, a);
                    if (++puts !== failAt) return real;
                    // Fails when the request completes, as a full disk is reported.
                    return real.then(() => {
                      tt.abort();
                      throw new DOMException('The quota has been exceeded.', 'QuotaExceededError');
                    });
                  };
                },
              });
            };
          },
        });
      };
    },
  });
}

const bytes = (len: number, seed = 1) => new Uint8Array(len).map((_, i) => (i * seed + 3) & 0xff);
const settle = () => new Promise((r) => setTimeout(r, 50));

describe('a chunk transaction that aborts mid-batch', () => {
  it('rejects with the quota error, rolls back, and leaves no unhandled rejection', async () => {
    const db = await fresh();
    await writeBlob(db, 'keep', bytes(300));
    const before = { files: await db.count('blobFiles'), chunks: await db.count('blobChunks') };
    // 20 chunks of 500 bytes: the first transaction (8 chunks) commits, the second aborts on
    // its fourth put, so both committed chunks and an aborted batch must be cleaned up.
    const err = await writeBlob(quotaAt(db, 11), 'big', bytes(10_000, 7), {
      chunkSize: 500,
      expectedSize: 10_000,
    }).catch((e: unknown) => e);
    await settle();
    expect(err).toBeInstanceOf(StorageQuotaError);
    expect((err as StorageQuotaError).neededBytes).toBe(10_000);
    expect(((err as Error).cause as Error).name).toBe('QuotaExceededError');
    expect(await getBlobRecord(db, 'big')).toBeUndefined();
    expect({ files: await db.count('blobFiles'), chunks: await db.count('blobChunks') }).toEqual(
      before,
    );
    expect(await readBlobBytes(db, 'keep')).toEqual(bytes(300));
    expect(unhandled).toEqual([]);
  });

  it('fails in the first batch too, and a later write of the same id succeeds', async () => {
    const db = await fresh();
    const err = await writeBlob(quotaAt(db, 1), 'f', bytes(3000), { chunkSize: 1000 }).catch(
      (e: unknown) => e,
    );
    await settle();
    expect(err).toBeInstanceOf(StorageQuotaError);
    expect(await db.count('blobChunks')).toBe(0);
    expect(unhandled).toEqual([]);
    const rec = await writeBlob(db, 'f', bytes(3000), { chunkSize: 1000 });
    expect(rec).toMatchObject({ size: 3000, chunkCount: 3, complete: true });
    expect(await readBlobBytes(db, 'f')).toEqual(bytes(3000));
  });
});
