import { Deflate } from 'fflate';
import { crc32 } from './crc32.ts';
import { checkEntryPath } from './paths.ts';

/**
 * Writes a zip as a stream of byte chunks: entries are written one after another with data
 * descriptors (sizes and CRC follow the data), so nothing needs to be held whole; zip64 records
 * are added when an entry, an offset or the entry count passes the 32/16-bit limits. Python's
 * zipfile (and so MLflow) reads the result.
 */

export interface ZipWriteEntry {
  path: string;
  /** Absent for a directory entry. */
  data?: Uint8Array | Blob | AsyncIterable<Uint8Array>;
  /** The uncompressed size when known: entries of 4 GiB and more need it up front (zip64). */
  size?: number;
  /** Deflate the entry (default: when its known size is at most 16 MiB). */
  compress?: boolean;
  modified?: Date;
}

const ZIP64_LIMIT = 0xffffffff;
const PIECE = 4 * 2 ** 20;

interface CentralRecord {
  name: Uint8Array;
  flags: number;
  method: number;
  dosTime: number;
  dosDate: number;
  crc: number;
  csize: number;
  usize: number;
  offset: number;
  isDirectory: boolean;
  zip64Local: boolean;
}

class Bytes {
  private readonly buf: Uint8Array;
  private readonly view: DataView;
  private o = 0;
  constructor(n: number) {
    this.buf = new Uint8Array(n);
    this.view = new DataView(this.buf.buffer);
  }
  u16(v: number): this {
    this.view.setUint16(this.o, v, true);
    this.o += 2;
    return this;
  }
  u32(v: number): this {
    this.view.setUint32(this.o, v >>> 0, true);
    this.o += 4;
    return this;
  }
  u64(v: number): this {
    this.view.setUint32(this.o, v % 2 ** 32, true);
    this.view.setUint32(this.o + 4, Math.floor(v / 2 ** 32), true);
    this.o += 8;
    return this;
  }
  bytes(b: Uint8Array): this {
    this.buf.set(b, this.o);
    this.o += b.length;
    return this;
  }
  done(): Uint8Array {
    return this.buf;
  }
}

function dos(d: Date): { time: number; date: number } {
  const year = Math.max(1980, d.getFullYear());
  return {
    time: (d.getHours() << 11) | (d.getMinutes() << 5) | Math.floor(d.getSeconds() / 2),
    date: ((year - 1980) << 9) | ((d.getMonth() + 1) << 5) | d.getDate(),
  };
}

async function* pieces(data: ZipWriteEntry['data']): AsyncGenerator<Uint8Array> {
  if (data === undefined) return;
  if (data instanceof Uint8Array) {
    yield data;
  } else if (data instanceof Blob) {
    for (let off = 0; off < data.size; off += PIECE) {
      yield new Uint8Array(await data.slice(off, off + PIECE).arrayBuffer());
    }
  } else {
    yield* data;
  }
}

const encoder = new TextEncoder();

