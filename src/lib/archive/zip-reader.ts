import { Inflate } from 'fflate';
import { crc32 } from './crc32.ts';
import {
  ArchiveLimitError,
  CorruptArchiveError,
  DuplicateEntryError,
  NotAZipError,
  TruncatedArchiveError,
  UnsupportedArchiveError,
} from './errors.ts';
import { checkEntryPath } from './paths.ts';
import {
  DEFAULT_LIMITS,
  type ArchiveEntry,
  type ArchiveLimits,
  type ArchiveSource,
} from './types.ts';

/**
 * Reads a zip from a Blob (or File) through its central directory: only the directory and one
 * slice of entry data at a time are in memory, so multi-GB archives import with bounded memory.
 * Every guard (paths, counts, sizes, ratios, duplicates) runs on the directory, before any
 * entry is read; sizes and CRCs are checked again while the bytes stream.
 */

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_EOCD64_LOCATOR = 0x07064b50;
const MAX_COMMENT = 0xffff;
const READ_SLICE = 4 * 2 ** 20;
/** Input fed to the inflater per step: bounds the output of one step even for high ratios. */
const INFLATE_STEP = 256 * 1024;

export interface ZipEntry extends ArchiveEntry {
  method: number;
  compressedSize: number;
  crc32: number;
  localHeaderOffset: number;
}

export interface ZipArchive extends ArchiveSource {
  entries: ZipEntry[];
}

async function bytesAt(blob: Blob, start: number, end: number): Promise<Uint8Array> {
  return new Uint8Array(await blob.slice(start, end).arrayBuffer());
}

function u16(b: Uint8Array, o: number): number {
  return b[o]! | (b[o + 1]! << 8);
}
function u32(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
}
function u64(b: Uint8Array, o: number): number {
  return u32(b, o) + u32(b, o + 4) * 2 ** 32;
}

const utf8 = new TextDecoder('utf-8');
// Names without the UTF-8 flag are CP437 by the spec; in practice non-ASCII names come flagged.
const latin1 = new TextDecoder('latin1');

export interface OpenZipOptions {
  limits?: Partial<ArchiveLimits>;
  /** For messages: the file name the user picked. */
  fileName?: string;
}

