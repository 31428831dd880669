import type { Migration } from '../db.ts';

/** Large files (artifacts, model weights) live as chunks in their own object store. */
export const blobs: Migration = {
  description: 'blob files and their chunks',
  up(db) {
    // files: { id, size, type, chunkSize, chunkCount, complete, createdAt }
    db.createObjectStore('blobFiles', { keyPath: 'id' });
    // chunks: key [fileId, index] -> Blob
    db.createObjectStore('blobChunks');
  },
};