export async function* writeZip(
  entries: Iterable<ZipWriteEntry> | AsyncIterable<ZipWriteEntry>,
): AsyncGenerator<Uint8Array> {
  const records: CentralRecord[] = [];
  let offset = 0;
  const seen = new Set<string>();
  for await (const e of entries) {
    const isDirectory = e.data === undefined;
    const clean = checkEntryPath(e.path);
    const path = isDirectory ? clean + '/' : clean;
    if (seen.has(path)) throw new Error(`Duplicate zip entry '${path}'`);
    seen.add(path);
    const name = encoder.encode(path);
    const size =
      e.size ??
      (e.data instanceof Uint8Array
        ? e.data.length
        : e.data instanceof Blob
          ? e.data.size
          : undefined);
    const compress = !isDirectory && (e.compress ?? (size !== undefined && size <= 16 * 2 ** 20));
    const zip64Local = size !== undefined && size >= ZIP64_LIMIT;
    const { time, date } = dos(e.modified ?? new Date());
    // Bit 3: sizes and CRC in a data descriptor after the data; bit 11: UTF-8 names.
    const flags = (isDirectory ? 0 : 0x8) | 0x800;
    const method = compress ? 8 : 0;
    const local = new Bytes(30 + name.length + (zip64Local ? 20 : 0))
      .u32(0x04034b50)
      .u16(zip64Local ? 45 : 20)
      .u16(flags)
      .u16(method)
      .u16(time)
      .u16(date)
      .u32(0)
      .u32(zip64Local ? ZIP64_LIMIT : 0)
      .u32(zip64Local ? ZIP64_LIMIT : 0)
      .u16(name.length)
      .u16(zip64Local ? 20 : 0)
      .bytes(name);
    if (zip64Local) local.u16(0x0001).u16(16).u64(0).u64(0);
    const header = local.done();
    const rec: CentralRecord = {
      name,
      flags,
      method,
      dosTime: time,
      dosDate: date,
      crc: 0,
      csize: 0,
      usize: 0,
      offset,
      isDirectory,
      zip64Local,
    };
    yield header;
    offset += header.length;

    if (!isDirectory) {
      let crc = 0;
      let usize = 0;
      let csize = 0;
      if (compress) {
        const out: Uint8Array[] = [];
        const deflater = new Deflate({ level: 6 }, (chunk) => out.push(chunk));
        for await (const piece of pieces(e.data)) {
          crc = crc32(piece, crc);
          usize += piece.length;
          deflater.push(piece, false);
          while (out.length > 0) {
            const c = out.shift()!;
            csize += c.length;
            yield c;
          }
        }
        deflater.push(new Uint8Array(0), true);
        for (const c of out) {
          csize += c.length;
          yield c;
        }
      } else {
        for await (const piece of pieces(e.data)) {
          crc = crc32(piece, crc);
          usize += piece.length;
          csize += piece.length;
          yield piece;
        }
      }
      if (!zip64Local && (usize >= ZIP64_LIMIT || csize >= ZIP64_LIMIT)) {
        throw new Error(`Zip entry '${path}' is 4 GiB or more: give its size up front`);
      }
      if (size !== undefined && usize !== size) {
        throw new Error(`Zip entry '${path}' had ${usize} bytes, ${size} were announced`);
      }
      const desc = zip64Local
        ? new Bytes(24).u32(0x08074b50).u32(crc).u64(csize).u64(usize).done()
        : new Bytes(16).u32(0x08074b50).u32(crc).u32(csize).u32(usize).done();
      yield desc;
      offset += csize + desc.length;
      rec.crc = crc;
      rec.csize = csize;
      rec.usize = usize;
    }
    records.push(rec);
  }

  const cdStart = offset;
  for (const r of records) {
    const big = [
      r.usize >= ZIP64_LIMIT || r.zip64Local,
      r.csize >= ZIP64_LIMIT || r.zip64Local,
      r.offset >= ZIP64_LIMIT,
    ];
    const extraLen = big.some(Boolean) ? 4 + 8 * big.filter(Boolean).length : 0;
    const b = new Bytes(46 + r.name.length + extraLen)
      .u32(0x02014b50)
      .u16((3 << 8) | (extraLen ? 45 : 20))
      .u16(extraLen ? 45 : 20)
      .u16(r.flags)
      .u16(r.method)
      .u16(r.dosTime)
      .u16(r.dosDate)
      .u32(r.crc)
      .u32(big[1] ? ZIP64_LIMIT : r.csize)
      .u32(big[0] ? ZIP64_LIMIT : r.usize)
      .u16(r.name.length)
      .u16(extraLen)
      .u16(0)
      .u16(0)
      .u16(0)
      // Unix permissions rw-r--r-- (files) or rwxr-xr-x plus the MS-DOS directory bit.
      .u32(r.isDirectory ? ((0o40755 << 16) | 0x10) >>> 0 : (0o100644 << 16) >>> 0)
      .u32(big[2] ? ZIP64_LIMIT : r.offset)
      .bytes(r.name);
    if (extraLen) {
      b.u16(0x0001).u16(extraLen - 4);
      if (big[0]) b.u64(r.usize);
      if (big[1]) b.u64(r.csize);
      if (big[2]) b.u64(r.offset);
    }
    const bytes = b.done();
    offset += bytes.length;
    yield bytes;
  }
  const cdSize = offset - cdStart;
  const needs64 = records.length >= 0xffff || cdStart >= ZIP64_LIMIT || cdSize >= ZIP64_LIMIT;
  if (needs64) {
    const rec64At = offset;
    yield new Bytes(56)
      .u32(0x06064b50)
      .u64(44)
      .u16((3 << 8) | 45)
      .u16(45)
      .u32(0)
      .u32(0)
      .u64(records.length)
      .u64(records.length)
      .u64(cdSize)
      .u64(cdStart)
      .done();
    yield new Bytes(20).u32(0x07064b50).u32(0).u64(rec64At).u32(1).done();
  }
  yield new Bytes(22)
    .u32(0x06054b50)
    .u16(0)
    .u16(0)
    .u16(needs64 ? 0xffff : records.length)
    .u16(needs64 ? 0xffff : records.length)
    .u32(needs64 ? ZIP64_LIMIT : cdSize)
    .u32(needs64 ? ZIP64_LIMIT : cdStart)
    .u16(0)
    .done();
}

/** Collects a zip stream into a Blob (in browsers, large Blobs are kept out of the JS heap). */
export async function zipToBlob(
  entries: Iterable<ZipWriteEntry> | AsyncIterable<ZipWriteEntry>,
  type = 'application/zip',
): Promise<Blob> {
  const parts: BlobPart[] = [];
  for await (const c of writeZip(entries)) parts.push(c as BlobPart);
  return new Blob(parts, { type });
}
