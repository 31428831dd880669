// Property-based tests of the zip readers (the streaming reader in src/lib/archive and the
// guarded in-memory unzip of the mlruns import): any bytes either read or fail with the reader's
// own error type (ArchiveError, MlflowError), and what the writer writes reads back byte for byte.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { zipSync } from 'fflate';
import {
  ArchiveError,
  openZip,
  readEntryBytes,
  writeZip,
  type ZipWriteEntry,
} from '../../src/lib/archive/index.ts';
import { unzipGuarded } from '../../src/lib/services/mlruns-io.ts';
import { MlflowError } from '../../src/lib/mlflow/errors.ts';

async function collect(gen: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const p of gen) parts.push(p);
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Opens a zip and reads every entry; returns path -> bytes, or throws. */
async function readAll(bytes: Uint8Array): Promise<Map<string, Uint8Array>> {
  const zip = await openZip(new Blob([bytes as BlobPart]), {
    fileName: 'fuzz.zip',
    limits: {
      maxEntries: 64,
      maxTotalSize: 4 * 2 ** 20,
      maxEntrySize: 2 ** 20,
      maxRatio: 200,
      ratioMinSize: 1024,
    },
  });
  const out = new Map<string, Uint8Array>();
  for (const e of zip.entries) if (!e.isDirectory) out.set(e.path, await readEntryBytes(e));
  return out;
}

async function onlyArchiveErrors(bytes: Uint8Array): Promise<void> {
  try {
    await readAll(bytes);
  } catch (e) {
    if (e instanceof ArchiveError) return;
    throw new Error(`undocumented ${(e as Error)?.name}: ${(e as Error)?.message}`, { cause: e });
  }
}

function onlyMlflowErrors(bytes: Uint8Array): void {
  try {
    unzipGuarded(bytes, { maxEntries: 64, maxTotalBytes: 4 * 2 ** 20, maxEntryBytes: 2 ** 20 });
  } catch (e) {
    if (e instanceof MlflowError) return;
    throw new Error(`undocumented ${(e as Error)?.name}: ${(e as Error)?.message}`, { cause: e });
  }
}

const segment = fc
  .stringMatching(/^[A-Za-z0-9_][A-Za-z0-9_.\- ]{0,8}$/)
  .filter((s) => s !== '.' && s !== '..');
const entryPath = fc.array(segment, { minLength: 1, maxLength: 3 }).map((p) => p.join('/'));
const content = fc.oneof(
  fc.uint8Array({ maxLength: 300 }),
  fc.string({ maxLength: 200 }).map((s) => new TextEncoder().encode(s.repeat(5))),
);
const tree = fc
  .uniqueArray(fc.tuple(entryPath, content, fc.boolean()), {
    minLength: 1,
    maxLength: 6,
    selector: ([p]) => p.toLowerCase(),
  })
  // A path may not be both a file and the folder of another file.
  .filter((files) =>
    files.every(([a]) =>
      files.every(([b]) => a === b || !b.toLowerCase().startsWith(a.toLowerCase() + '/')),
    ),
  );

describe('zip writer and reader agree', () => {
  it('writeZip then openZip gives every file back byte for byte (stored and deflated)', async () => {
    await fc.assert(
      fc.asyncProperty(tree, async (files) => {
        const entries: ZipWriteEntry[] = files.map(([path, data, compress]) => ({
          path,
          data,
          compress,
        }));
        const zip = await collect(writeZip(entries));
        const back = await readAll(zip);
        expect([...back.keys()].sort()).toEqual(files.map(([p]) => p).sort());
        for (const [p, data] of files) expect(back.get(p)).toEqual(data);
        // The mlruns importer's reader agrees on the same bytes.
        const guarded = unzipGuarded(zip);
        for (const [p, data] of files) expect(guarded.get(p)).toEqual(data);
      }),
      { numRuns: 100 },
    );
  });
});

describe('zip readers under hostile bytes', () => {
  it('arbitrary bytes: only ArchiveError / MlflowError', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 400 }), async (bytes) => {
        await onlyArchiveErrors(bytes);
        onlyMlflowErrors(bytes);
      }),
      { numRuns: 300 },
    );
  });

  it('a valid zip with bytes flipped, cut or spliced: only the documented errors', async () => {
    const base = await collect(
      writeZip([
        { path: 'MLmodel', data: new TextEncoder().encode('flavors: {}\n'.repeat(40)) },
        {
          path: 'model/weights.bin',
          data: new Uint8Array(2000).map((_, i) => (i * 31) & 255),
          compress: false,
        },
        { path: 'model/config.json', data: new TextEncoder().encode('{"a": 1}') },
      ]),
    );
    const fflateBase = zipSync({
      'mlruns/0/meta.yaml': new TextEncoder().encode('name: Default\n'.repeat(30)),
    });
    const mutation = fc.oneof(
      fc
        .array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 })
        .map((flips) => (b: Uint8Array) => {
          const c = b.slice();
          for (const [i, v] of flips) c[i % c.length] = v;
          return c;
        }),
      fc.nat().map((n) => (b: Uint8Array) => b.slice(0, n % b.length)),
      fc.tuple(fc.nat(), fc.uint8Array({ maxLength: 64 })).map(([at, junk]) => (b: Uint8Array) => {
        const i = at % b.length;
        const c = new Uint8Array(b.length + junk.length);
        c.set(b.subarray(0, i));
        c.set(junk, i);
        c.set(b.subarray(i), i + junk.length);
        return c;
      }),
    );
    await fc.assert(
      fc.asyncProperty(mutation, fc.boolean(), async (mutate, useFflate) => {
        const bytes = mutate(useFflate ? fflateBase : base);
        await onlyArchiveErrors(bytes);
        onlyMlflowErrors(bytes);
      }),
      { numRuns: 400 },
    );
  });

  it('hostile entry names are refused before anything is read', async () => {
    const names = fc.constantFrom(
      '../evil',
      '/etc/passwd',
      'a/../../b',
      'C:/x',
      'a\\..\\b',
      'a\u0000b',
    );
    await fc.assert(
      fc.asyncProperty(names, async (name) => {
        const zip = zipSync({ [name]: new Uint8Array([1, 2, 3]) });
        await expect(readAll(zip)).rejects.toBeInstanceOf(ArchiveError);
        expect(() => unzipGuarded(zip)).toThrow(MlflowError);
      }),
      { numRuns: 20 },
    );
  });
});
