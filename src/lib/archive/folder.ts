import { ArchiveLimitError, DuplicateEntryError } from './errors.ts';
import { checkEntryPath } from './paths.ts';
import {
  DEFAULT_LIMITS,
  type ArchiveEntry,
  type ArchiveLimits,
  type ArchiveSource,
} from './types.ts';

/**
 * A dropped or picked folder as an archive source: each File with its relative path (from
 * `webkitRelativePath` or given), the same path and size guards as a zip.
 */
export interface FolderFile {
  file: Blob;
  /** Relative path with '/' separators; defaults to the File's webkitRelativePath or name. */
  path?: string;
}

const PIECE = 8 * 2 ** 20;

function relativePath(f: FolderFile): string {
  if (f.path !== undefined) return f.path;
  const file = f.file as File & { webkitRelativePath?: string };
  return file.webkitRelativePath || file.name;
}

export function openFolder(
  files: Array<FolderFile | File>,
  limits: Partial<ArchiveLimits> = {},
): ArchiveSource {
  const lim = { ...DEFAULT_LIMITS, ...limits };
  if (files.length > lim.maxEntries) {
    throw new ArchiveLimitError(
      'entry-count',
      `The folder has ${files.length} files; at most ${lim.maxEntries} are accepted.`,
    );
  }
  const seen = new Set<string>();
  let total = 0;
  const entries: ArchiveEntry[] = files.map((x) => {
    const f: FolderFile = x instanceof Blob ? { file: x } : x;
    const path = checkEntryPath(relativePath(f));
    if (seen.has(path)) throw new DuplicateEntryError(path);
    seen.add(path);
    const blob = f.file;
    if (blob.size > lim.maxEntrySize) {
      throw new ArchiveLimitError(
        'entry-size',
        `File '${path}' is ${blob.size} bytes; at most ${lim.maxEntrySize} are accepted per file.`,
        path,
      );
    }
    total += blob.size;
    if (total > lim.maxTotalSize) {
      throw new ArchiveLimitError(
        'total-size',
        `The folder holds more than ${lim.maxTotalSize} bytes (at '${path}').`,
        path,
      );
    }
    return {
      path,
      isDirectory: false,
      size: blob.size,
      async *open() {
        for (let off = 0; off < blob.size; off += PIECE) {
          yield new Uint8Array(await blob.slice(off, off + PIECE).arrayBuffer());
        }
      },
    };
  });
  return { entries, totalSize: total };
}
