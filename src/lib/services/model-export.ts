import type { AnyDB } from '../store/db.ts';
import { deleteBlob, readBlobChunks, writeBlob } from '../store/blobs.ts';
import { listModelFiles, newModelBlobId, type ModelFileRecord } from '../store/model-files.ts';
import {
  createModelVersion,
  createRegisteredModel,
  deleteRegisteredModel,
  getModelVersionRecord,
  listModelVersionRecords,
  listRegisteredModelRecords,
  setAlias,
  type ModelVersionRecord,
  type RegisteredModelRecord,
} from '../store/registry.ts';
import {
  openZip,
  readEntryText,
  writeZip,
  zipToBlob,
  type ArchiveLimits,
  type ZipWriteEntry,
} from '../archive/index.ts';
import { MlflowError } from '../mlflow/errors.ts';
import { emitStoreChange } from './events.ts';
import { ModelImportError } from './model-import.ts';

/**
 * A model version back out as an MLflow model zip (the files as stored, so unchanged files are
 * byte-identical), and the whole registry as one archive an instructor can hand out.
 */

/** Weights do not compress; deflating them only costs time. */
const INCOMPRESSIBLE =
  /\.(onnx|onnx_data|data|bin|safetensors|pt|pth|gguf|pkl|npz|zip|gz|xz|bz2)$/i;

function fileEntry(db: AnyDB, f: ModelFileRecord, path = f.path): ZipWriteEntry {
  return {
    path,
    data: readBlobChunks(db, f.blobId),
    size: f.size,
    compress: f.size <= 16 * 2 ** 20 && !INCOMPRESSIBLE.test(f.path),
  };
}

async function* versionEntries(
  db: AnyDB,
  v: ModelVersionRecord,
  prefix = '',
): AsyncGenerator<ZipWriteEntry> {
  for (const f of await listModelFiles(db, v.id)) yield fileEntry(db, f, prefix + f.path);
}

/** The zip stream of a model version (MLmodel at the top, as `mlflow.models.Model.load` expects). */
export async function* modelVersionZipStream(
  db: AnyDB,
  name: string,
  version: number | string,
): AsyncGenerator<Uint8Array> {
  const v = await getModelVersionRecord(db, name, version);
  yield* writeZip(versionEntries(db, v));
}

export async function exportModelVersionZip(
  db: AnyDB,
  name: string,
  version: number | string,
): Promise<Blob> {
  const v = await getModelVersionRecord(db, name, version);
  return zipToBlob(versionEntries(db, v));
}

// ---------------------------------------------------------------- the whole registry

export const REGISTRY_MANIFEST = 'tabflow-registry.json';
const FORMAT = 'tabflow-registry';
const FORMAT_VERSION = 1;

interface ManifestVersion extends Omit<ModelVersionRecord, 'id' | 'name'> {
  /** Folder of the version's files inside the archive. */
  dir: string;
  files: { path: string; size: number }[];
}

interface ManifestModel extends RegisteredModelRecord {
  versions: ManifestVersion[];
}

export interface RegistryManifest {
  format: typeof FORMAT;
  formatVersion: number;
  exportedAt: number;
  models: ManifestModel[];
}

/** Exports every registered model, version, alias and tag, with the weights (or their references). */
export async function exportRegistry(db: AnyDB, names?: string[]): Promise<Blob> {
  const models = (await listRegisteredModelRecords(db)).filter(
    (m) => !names || names.includes(m.name),
  );
  const manifest: RegistryManifest = {
    format: FORMAT,
    formatVersion: FORMAT_VERSION,
    exportedAt: Date.now(),
    models: [],
  };
  const plan: { dir: string; files: ModelFileRecord[] }[] = [];
  for (const [i, m] of models.entries()) {
    const versions: ManifestVersion[] = [];
    for (const v of await listModelVersionRecords(db, m.name)) {
      const files = await listModelFiles(db, v.id);
      // Folders by position, not by name: model names may hold characters no path should.
      const dir = `models/${i}/${v.version}/`;
      const { id: _id, name: _name, ...rest } = v;
      versions.push({ ...rest, dir, files: files.map((f) => ({ path: f.path, size: f.size })) });
      plan.push({ dir, files });
    }
    manifest.models.push({ ...m, versions });
  }
  async function* entries(): AsyncGenerator<ZipWriteEntry> {
    yield {
      path: REGISTRY_MANIFEST,
      data: new TextEncoder().encode(JSON.stringify(manifest, null, 2)),
    };
    for (const p of plan) for (const f of p.files) yield fileEntry(db, f, p.dir + f.path);
  }
  return zipToBlob(entries());
}

