export * from './errors.ts';
export * from './types.ts';
export { checkEntryPath } from './paths.ts';
export { crc32 } from './crc32.ts';
export {
  openZip,
  readEntryBytes,
  readEntryText,
  type ZipArchive,
  type ZipEntry,
  type OpenZipOptions,
} from './zip-reader.ts';
export { writeZip, zipToBlob, type ZipWriteEntry } from './zip-writer.ts';
export { openFolder, type FolderFile } from './folder.ts';