/** Reads and checks the directory of a zip. Throws an ArchiveError subclass when refused. */
export async function openZip(blob: Blob, opts: OpenZipOptions = {}): Promise<ZipArchive> {
  const limits = { ...DEFAULT_LIMITS, ...opts.limits };
  const size = blob.size;
  const head = await bytesAt(blob, 0, Math.min(4, size));
  const startsLikeZip =
    head.length === 4 && (u32(head, 0) === SIG_LOCAL || u32(head, 0) === SIG_EOCD);

  // The end-of-central-directory record sits in the last 22 + comment bytes.
  const tailStart = Math.max(0, size - (22 + MAX_COMMENT));
  const tail = await bytesAt(blob, tailStart, size);
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (u32(tail, i) === SIG_EOCD && i + 22 + u16(tail, i + 20) <= tail.length) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) {
    if (startsLikeZip) throw new TruncatedArchiveError('its end (the zip directory) is missing');
    throw new NotAZipError(opts.fileName);
  }
  let count = u16(tail, eocd + 10);
  let cdSize = u32(tail, eocd + 12);
  let cdOffset = u32(tail, eocd + 16);
  const eocdAbs = tailStart + eocd;

  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    // Zip64: the locator sits right before the EOCD and points at the 64-bit record.
    if (eocdAbs < 20) throw new CorruptArchiveError('the zip64 locator is missing');
    const loc = await bytesAt(blob, eocdAbs - 20, eocdAbs);
    if (u32(loc, 0) !== SIG_EOCD64_LOCATOR)
      throw new CorruptArchiveError('the zip64 locator is missing');
    const rec64Offset = u64(loc, 8);
    if (rec64Offset + 56 > size)
      throw new TruncatedArchiveError('the zip64 directory record lies past the end');
    const rec = await bytesAt(blob, rec64Offset, rec64Offset + 56);
    if (u32(rec, 0) !== SIG_EOCD64)
      throw new CorruptArchiveError('the zip64 directory record is missing');
    count = u64(rec, 32);
    cdSize = u64(rec, 40);
    cdOffset = u64(rec, 48);
  }
  if (count > limits.maxEntries) {
    throw new ArchiveLimitError(
      'entry-count',
      `The archive has ${count} entries; at most ${limits.maxEntries} are accepted.`,
    );
  }
  if (cdOffset + cdSize > size) {
    throw new TruncatedArchiveError('the zip directory lies past the end of the file');
  }
  const cd = await bytesAt(blob, cdOffset, cdOffset + cdSize);
  const entries: ZipEntry[] = [];
  const seen = new Set<string>();
  let total = 0;
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cd.length || u32(cd, p) !== SIG_CENTRAL) {
      throw new CorruptArchiveError(`directory record ${i + 1} of ${count} is damaged`);
    }
    const flags = u16(cd, p + 8);
    const method = u16(cd, p + 10);
    const crc = u32(cd, p + 16);
    let csize = u32(cd, p + 20);
    let usize = u32(cd, p + 24);
    const nameLen = u16(cd, p + 28);
    const extraLen = u16(cd, p + 30);
    const commentLen = u16(cd, p + 32);
    const madeBy = u16(cd, p + 4) >> 8;
    const extAttr = u32(cd, p + 38);
    let offset = u32(cd, p + 42);
    const nameBytes = cd.subarray(p + 46, p + 46 + nameLen);
    const rawName = (flags & 0x800 ? utf8 : latin1).decode(nameBytes);
    const extra = cd.subarray(p + 46 + nameLen, p + 46 + nameLen + extraLen);
    // Zip64 extra field: only the values that overflowed are present, in this order.
    for (let e = 0; e + 4 <= extra.length;) {
      const id = u16(extra, e);
      const len = u16(extra, e + 2);
      if (id === 0x0001) {
        let q = e + 4;
        if (usize === 0xffffffff) ((usize = u64(extra, q)), (q += 8));
        if (csize === 0xffffffff) ((csize = u64(extra, q)), (q += 8));
        if (offset === 0xffffffff) offset = u64(extra, q);
      }
      e += 4 + len;
    }
    p += 46 + nameLen + extraLen + commentLen;

    const isDirectory = rawName.endsWith('/');
    const path = checkEntryPath(rawName);
    if (seen.has(path)) throw new DuplicateEntryError(path);
    seen.add(path);
    if (flags & 0x1) throw new UnsupportedArchiveError(path, 'encryption');
    // Unix mode in the high 16 bits: 0o120000 is a symbolic link.
    if (madeBy === 3 && ((extAttr >>> 16) & 0o170000) === 0o120000) {
      throw new UnsupportedArchiveError(path, 'a symbolic link');
    }
    if (!isDirectory && method !== 0 && method !== 8) {
      throw new UnsupportedArchiveError(path, `compression method ${method}`);
    }
    if (usize > limits.maxEntrySize) {
      throw new ArchiveLimitError(
        'entry-size',
        `Entry '${path}' is ${usize} bytes uncompressed; at most ${limits.maxEntrySize} are accepted per entry.`,
        path,
      );
    }
    if (usize >= limits.ratioMinSize && usize > limits.maxRatio * Math.max(csize, 1)) {
      throw new ArchiveLimitError(
        'compression-ratio',
        `Entry '${path}' expands ${Math.round(usize / Math.max(csize, 1))}-fold (${csize} -> ${usize} bytes); at most ${limits.maxRatio}-fold is accepted (a zip bomb?).`,
        path,
      );
    }
    total += usize;
    if (total > limits.maxTotalSize) {
      throw new ArchiveLimitError(
        'total-size',
        `The archive expands to more than ${limits.maxTotalSize} bytes (at entry '${path}'); that is over the limit.`,
        path,
      );
    }
    if (offset + 30 + csize > cdOffset) {
      throw new CorruptArchiveError('its data overlaps the zip directory', path);
    }
    const entry: ZipEntry = {
      path,
      isDirectory,
      size: usize,
      method,
      compressedSize: csize,
      crc32: crc,
      localHeaderOffset: offset,
      open: () => readEntry(blob, entry),
    };
    entries.push(entry);
  }
  return { entries, totalSize: total };
}

