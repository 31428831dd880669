import { describe, expect, it } from 'vitest';
import { unzipSync, zipSync, strToU8 } from 'fflate';
import {
  ArchiveLimitError,
  CorruptArchiveError,
  DuplicateEntryError,
  NotAZipError,
  TruncatedArchiveError,
  UnsafePathError,
  openFolder,
  openZip,
  readEntryBytes,
  writeZip,
  zipToBlob,
  crc32,
  type ArchiveSource,
} from '../../src/lib/archive/index.ts';

const blobOf = (b: Uint8Array) => new Blob([b as BlobPart]);
// Vitest's deep equality walks typed arrays element by element: compare big ones as buffers.
const same = (a: Uint8Array | undefined, b: Uint8Array) =>
  a !== undefined && Buffer.compare(a, b) === 0;

async function readAll(src: ArchiveSource): Promise<Record<string, Uint8Array>> {
  const out: Record<string, Uint8Array> = {};
  for (const e of src.entries) if (!e.isDirectory) out[e.path] = await readEntryBytes(e);
  return out;
}

/** A zip whose one entry has a name fflate would not let us choose (backslashes, drive letters). */
function zipWithName(name: string): Uint8Array {
  const placeholder = 'x'.repeat(name.length);
  const bytes = zipSync({ [placeholder]: strToU8('hi') });
  const enc = new TextEncoder().encode(name);
  const ph = new TextEncoder().encode(placeholder);
  // Replace every occurrence (local header and central directory) of the placeholder name.
  for (let i = 0; i + ph.length <= bytes.length; i++) {
    if (ph.every((b, k) => bytes[i + k] === b)) bytes.set(enc, i);
  }
  return bytes;
}

describe('reading a zip', () => {
  it('reads entries of a zip built by another writer, stored and deflated', async () => {
    const big = new Uint8Array(3_000_000).map((_, i) => (i * 7919) & 0xff);
    const bytes = zipSync({
      MLmodel: strToU8('flavors: {}\n'),
      'model/weights.onnx.data': [big, { level: 0 }],
      'components/tokenizer/tokenizer.json': strToU8('{"a": 1}'.repeat(1000)),
      'empty/': new Uint8Array(0),
    });
    const zip = await openZip(blobOf(bytes));
    expect(zip.entries.map((e) => e.path)).toEqual([
      'MLmodel',
      'model/weights.onnx.data',
      'components/tokenizer/tokenizer.json',
      'empty',
    ]);
    expect(zip.entries[3]!.isDirectory).toBe(true);
    const files = await readAll(zip);
    expect(same(files['model/weights.onnx.data'], big)).toBe(true);
    expect(new TextDecoder().decode(files['MLmodel'])).toBe('flavors: {}\n');
  });

  it('writes zips that another reader opens, and reads them back', async () => {
    const data = new Uint8Array(5_000_000).map((_, i) => (i * 31) & 0xff);
    async function* stream() {
      for (let o = 0; o < data.length; o += 1_000_000) yield data.subarray(o, o + 1_000_000);
    }
    const blob = await zipToBlob([
      { path: 'MLmodel', data: strToU8('flavors: {}\n') },
      { path: 'artifacts' },
      { path: 'artifacts/model.onnx.data', data: stream(), size: data.length, compress: false },
      { path: 'artifacts/ünïcode.json', data: strToU8('{}') },
    ]);
    const bytes = new Uint8Array(await blob.arrayBuffer());
    const other = unzipSync(bytes);
    expect(same(other['artifacts/model.onnx.data'], data)).toBe(true);
    expect(Object.keys(other)).toContain('artifacts/ünïcode.json');
    const ours = await readAll(await openZip(blob));
    expect(same(ours['artifacts/model.onnx.data'], data)).toBe(true);
    expect(ours['MLmodel']).toEqual(strToU8('flavors: {}\n'));
  });

  it('writes zip64 directories past 65,535 entries and reads them back', async () => {
    const entries = Array.from({ length: 65_600 }, (_, i) => ({
      path: `f/${i}`,
      data: new Uint8Array([i & 0xff]),
      compress: false,
    }));
    const chunks: Uint8Array[] = [];
    for await (const c of writeZip(entries)) chunks.push(c);
    const blob = new Blob(chunks as BlobPart[]);
    const zip = await openZip(blob, { limits: { maxEntries: 100_000 } });
    expect(zip.entries).toHaveLength(65_600);
    expect(await readEntryBytes(zip.entries[65_599]!)).toEqual(new Uint8Array([65_599 & 0xff]));
  });

  it('computes zip CRC-32', () => {
    expect(crc32(strToU8('123456789'))).toBe(0xcbf43926);
    expect(crc32(strToU8('6789'), crc32(strToU8('12345')))).toBe(0xcbf43926);
  });
});

