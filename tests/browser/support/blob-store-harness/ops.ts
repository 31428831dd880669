// The blob store's write and read-back, run by the page or by a worker of the harness page. Every
// byte of a test file is a function of its position, so any range read back can be checked
// without holding the original.
import { openDatabase } from '../../../../src/lib/store/db.ts';
import {
  deleteBlob,
  readBlob,
  readBlobChunks,
  readBlobRange,
  writeBlob,
} from '../../../../src/lib/store/blobs.ts';

export const MiB = 1024 * 1024;
/** Pieces the source yields (the store re-chunks them to its own chunk size). */
const PIECE = 16 * MiB;

const word = (w: number) => Math.imul(w ^ (w >>> 13), 0x9e3779b1) >>> 0;

/** Fills `buf` with the file's bytes from `offset` (a multiple of 4) on. */
function fill(buf: Uint8Array, offset: number): void {
  const u = new Uint32Array(buf.buffer, buf.byteOffset, buf.byteLength >>> 2);
  const w0 = offset >>> 2;
  for (let k = 0; k < u.length; k++) u[k] = word(w0 + k);
}

/** The first byte offset in `buf` (holding the file from `offset`, a multiple of 4) that is wrong, or -1. */
function firstMismatch(buf: Uint8Array, offset: number): number {
  if (buf.byteLength % 4 !== 0 || buf.byteOffset % 4 !== 0) {
    const copy = new Uint8Array(buf.byteLength + 3 - ((buf.byteLength + 3) % 4));
    copy.set(buf);
    const at = firstMismatch(copy.subarray(0, copy.length), offset);
    return at >= buf.byteLength ? -1 : at;
  }
  const u = new Uint32Array(buf.buffer, buf.byteOffset, buf.byteLength >>> 2);
  const w0 = offset / 4;
  for (let k = 0; k < u.length; k++) if (u[k] !== word(w0 + k)) return offset + k * 4;
  return -1;
}

export interface OpArgs {
  db: string;
  id: string;
  /** write: file size in MiB (a multiple of 16). */
  mib?: number;
  chunksPerTransaction?: number;
}

export interface OpResult {
  ms: number;
  bytes: number;
  /** The first failure: what failed, at which byte, with the browser's error. */
  error?: string;
  /** Transactions writeBlob wrote again after Chromium refused them (InvalidBlob). */
  retries?: number;
}

const describe = (e: unknown) => (e instanceof Error ? `${e.name}: ${e.message}` : String(e));

async function* source(size: number): AsyncGenerator<Uint8Array> {
  for (let off = 0; off < size; off += PIECE) {
    const piece = new Uint8Array(Math.min(PIECE, size - off));
    fill(piece, off);
    yield piece;
  }
}

/** Reads `blob` (the file from byte `base` on) in 64 MiB slices and checks every byte. */
async function checkBlob(blob: Blob, base: number, sync: boolean): Promise<OpResult> {
  const t0 = performance.now();
  const Reader = (globalThis as { FileReaderSync?: new () => SyncReader }).FileReaderSync;
  const reader = sync && Reader ? new Reader() : null;
  let bytes = 0;
  for (let off = 0; off < blob.size; off += 64 * MiB) {
    const slice = blob.slice(off, off + 64 * MiB);
    let buf: Uint8Array;
    try {
      buf = new Uint8Array(reader ? reader.readAsArrayBuffer(slice) : await slice.arrayBuffer());
    } catch (e) {
      return { ms: performance.now() - t0, bytes, error: `read at ${base + off}: ${describe(e)}` };
    }
    const bad = firstMismatch(buf, base + off);
    if (bad >= 0) return { ms: performance.now() - t0, bytes, error: `wrong byte at ${bad}` };
    bytes += buf.length;
  }
  return { ms: performance.now() - t0, bytes };
}

interface SyncReader {
  readAsArrayBuffer(blob: Blob): ArrayBuffer;
}

export const ops = {
  async write(a: OpArgs): Promise<OpResult> {
    const db = await openDatabase({ name: a.db });
    const size = (a.mib ?? 0) * MiB;
    const t0 = performance.now();
    let retries = 0;
    try {
      const rec = await writeBlob(db, a.id, source(size), {
        expectedSize: size,
        onRetry: () => retries++,
        ...(a.chunksPerTransaction ? { chunksPerTransaction: a.chunksPerTransaction } : {}),
      });
      return { ms: performance.now() - t0, bytes: rec.size, retries };
    } catch (e) {
      return { ms: performance.now() - t0, bytes: 0, retries, error: `write: ${describe(e)}` };
    } finally {
      db.close();
    }
  },

  /** readBlobChunks: every chunk as bytes. */
  async chunks(a: OpArgs): Promise<OpResult> {
    const db = await openDatabase({ name: a.db });
    const t0 = performance.now();
    let off = 0;
    try {
      for await (const c of readBlobChunks(db, a.id)) {
        const bad = firstMismatch(c, off);
        if (bad >= 0)
          return { ms: performance.now() - t0, bytes: off, error: `wrong byte at ${bad}` };
        off += c.length;
      }
      return { ms: performance.now() - t0, bytes: off };
    } catch (e) {
      return { ms: performance.now() - t0, bytes: off, error: `chunk at ${off}: ${describe(e)}` };
    } finally {
      db.close();
    }
  },

  /** readBlob's whole-file Blob, read in slices (synchronously in a worker, as the inference worker does). */
  async wholeBlob(a: OpArgs): Promise<OpResult> {
    const db = await openDatabase({ name: a.db });
    try {
      return await checkBlob(await readBlob(db, a.id), 0, true);
    } catch (e) {
      return { ms: 0, bytes: 0, error: `readBlob: ${describe(e)}` };
    } finally {
      db.close();
    }
  },

  /** readBlobRange over ranges that straddle chunk boundaries, plus the file's last bytes. */
  async ranges(a: OpArgs): Promise<OpResult> {
    const db = await openDatabase({ name: a.db });
    const t0 = performance.now();
    let bytes = 0;
    try {
      const rec = await db.get('blobFiles', a.id);
      const size = (rec as { size: number }).size;
      const starts = [0, 64 * MiB - 12, size - 5 * MiB - 8, size - 4];
      for (const s of starts.filter((x) => x >= 0)) {
        const end = Math.min(size, s + 3 * MiB);
        const buf = await readBlobRange(db, a.id, s, end);
        const bad = firstMismatch(buf, s);
        if (bad >= 0) return { ms: performance.now() - t0, bytes, error: `wrong byte at ${bad}` };
        bytes += buf.length;
      }
      return { ms: performance.now() - t0, bytes };
    } catch (e) {
      return { ms: performance.now() - t0, bytes, error: `range: ${describe(e)}` };
    } finally {
      db.close();
    }
  },

  async remove(a: OpArgs): Promise<OpResult> {
    const db = await openDatabase({ name: a.db });
    try {
      await deleteBlob(db, a.id);
      return { ms: 0, bytes: 0 };
    } finally {
      db.close();
    }
  },
};

export type OpName = keyof typeof ops;
