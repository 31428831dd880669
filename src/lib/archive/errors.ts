/**
 * One error class per way an archive can be refused, each naming the entry at fault, so the
 * import page can say exactly what is wrong and tests can tell the cases apart.
 */
export class ArchiveError extends Error {
  override name = 'ArchiveError';
  constructor(
    message: string,
    /** The entry at fault, when there is one. */
    readonly entry?: string,
  ) {
    super(message);
  }
}

/** The file is not a zip at all. */
export class NotAZipError extends ArchiveError {
  override name = 'NotAZipError';
  constructor(readonly fileName = 'The file') {
    super(`${fileName} is not a zip archive (no zip signature found).`);
  }
}

/** The archive ends early: an interrupted download or copy. */
export class TruncatedArchiveError extends ArchiveError {
  override name = 'TruncatedArchiveError';
  constructor(detail: string, entry?: string) {
    super(`The archive is truncated: ${detail}. Copy or download it again.`, entry);
  }
}

/** Bytes that do not decode or do not match their checksum. */
export class CorruptArchiveError extends ArchiveError {
  override name = 'CorruptArchiveError';
  constructor(detail: string, entry?: string) {
    super(
      entry ? `Entry '${entry}' is corrupt: ${detail}.` : `The archive is corrupt: ${detail}.`,
      entry,
    );
  }
}

/** An entry path that could write outside the destination folder (zip slip). */
export class UnsafePathError extends ArchiveError {
  override name = 'UnsafePathError';
  constructor(entry: string, reason: string) {
    super(`Entry '${entry}' was refused: ${reason}.`, entry);
  }
}

export type LimitKind = 'entry-count' | 'total-size' | 'entry-size' | 'compression-ratio';

/** A size, count or ratio cap was exceeded (zip bombs and runaway archives). */
export class ArchiveLimitError extends ArchiveError {
  override name = 'ArchiveLimitError';
  constructor(
    readonly limit: LimitKind,
    message: string,
    entry?: string,
  ) {
    super(message, entry);
  }
}

/** Zip features the app does not read (encryption, other compression methods, symlinks). */
export class UnsupportedArchiveError extends ArchiveError {
  override name = 'UnsupportedArchiveError';
  constructor(entry: string, feature: string) {
    super(`Entry '${entry}' uses ${feature}, which is not supported.`, entry);
  }
}

/** Two entries with the same path. */
export class DuplicateEntryError extends ArchiveError {
  override name = 'DuplicateEntryError';
  constructor(entry: string) {
    super(`Entry '${entry}' appears more than once in the archive.`, entry);
  }
}
