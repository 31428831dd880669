/**
 * Turns an import or registry error into what the user reads: a headline naming the kind of
 * problem, the error's own message (which names the entry or key), and what to do next.
 * Errors are recognised by name so the UI needs no imports from the archive layer.
 */
export interface ExplainedError {
  title: string;
  detail: string;
  advice: string;
}

export function explainImportError(e: unknown): ExplainedError {
  const err = e instanceof Error ? e : new Error(String(e));
  const detail = err.message;
  const limit = (err as { limit?: string }).limit;
  switch (err.name) {
    case 'UnsafePathError':
      return {
        title: 'Unsafe path in the archive',
        detail,
        advice:
          'An entry tries to write outside the model folder (“..”, an absolute path, a drive letter or a backslash). Nothing was imported; re-create the zip from the model folder.',
      };
    case 'ArchiveLimitError':
      return {
        title:
          limit === 'compression-ratio'
            ? 'Suspicious compression ratio (possible zip bomb)'
            : limit === 'entry-count'
              ? 'Too many files in the archive'
              : 'The archive is too large',
        detail,
        advice: 'Nothing was imported. Check that this is the model you meant to import.',
      };
    case 'NotAZipError':
      return {
        title: 'Not a zip archive',
        detail,
        advice: 'Pick an MLflow model zip, or use “Choose folder” for an unpacked model folder.',
      };
    case 'TruncatedArchiveError':
      return {
        title: 'The archive is truncated',
        detail,
        advice: 'The file ends early, usually from an interrupted download or copy. Get it again.',
      };
    case 'CorruptArchiveError':
      return {
        title: 'The archive is corrupt',
        detail,
        advice: 'Some bytes do not decode or fail their checksum. Get a fresh copy of the file.',
      };
    case 'UnsupportedArchiveError':
      return {
        title: 'Unsupported zip feature',
        detail,
        advice: 'Re-create the zip without encryption, using “store” or “deflate” compression.',
      };
    case 'DuplicateEntryError':
      return {
        title: 'Duplicate entries',
        detail,
        advice: 'The archive names the same file twice. Re-create it from the model folder.',
      };
    case 'ModelImportError': {
      const missing = /no MLmodel file/i.test(detail);
      return {
        title: missing ? 'MLmodel file missing' : 'Invalid MLflow model',
        detail,
        advice: missing
          ? 'An MLflow model folder has an MLmodel file at its top. Zip the folder that holds it.'
          : 'The MLmodel file or a file it points at is not what MLflow writes. Fix it and try again.',
      };
    }
    case 'InsufficientStorageError':
      return {
        title: 'Not enough storage',
        detail,
        advice: 'Nothing was imported. Free space in Settings, then import again.',
      };
    case 'StorageQuotaError':
      return { title: 'Out of storage', detail, advice: 'Nothing was kept from this import.' };
    case 'AbortError':
      return {
        title: 'Import cancelled',
        detail: 'The import was cancelled.',
        advice: 'Nothing was kept; the registry is as it was.',
      };
    case 'MlflowError':
      return { title: 'The registry refused it', detail, advice: 'Nothing was imported.' };
    default:
      return { title: 'Import failed', detail, advice: 'Nothing was imported.' };
  }
}
