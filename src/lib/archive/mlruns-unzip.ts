/**
 * The guarded unzip of an mlruns zip (fflate), usable on any thread: the guards run on the
 * central directory before anything is inflated: entry names (traversal, absolute, backslash,
 * drive letters, NUL), entry count, sizes and ratios. Errors are MlflowError
 * (INVALID_PARAMETER_VALUE) naming the entry and the limit.
 */
import { unzipSync } from 'fflate';
import { MlflowError } from '../mlflow/errors.ts';

export interface ZipLimits {
  /** Most entries a zip may have. */
  maxEntries: number;
  /** Most uncompressed bytes in all. */
  maxTotalBytes: number;
  /** Most uncompressed bytes of one entry. */
  maxEntryBytes: number;
  /** Highest uncompressed/compressed ratio of an entry bigger than 1 MiB (zip bombs). */
  maxRatio: number;
}

export const DEFAULT_ZIP_LIMITS: ZipLimits = {
  maxEntries: 200_000,
  maxTotalBytes: 2 * 1024 ** 3,
  maxEntryBytes: 1024 ** 3,
  maxRatio: 1000,
};

function unsafeEntry(name: string): string | null {
  if (name.includes('\\')) return 'contains a backslash';
  if (name.startsWith('/')) return 'is an absolute path';
  if (/^[A-Za-z]:/.test(name)) return 'starts with a drive letter';
  if (name.includes('\0')) return 'contains a NUL character';
  if (name.split('/').some((p) => p === '..')) return "contains a '..' segment";
  return null;
}

export function zipError(message: string): MlflowError {
  return new MlflowError('INVALID_PARAMETER_VALUE', message);
}

/** Unzips on the calling thread. See the module comment for the guards. */
export function unzipGuardedSync(
  zip: Uint8Array,
  limits: Partial<ZipLimits> = {},
): Map<string, Uint8Array> {
  const lim = { ...DEFAULT_ZIP_LIMITS, ...limits };
  let entries = 0;
  let total = 0;
  const declared = new Map<string, number>();
  let raw: Record<string, Uint8Array>;
  try {
    raw = unzipSync(zip, {
      filter(file) {
        const why = unsafeEntry(file.name);
        if (why) throw zipError(`Zip entry '${file.name}' ${why}; refusing to import.`);
        if (file.name.endsWith('/') || file.name.startsWith('__MACOSX/')) return false;
        entries++;
        if (entries > lim.maxEntries)
          throw zipError(`The zip has more than ${lim.maxEntries} files.`);
        if (file.originalSize > lim.maxEntryBytes) {
          throw zipError(
            `Zip entry '${file.name}' is ${file.originalSize} bytes, over the ${lim.maxEntryBytes}-byte limit.`,
          );
        }
        total += file.originalSize;
        if (total > lim.maxTotalBytes)
          throw zipError(`The zip unpacks to more than ${lim.maxTotalBytes} bytes.`);
        if (
          file.originalSize > 1024 ** 2 &&
          file.originalSize > lim.maxRatio * Math.max(1, file.size)
        ) {
          throw zipError(
            `Zip entry '${file.name}' expands more than ${lim.maxRatio}x; refusing a likely zip bomb.`,
          );
        }
        declared.set(file.name, file.originalSize);
        return true;
      },
    });
  } catch (e) {
    if (e instanceof MlflowError) throw e;
    throw zipError(`Not a readable zip file: ${e instanceof Error ? e.message : String(e)}`);
  }
  const out = new Map<string, Uint8Array>();
  for (const [name, bytes] of Object.entries(raw)) {
    if (bytes.length !== declared.get(name)) {
      throw zipError(`Zip entry '${name}' is not the size its header declares.`);
    }
    out.set(name, bytes);
  }
  return out;
}