/** Streams one entry's bytes, checking the local header, the size and the CRC. */
async function* readEntry(blob: Blob, entry: ZipEntry): AsyncGenerator<Uint8Array> {
  if (entry.isDirectory) return;
  const { path } = entry;
  if (entry.localHeaderOffset + 30 > blob.size) {
    throw new TruncatedArchiveError(`entry '${path}' lies past the end of the file`, path);
  }
  const lh = await bytesAt(blob, entry.localHeaderOffset, entry.localHeaderOffset + 30);
  if (u32(lh, 0) !== SIG_LOCAL) throw new CorruptArchiveError('its local header is missing', path);
  const dataStart = entry.localHeaderOffset + 30 + u16(lh, 26) + u16(lh, 28);
  const dataEnd = dataStart + entry.compressedSize;
  if (dataEnd > blob.size) {
    throw new TruncatedArchiveError(`entry '${path}' is cut off`, path);
  }
  let crc = 0;
  let produced = 0;
  const check = (chunk: Uint8Array) => {
    produced += chunk.length;
    if (produced > entry.size) {
      throw new CorruptArchiveError(
        `it expands past its declared size of ${entry.size} bytes`,
        path,
      );
    }
    crc = crc32(chunk, crc);
  };

  if (entry.method === 0) {
    if (entry.compressedSize !== entry.size) {
      throw new CorruptArchiveError(
        'a stored entry has different compressed and uncompressed sizes',
        path,
      );
    }
    for (let off = dataStart; off < dataEnd; off += READ_SLICE) {
      const chunk = await bytesAt(blob, off, Math.min(dataEnd, off + READ_SLICE));
      check(chunk);
      yield chunk;
    }
  } else {
    const out: Uint8Array[] = [];
    let ended = false;
    const inflater = new Inflate((chunk, final) => {
      out.push(chunk);
      if (final) ended = true;
    });
    for (let off = dataStart; off < dataEnd; off += READ_SLICE) {
      const slice = await bytesAt(blob, off, Math.min(dataEnd, off + READ_SLICE));
      for (let s = 0; s < slice.length; s += INFLATE_STEP) {
        const last = off + READ_SLICE >= dataEnd && s + INFLATE_STEP >= slice.length;
        try {
          inflater.push(slice.subarray(s, s + INFLATE_STEP), last);
        } catch (e) {
          throw new CorruptArchiveError(
            `its compressed data does not decode (${(e as Error).message})`,
            path,
          );
        }
        while (out.length > 0) {
          const chunk = out.shift()!;
          check(chunk);
          if (chunk.length > 0) yield chunk;
        }
      }
    }
    if (entry.compressedSize === 0) {
      try {
        inflater.push(new Uint8Array(0), true);
      } catch (e) {
        throw new CorruptArchiveError(
          `its compressed data does not decode (${(e as Error).message})`,
          path,
        );
      }
    }
    for (const chunk of out) check(chunk);
    if (!ended && entry.size > 0)
      throw new CorruptArchiveError('its compressed data ends early', path);
  }
  if (produced !== entry.size) {
    throw new CorruptArchiveError(`it has ${produced} bytes, its header says ${entry.size}`, path);
  }
  if (crc !== entry.crc32)
    throw new CorruptArchiveError('its CRC-32 checksum does not match', path);
}

/** Reads a whole entry into memory: only for small files (MLmodel, JSON, YAML). */
export async function readEntryBytes(
  entry: ArchiveEntry,
  maxBytes = 64 * 2 ** 20,
): Promise<Uint8Array> {
  if (entry.size > maxBytes) {
    throw new ArchiveLimitError(
      'entry-size',
      `Entry '${entry.path}' is too large to read into memory (${entry.size} bytes).`,
      entry.path,
    );
  }
  const out = new Uint8Array(entry.size);
  let o = 0;
  for await (const c of entry.open()) {
    if (o + c.length > out.length)
      throw new CorruptArchiveError('it is longer than declared', entry.path);
    out.set(c, o);
    o += c.length;
  }
  return o === out.length ? out : out.subarray(0, o);
}

export async function readEntryText(entry: ArchiveEntry): Promise<string> {
  return new TextDecoder('utf-8').decode(await readEntryBytes(entry));
}
