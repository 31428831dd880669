/** What the import dialog hands the page: a zip, or the files of a picked folder. */
export type ImportSource = { kind: 'zip'; file: File } | { kind: 'folder'; files: File[] };

export interface ImportProgress {
  phase: 'checking' | 'writing' | 'registering';
  bytesWritten: number;
  totalBytes: number;
  path?: string;
}
