// Pulling a file from an MLflow server's artifact proxy streams it into the chunked blob store:
// a real Response whose body is produced only as it is read shows that the bytes held at any
// moment stay within one chunk (plus the network piece in flight), that the stored bytes are the
// sent ones, and that a connection dropped mid-file (or a body shorter than announced) leaves no
// stored bytes behind and names the file and how far it got.
import 'fake-indexeddb/auto';
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { openDatabase, type AnyDB } from '../../src/lib/store/db.ts';
import { readBlobBytes } from '../../src/lib/store/blobs.ts';
import { MlflowRestClient, MlflowRestError } from '../../src/lib/remote/mlflow-rest.ts';
import { downloadArtifactToBlob } from '../../src/lib/services/sync.ts';

const MiB = 1024 * 1024;
const PIECE = 256 * 1024;

/** Deterministic bytes: piece i is filled from a small LCG seeded by i. */
function piece(i: number, size: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = (i * 2654435761) >>> 0;
  for (let k = 0; k < size; k++) {
    x = (x * 1664525 + 1013904223) >>> 0;
    out[k] = x >>> 24;
  }
  return out;
}

interface Served {
  rest: MlflowRestClient;
  /** Largest (bytes handed to the reader) - (bytes committed to the blob store) seen. */
  peakInFlight: () => number;
  sha256: () => string;
}

/**
 * A client whose fetch answers the artifact download with a body of `total` bytes made on
 * demand; `dropAfter` errors the stream there (a lost connection), `announce` overrides the
 * Content-Length.
 */
function serve(
  db: AnyDB,
  chunkSize: number,
  total: number,
  opts: { dropAfter?: number; announce?: number } = {},
): Served {
  let produced = 0;
  let peak = 0;
  const hash = createHash('sha256');
  let i = 0;
  const fetchFn = (async (input: RequestInfo | URL) => {
    const url = String(input);
    expect(url).toContain('/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts/weights.bin');
    const body = new ReadableStream<Uint8Array>(
      {
        async pull(controller) {
          const committed = (await db.count('blobChunks')) * chunkSize;
          peak = Math.max(peak, produced - committed);
          if (opts.dropAfter !== undefined && produced >= opts.dropAfter) {
            controller.error(new TypeError('terminated: other side closed'));
            return;
          }
          if (produced >= Math.min(total, opts.announce ?? total)) {
            controller.close();
            return;
          }
          const n = Math.min(PIECE, total - produced);
          const p = piece(i++, n);
          hash.update(p);
          produced += n;
          controller.enqueue(p);
        },
      },
      { highWaterMark: 1 },
    );
    return new Response(body, {
      status: 200,
      headers: { 'Content-Length': String(opts.announce ?? total) },
    });
  }) as typeof fetch;
  return {
    rest: new MlflowRestClient('http://127.0.0.1:5999', { fetch: fetchFn }),
    peakInFlight: () => peak,
    sha256: () => hash.digest('hex'),
  };
}

const PATH = '1/abc/artifacts/weights.bin';

async function leftovers(db: AnyDB): Promise<number[]> {
  return [await db.count('blobFiles'), await db.count('blobChunks')];
}

describe('a pulled file streams into the blob store', () => {
  it('keeps the bytes in flight within one chunk and stores exactly the bytes sent', async () => {
    const db = await openDatabase({ name: 'pull-stream-ok' });
    const chunkSize = 4 * MiB;
    const total = 24 * MiB + 12345; // six full chunks and a partial one
    const s = serve(db, chunkSize, total);
    const seen: number[] = [];
    const rec = await downloadArtifactToBlob(db, s.rest, PATH, 'pulled-1', {
      chunkSize,
      onBytes: (n) => seen.push(n),
    });
    expect(rec).toMatchObject({ size: total, chunkCount: 7, complete: true });
    const stored = await readBlobBytes(db, 'pulled-1');
    expect(createHash('sha256').update(stored).digest('hex')).toBe(s.sha256());
    // One chunk being filled, plus the pieces the stream has queued ahead.
    expect(s.peakInFlight()).toBeGreaterThan(0);
    expect(s.peakInFlight()).toBeLessThanOrEqual(chunkSize + 2 * PIECE);
    expect(seen.at(-1)).toBe(total);
    expect(seen.every((n, k) => k === 0 || n > seen[k - 1]!)).toBe(true);
  });

  it('leaves nothing behind when the connection drops mid-file, and says where it stopped', async () => {
    const db = await openDatabase({ name: 'pull-stream-drop' });
    const chunkSize = 2 * MiB;
    const total = 12 * MiB;
    const s = serve(db, chunkSize, total, { dropAfter: 5 * MiB });
    const err = await downloadArtifactToBlob(db, s.rest, PATH, 'pulled-2', { chunkSize }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(MlflowRestError);
    expect((err as MlflowRestError).errorCode).toBe('NETWORK_ERROR');
    expect((err as Error).message).toContain(
      `The download of '${PATH}' from http://127.0.0.1:5999 stopped after ${5 * MiB} of ${total} bytes`,
    );
    expect(await leftovers(db)).toEqual([0, 0]);
  });

  it('refuses a body shorter than its Content-Length, leaving nothing behind', async () => {
    const db = await openDatabase({ name: 'pull-stream-short' });
    const s = serve(db, MiB, 3 * MiB, { announce: 4 * MiB });
    const err = await downloadArtifactToBlob(db, s.rest, PATH, 'pulled-3', {
      chunkSize: MiB,
    }).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(
      /stopped after 3145728 of 4194304 bytes \(the connection closed early\)/,
    );
    expect(await leftovers(db)).toEqual([0, 0]);
  });

  it('stops and cleans up when cancelled', async () => {
    const db = await openDatabase({ name: 'pull-stream-cancel' });
    const s = serve(db, MiB, 8 * MiB);
    const ctl = new AbortController();
    const err = await downloadArtifactToBlob(db, s.rest, PATH, 'pulled-4', {
      chunkSize: MiB,
      signal: ctl.signal,
      onBytes: (n) => {
        if (n >= 3 * MiB) ctl.abort();
      },
    }).catch((e: unknown) => e);
    expect((err as Error).name).toBe('AbortError');
    expect(await leftovers(db)).toEqual([0, 0]);
  });
});
