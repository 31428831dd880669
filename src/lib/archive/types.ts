/** What both a zip and a dropped folder give the importer: checked paths and lazy byte streams. */
export interface ArchiveEntry {
  /** '/'-separated, relative, checked (no '..', no absolute, no backslash). */
  path: string;
  isDirectory: boolean;
  /** Uncompressed size in bytes. */
  size: number;
  /** Reads the entry's bytes; a zip entry verifies its size and CRC as it goes. */
  open(): AsyncIterable<Uint8Array>;
}

export interface ArchiveSource {
  entries: ArchiveEntry[];
  totalSize: number;
}

export interface ArchiveLimits {
  /** Most entries accepted (default 10,000). */
  maxEntries: number;
  /** Most bytes accepted after decompression, all entries together (default 16 GiB). */
  maxTotalSize: number;
  /** Most bytes for one entry (default 8 GiB). */
  maxEntrySize: number;
  /** Most uncompressed/compressed for one entry (default 200; weights are ~1, text ~5-20). */
  maxRatio: number;
  /** Entries smaller than this are not ratio-checked: they cannot be bombs (default 1 MiB). */
  ratioMinSize: number;
}

export const DEFAULT_LIMITS: ArchiveLimits = {
  maxEntries: 10_000,
  maxTotalSize: 16 * 2 ** 30,
  maxEntrySize: 8 * 2 ** 30,
  maxRatio: 200,
  ratioMinSize: 2 ** 20,
};
