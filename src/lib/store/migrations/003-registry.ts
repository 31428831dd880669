import type { Migration } from '../db.ts';

/**
 * Model Registry.
 * - `registeredModels` by name, with tags and aliases inside the record (a model has few).
 * - `modelVersions` by a stable id, so renaming a model rewrites names, not keys; indexed by
 *   model name, by [name, version] (unique: versions are numbered per model) and by run id.
 * - `modelFiles` [versionId, path] -> blob id and size: the version's file tree. The bytes are
 *   the original bytes, so files the app did not change export byte-identical.
 */
export const registry: Migration = {
  description: 'registered models, model versions, model version files',
  up(db) {
    db.createObjectStore('registeredModels', { keyPath: 'name' });

    const versions = db.createObjectStore('modelVersions', { keyPath: 'id' });
    versions.createIndex('name', 'name');
    versions.createIndex('nameVersion', ['name', 'version'], { unique: true });
    versions.createIndex('runId', 'runId');

    const files = db.createObjectStore('modelFiles', { keyPath: ['versionId', 'path'] });
    files.createIndex('versionId', 'versionId');
    files.createIndex('blobId', 'blobId');
  },
};