export interface ImportRegistryResult {
  models: string[];
  versions: number;
}

/**
 * Imports a registry archive. Refused as a whole when a model of the same name exists (nothing
 * is written); otherwise all-or-nothing: on a failure midway, what was created is removed.
 */
export async function importRegistry(
  db: AnyDB,
  file: Blob & { name?: string },
  opts: { limits?: Partial<ArchiveLimits>; signal?: AbortSignal } = {},
): Promise<ImportRegistryResult> {
  const fileName = file.name ?? 'registry.zip';
  const zip = await openZip(file, { fileName, ...(opts.limits ? { limits: opts.limits } : {}) });
  const byPath = new Map(zip.entries.map((e) => [e.path, e]));
  const manifestEntry = byPath.get(REGISTRY_MANIFEST);
  if (!manifestEntry) {
    throw new ModelImportError(
      `This is not a registry archive: ${REGISTRY_MANIFEST} is missing.`,
      REGISTRY_MANIFEST,
    );
  }
  let manifest: RegistryManifest;
  try {
    manifest = JSON.parse(await readEntryText(manifestEntry)) as RegistryManifest;
  } catch (e) {
    throw new ModelImportError(
      `${REGISTRY_MANIFEST}: not valid JSON (${(e as Error).message})`,
      REGISTRY_MANIFEST,
    );
  }
  if (manifest.format !== FORMAT || !Array.isArray(manifest.models)) {
    throw new ModelImportError(
      `${REGISTRY_MANIFEST}: not a ${FORMAT} manifest.`,
      REGISTRY_MANIFEST,
    );
  }
  if (manifest.formatVersion > FORMAT_VERSION) {
    throw new ModelImportError(
      `${REGISTRY_MANIFEST}: written by a newer version of the app (format ${manifest.formatVersion}).`,
      REGISTRY_MANIFEST,
    );
  }
  // Check everything before writing anything.
  const existing = new Set((await listRegisteredModelRecords(db)).map((m) => m.name));
  for (const m of manifest.models) {
    if (existing.has(m.name)) {
      throw new MlflowError(
        'RESOURCE_ALREADY_EXISTS',
        `Registered Model (name=${m.name}) already exists. Rename or delete it before importing.`,
      );
    }
    for (const v of m.versions) {
      for (const f of v.files) {
        if (!byPath.has(v.dir + f.path)) {
          throw new ModelImportError(
            `The archive lacks '${v.dir + f.path}' (model ${m.name}, version ${v.version}).`,
            v.dir + f.path,
          );
        }
      }
    }
  }
  const created: string[] = [];
  const written: string[] = [];
  let versions = 0;
  try {
    for (const m of manifest.models) {
      await createRegisteredModel(
        db,
        { name: m.name, description: m.description, tags: m.tags },
        m.creationTimestamp,
      );
      created.push(m.name);
      for (const v of [...m.versions].sort((a, b) => a.version - b.version)) {
        const files: Omit<ModelFileRecord, 'versionId'>[] = [];
        for (const f of v.files) {
          opts.signal?.throwIfAborted();
          const blobId = newModelBlobId();
          written.push(blobId);
          const rec = await writeBlob(
            db,
            blobId,
            byPath.get(v.dir + f.path)!.open(),
            opts.signal ? { signal: opts.signal } : {},
          );
          files.push({ path: f.path, blobId, size: rec.size });
        }
        await createModelVersion(db, {
          name: m.name,
          version: v.version,
          source: v.source,
          runId: v.runId,
          runLink: v.runLink,
          description: v.description,
          tags: v.tags,
          userId: v.userId,
          origin: v.origin,
          servable: v.servable,
          currentStage: v.currentStage,
          creationTimestamp: v.creationTimestamp,
          files,
        });
        versions++;
      }
      for (const [alias, version] of Object.entries(m.aliases))
        await setAlias(db, m.name, alias, version);
    }
  } catch (e) {
    for (const name of created) await deleteRegisteredModel(db, name).catch(() => undefined);
    for (const id of written) await deleteBlob(db, id).catch(() => undefined);
    throw e;
  }
  for (const name of created) emitStoreChange({ kind: 'registry', id: name });
  return { models: created, versions };
}
