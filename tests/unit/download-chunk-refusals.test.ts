// Hub downloads write their own chunks (one per transaction, with the download's progress). When
// Chromium refuses such a transaction ("DataError: Failed to write blobs (InvalidBlob)"), the chunk
// is written again after a pause, and nothing is counted twice.
import 'fake-indexeddb/auto';
import { describe, expect, it } from 'vitest';
import { openDatabase, type AnyDB } from '../../src/lib/store/db.ts';
import { readBlobBytes } from '../../src/lib/store/blobs.ts';
import {
  getDownload,
  putDownload,
  storeDownloadChunk,
  type DownloadRecord,
} from '../../src/lib/store/downloads.ts';

let n = 0;
const fresh = () => openDatabase({ name: `download-refusals-${n++}` });
const pattern = (len: number, seed: number) =>
  new Uint8Array(len).map((_, i) => (i * 131 + seed) & 0xff);

function own(target: object, prop: string | symbol): unknown {
  const v = Reflect.get(target, prop) as unknown;
  return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
}

/** The database with its first `fails` readwrite transactions over blobChunks refused as Chromium does. */
function refusing(db: AnyDB, fails: number): { db: AnyDB; refused: () => number } {
  let refused = 0;
  const wrapped = new Proxy(db, {
    get(target, prop) {
      if (prop !== 'transaction') return own(target, prop);
      return (stores: string | string[], mode?: IDBTransactionMode) => {
        const tx = target.transaction(stores as 'blobChunks', mode);
        const names = Array.isArray(stores) ? stores : [stores];
        if (names.includes('blobChunks') && mode === 'readwrite' && refused < fails) {
          refused++;
          // Chromium refuses at commit, after the record was read and the puts were queued: abort
          // once the chunk's put is on its way, and report the refusal as Chromium does.
          const done = tx.done.then(
            () => undefined,
            () => {
              throw new DOMException('Failed to write blobs (InvalidBlob)', 'DataError');
            },
          );
          done.catch(() => undefined);
          return new Proxy(tx, {
            get: (t, p) => {
              if (p === 'done') return done;
              if (p !== 'objectStore') return own(t, p);
              return (name: string) => {
                if (name === 'blobChunks')
                  queueMicrotask(() => {
                    try {
                      t.abort();
                    } catch {
                      // already finished
                    }
                  });
                return t.objectStore(name as 'blobChunks');
              };
            },
          });
        }
        return tx;
      };
    },
  });
  return { db: wrapped, refused: () => refused };
}

function download(size: number, chunkSize: number): DownloadRecord {
  return {
    id: 'd1',
    repoId: 'owner/model',
    revision: 'main',
    commit: 'c0ffee',
    subfolder: '',
    layout: 'genai',
    modelName: 'phi3',
    hubUrl: 'https://huggingface.co',
    files: [
      {
        remotePath: 'w.onnx.data',
        path: 'model/w.onnx.data',
        size,
        blobId: 'b1',
        chunkSize,
        chunksDone: 0,
      },
    ],
    totalBytes: size,
    status: 'downloading',
    createdAt: 1,
    updatedAt: 1,
  };
}

describe('storeDownloadChunk when Chromium refuses a chunk', () => {
  it('writes it again after a pause and counts every chunk once', async () => {
    const base = await fresh();
    await putDownload(base, download(2500, 1000));
    const { db, refused } = refusing(base, 3);
    const parts = [pattern(1000, 1), pattern(1000, 2), pattern(500, 3)];
    for (const p of parts) await storeDownloadChunk(db, 'd1', 0, p, { retryPauseMs: 1 });
    expect(refused()).toBe(3);
    const rec = await getDownload(base, 'd1');
    expect(rec!.files[0]!.chunksDone).toBe(3);
    const stored = await readBlobBytes(base, 'b1');
    expect(stored).toEqual(new Uint8Array([...parts[0]!, ...parts[1]!, ...parts[2]!]));
  });

  it('gives up after five refusals of one chunk, leaving the download resumable where it was', async () => {
    const base = await fresh();
    await putDownload(base, download(2000, 1000));
    await storeDownloadChunk(base, 'd1', 0, pattern(1000, 1));
    const { db } = refusing(base, 6);
    await expect(
      storeDownloadChunk(db, 'd1', 0, pattern(1000, 2), { retryPauseMs: 1 }),
    ).rejects.toThrow(/InvalidBlob/);
    expect((await getDownload(base, 'd1'))!.files[0]!.chunksDone).toBe(1);
    expect(await base.count('blobChunks')).toBe(1);
  });
});
