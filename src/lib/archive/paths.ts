import { UnsafePathError } from './errors.ts';

/**
 * Checks an entry path from an archive or a dropped folder before anything is written under it.
 * Returns the path without a trailing '/' (directories) — or throws UnsafePathError.
 */
export function checkEntryPath(path: string): string {
  if (path.length === 0) throw new UnsafePathError(path, 'the path is empty');
  if (path.includes('\0')) throw new UnsafePathError(path, 'the path contains a NUL character');
  if (path.includes('\\')) {
    throw new UnsafePathError(path, 'the path contains a backslash (a Windows path separator)');
  }
  if (path.startsWith('/')) throw new UnsafePathError(path, 'the path is absolute');
  if (/^[A-Za-z]:/.test(path))
    throw new UnsafePathError(path, 'the path starts with a drive letter');
  const trimmed = path.endsWith('/') ? path.slice(0, -1) : path;
  const parts = trimmed.split('/');
  for (const p of parts) {
    if (p === '..') throw new UnsafePathError(path, "the path climbs out of the folder with '..'");
    if (p === '.' || p === '')
      throw new UnsafePathError(path, 'the path has an empty or "." segment');
  }
  if (trimmed.length > 1024)
    throw new UnsafePathError(path, 'the path is longer than 1024 characters');
  return trimmed;
}
