import type { Migration } from '../db.ts';

/**
 * Downloads of model weights from the Hugging Face Hub.
 * - `downloads` by id: one unfinished download (repo, pinned commit, the chosen files and, per
 *   file, how many chunks are stored), so that it resumes after a dropped connection or a closed
 *   tab. The bytes themselves are ordinary chunked blobs; the record is deleted once the files
 *   are registered as a model version.
 */
export const downloads: Migration = {
  description: 'resumable model downloads from the Hugging Face Hub',
  up(db) {
    const store = db.createObjectStore('downloads', { keyPath: 'id' });
    store.createIndex('createdAt', 'createdAt');
  },
};