describe('refusing bad archives before anything is read', () => {
  it.each([
    ['../evil.sh', "climbs out of the folder with '..'"],
    ['model/../../etc/passwd', "'..'"],
    ['/etc/passwd', 'absolute'],
    ['C:/Windows/system.ini', 'drive letter'],
    ['model\\..\\evil', 'backslash'],
  ])('refuses the entry path %s', async (name, reason) => {
    const err = await openZip(blobOf(zipWithName(name))).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnsafePathError);
    expect((err as UnsafePathError).entry).toBe(name);
    expect((err as Error).message).toContain(reason);
    expect((err as Error).message).toContain(`'${name}'`);
  });

  it('refuses a bomb-like compression ratio, naming the entry', async () => {
    const bytes = zipSync({ 'model/zeros.bin': [new Uint8Array(20 * 2 ** 20), { level: 9 }] });
    const err = await openZip(blobOf(bytes)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ArchiveLimitError);
    expect((err as ArchiveLimitError).limit).toBe('compression-ratio');
    expect((err as Error).message).toMatch(/^Entry 'model\/zeros.bin' expands \d+-fold/);
  });

  it('refuses more entries than the cap', async () => {
    const many = Object.fromEntries(
      Array.from({ length: 10_001 }, (_, i) => [`f${i}`, new Uint8Array(0)]),
    );
    const err = await openZip(blobOf(zipSync(many))).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ArchiveLimitError);
    expect((err as ArchiveLimitError).limit).toBe('entry-count');
    expect((err as Error).message).toBe(
      'The archive has 10001 entries; at most 10000 are accepted.',
    );
  });

  it('refuses a total size over the cap', async () => {
    const bytes = zipSync({ a: new Uint8Array(600), b: new Uint8Array(600) }, { level: 0 });
    const err = await openZip(blobOf(bytes), { limits: { maxTotalSize: 1000 } }).catch(
      (e: unknown) => e,
    );
    expect((err as ArchiveLimitError).limit).toBe('total-size');
    expect((err as ArchiveLimitError).entry).toBe('b');
  });

  it('tells a truncated archive from a file that is not a zip', async () => {
    const bytes = zipSync(
      { MLmodel: strToU8('flavors: {}\n'), 'w.bin': new Uint8Array(50_000) },
      { level: 0 },
    );
    const cut = await openZip(blobOf(bytes.subarray(0, bytes.length - 200))).catch(
      (e: unknown) => e,
    );
    expect(cut).toBeInstanceOf(TruncatedArchiveError);
    expect((cut as Error).message).toMatch(/^The archive is truncated/);
    const text = await openZip(new Blob(['flavors: {}\n']), { fileName: 'model.zip' }).catch(
      (e: unknown) => e,
    );
    expect(text).toBeInstanceOf(NotAZipError);
    expect((text as Error).message).toBe(
      'model.zip is not a zip archive (no zip signature found).',
    );
    expect(await openZip(new Blob([])).catch((e: unknown) => e)).toBeInstanceOf(NotAZipError);
  });

  it('finds corrupt data when reading, naming the entry', async () => {
    const payload = new Uint8Array(100_000).map((_, i) => (i * i) & 0xff);
    const bytes = zipSync({ 'model/w.bin': [payload, { level: 0 }] });
    bytes[1000] = bytes[1000]! ^ 0xff;
    const zip = await openZip(blobOf(bytes));
    const err = await readEntryBytes(zip.entries[0]!).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CorruptArchiveError);
    expect((err as Error).message).toBe(
      "Entry 'model/w.bin' is corrupt: its CRC-32 checksum does not match.",
    );

    const deflated = zipSync({ 't.json': strToU8('{"k": "v"}'.repeat(5000)) });
    deflated[45] = deflated[45]! ^ 0x5a;
    const z2 = await openZip(blobOf(deflated));
    expect(await readEntryBytes(z2.entries[0]!).catch((e: unknown) => e)).toBeInstanceOf(
      CorruptArchiveError,
    );
  });

  it('refuses duplicate paths', async () => {
    const bytes = zipWithName('ab');
    // Two archives' worth of entries cannot be joined simply; rename one entry of a 2-entry zip.
    const two = zipSync({ ab: strToU8('1'), cd: strToU8('2') });
    const enc = new TextEncoder().encode('ab');
    for (let i = 0; i + 1 < two.length; i++)
      if (two[i] === 0x63 && two[i + 1] === 0x64) two.set(enc, i);
    expect(bytes.length).toBeGreaterThan(0);
    expect(await openZip(blobOf(two)).catch((e: unknown) => e)).toBeInstanceOf(DuplicateEntryError);
  });
});

describe('reading a dropped folder', () => {
  it('gives the files with their relative paths and applies the same guards', async () => {
    const src = openFolder([
      { file: new Blob(['flavors: {}\n']), path: 'MLmodel' },
      { file: new Blob([new Uint8Array(10)]), path: 'artifacts/x.bin' },
    ]);
    expect(src.totalSize).toBe(22);
    expect(new TextDecoder().decode((await readAll(src))['MLmodel'])).toBe('flavors: {}\n');
    expect(() => openFolder([{ file: new Blob(['x']), path: '../x' }])).toThrow(UnsafePathError);
    expect(() =>
      openFolder([
        { file: new Blob(['x']), path: 'a' },
        { file: new Blob(['y']), path: 'a' },
      ]),
    ).toThrow(DuplicateEntryError);
  });
});
