import 'fake-indexeddb/auto';
import { describe, expect, it } from 'vitest';
import { openDatabase, DB_VERSION } from '../../src/lib/store/db.ts';
import {
  collectGarbage,
  readBlobBytes,
  readBlobChunks,
  writeBlob,
  getBlobRecord,
} from '../../src/lib/store/blobs.ts';

let n = 0;
const fresh = () => openDatabase({ name: `blob-test-${n++}` });

describe('chunked blob store', () => {
  it('writes a file in chunks and reads back the same bytes', async () => {
    const db = await fresh();
    const bytes = new Uint8Array(10_000).map((_, i) => (i * 31) & 0xff);
    const rec = await writeBlob(db, 'f1', bytes, { chunkSize: 4096 });
    expect(rec).toMatchObject({ size: 10_000, chunkCount: 3, complete: true });
    expect(await readBlobBytes(db, 'f1')).toEqual(bytes);
    const sizes: number[] = [];
    for await (const c of readBlobChunks(db, 'f1')) sizes.push(c.length);
    expect(sizes).toEqual([4096, 4096, 1808]);
  });

  it('rolls back every chunk when the source fails midway', async () => {
    const db = await fresh();
    async function* failing() {
      yield new Uint8Array(5000);
      throw new Error('connection dropped');
    }
    await expect(writeBlob(db, 'f2', failing(), { chunkSize: 1024 })).rejects.toThrow(
      'connection dropped',
    );
    expect(await getBlobRecord(db, 'f2')).toBeUndefined();
    expect(await db.count('blobChunks')).toBe(0);
  });

  it('collects files nothing refers to', async () => {
    const db = await fresh();
    await writeBlob(db, 'keep', new Uint8Array(10));
    await writeBlob(db, 'orphan', new Uint8Array(10));
    expect(await collectGarbage(db, new Set(['keep']))).toEqual(['orphan']);
    expect(await db.count('blobFiles')).toBe(1);
  });

  it('opens at the current schema version', async () => {
    const db = await fresh();
    expect(db.version).toBe(DB_VERSION);
  });
});
