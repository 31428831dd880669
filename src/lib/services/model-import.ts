import type { AnyDB } from '../store/db.ts';
import { deleteBlob, writeBlob } from '../store/blobs.ts';
import { newModelBlobId, type ModelFileRecord } from '../store/model-files.ts';
import {
  createModelVersion,
  type ModelOrigin,
  type ModelVersionRecord,
} from '../store/registry.ts';
import {
  openFolder,
  openZip,
  readEntryText,
  ArchiveError,
  type ArchiveEntry,
  type ArchiveLimits,
  type ArchiveSource,
  type FolderFile,
} from '../archive/index.ts';
import {
  MLmodelError,
  detectServable,
  isReferenceOnly,
  parseMLmodel,
  pyfuncArtifacts,
  type MLmodel,
  type ServableDescriptor,
} from '../mlflow/mlmodel.ts';
import {
  InputExampleError,
  parseInputExample,
  type InputExample,
} from '../mlflow/input-example.ts';
import { emitStoreChange } from './events.ts';

/**
 * Importing an MLflow model (a zip or a folder) as a new version of a registered model.
 * Two phases: everything is checked first (archive guards, MLmodel, flavors, signature, input
 * example, the files the flavors point at); then the files are written, and the version and its
 * file records are created in one transaction. Any failure deletes what was written: the store
 * is as it was.
 */

export const KNOWN_FLAVORS = ['python_function', 'transformers', 'onnx'] as const;

/** The model is not one the app can register (MLmodel missing, invalid, or inconsistent). */
export class ModelImportError extends Error {
  override name = 'ModelImportError';
  constructor(
    message: string,
    /** The file at fault, model-relative. */
    readonly file?: string,
  ) {
    super(message);
  }
}

export interface ModelImportProgress {
  phase: 'checking' | 'writing' | 'registering';
  bytesWritten: number;
  totalBytes: number;
  path?: string;
}

export interface ImportModelOptions {
  /** The registered model the new version goes to (created when missing). */
  name: string;
  description?: string;
  tags?: Record<string, string>;
  limits?: Partial<ArchiveLimits>;
  signal?: AbortSignal;
  onProgress?: (p: ModelImportProgress) => void;
}

export interface CheckedModel {
  /** The folder inside the source that holds MLmodel ('' or ending in '/'). */
  root: string;
  mlmodel: MLmodel;
  inputExample?: InputExample;
  servable: ServableDescriptor | null;
  /** Files under the root, model-relative paths. */
  files: { path: string; entry: ArchiveEntry }[];
  totalSize: number;
}

export interface ImportedModel extends CheckedModel {
  version: ModelVersionRecord;
}

function findRoot(src: ArchiveSource): string {
  const candidates = src.entries
    .filter((e) => !e.isDirectory && (e.path === 'MLmodel' || e.path.endsWith('/MLmodel')))
    .map((e) => e.path.slice(0, -'MLmodel'.length))
    .sort((a, b) => a.split('/').length - b.split('/').length || a.localeCompare(b));
  if (candidates.length === 0) {
    throw new ModelImportError(
      'This is not an MLflow model: no MLmodel file was found (neither at the top nor in a top-level folder).',
      'MLmodel',
    );
  }
  return candidates[0]!;
}

/** Validates a model source without writing anything. */
export async function checkModelSource(src: ArchiveSource): Promise<CheckedModel> {
  const root = findRoot(src);
  const files = src.entries
    .filter((e) => !e.isDirectory && e.path.startsWith(root))
    .map((entry) => ({ path: entry.path.slice(root.length), entry }));
  const byPath = new Map(files.map((f) => [f.path, f.entry]));
  let mlmodel: MLmodel;
  try {
    mlmodel = parseMLmodel(await readEntryText(byPath.get('MLmodel')!), root + 'MLmodel');
  } catch (e) {
    if (e instanceof MLmodelError) throw new ModelImportError(e.message, 'MLmodel');
    throw e;
  }
  const flavorNames = Object.keys(mlmodel.flavors);
  if (!flavorNames.some((f) => (KNOWN_FLAVORS as readonly string[]).includes(f))) {
    throw new ModelImportError(
      `MLmodel: no flavor the app can read; found ${flavorNames.length ? flavorNames.join(', ') : 'none'}, expected one of ${KNOWN_FLAVORS.join(', ')}.`,
      'MLmodel',
    );
  }
  const paths = files.map((f) => f.path);
  const hasPrefix = (p: string) => {
    const clean = p.replace(/\/$/, '');
    return byPath.has(clean) || paths.some((x) => x.startsWith(clean + '/'));
  };
  for (const [name, path] of Object.entries(pyfuncArtifacts(mlmodel))) {
    if (!hasPrefix(path)) {
      throw new ModelImportError(
        `MLmodel: the python_function artifact '${name}' points at '${path}', which is not in the model.`,
        'MLmodel',
      );
    }
  }
  const onnxData = mlmodel.flavors.onnx?.data;
  if (typeof onnxData === 'string' && !byPath.has(onnxData)) {
    throw new ModelImportError(
      `MLmodel: the onnx flavor's model file '${onnxData}' is not in the model.`,
      'MLmodel',
    );
  }
  const tf = mlmodel.flavors.transformers;
  if (
    tf &&
    typeof tf.model_binary === 'string' &&
    !isReferenceOnly(mlmodel) &&
    !hasPrefix(tf.model_binary)
  ) {
    throw new ModelImportError(
      `MLmodel: the transformers flavor keeps its weights in '${tf.model_binary}/', which is not in the model.`,
      'MLmodel',
    );
  }
  let inputExample: InputExample | undefined;
  const info = mlmodel.savedInputExampleInfo;
  if (info) {
    const entry = byPath.get(info.artifact_path);
    if (entry) {
      try {
        inputExample = parseInputExample(await readEntryText(entry), info);
      } catch (e) {
        if (e instanceof InputExampleError)
          throw new ModelImportError(e.message, info.artifact_path);
        throw e;
      }
    }
  }
  const checked: CheckedModel = {
    root,
    mlmodel,
    servable: detectServable(mlmodel, paths),
    files,
    totalSize: files.reduce((n, f) => n + f.entry.size, 0),
  };
  if (inputExample) checked.inputExample = inputExample;
  return checked;
}

function sourceOf(m: MLmodel, fallback: string): string {
  if (typeof m.artifactPath === 'string' && /^[a-z][\w+.-]*:/i.test(m.artifactPath))
    return m.artifactPath;
  if (m.runId && typeof m.artifactPath === 'string') return `runs:/${m.runId}/${m.artifactPath}`;
  return fallback;
}

/** Writes a checked model and registers it. All-or-nothing. */
export async function registerCheckedModel(
  db: AnyDB,
  checked: CheckedModel,
  origin: ModelOrigin,
  opts: ImportModelOptions,
): Promise<ImportedModel> {
  const written: string[] = [];
  const records: Omit<ModelFileRecord, 'versionId'>[] = [];
  let bytesWritten = 0;
  const total = checked.totalSize;
  try {
    for (const f of checked.files) {
      opts.signal?.throwIfAborted();
      const blobId = newModelBlobId();
      written.push(blobId);
      const before = bytesWritten;
      const rec = await writeBlob(db, blobId, f.entry.open(), {
        expectedSize: total - bytesWritten,
        ...(opts.signal ? { signal: opts.signal } : {}),
        onProgress: (n) =>
          opts.onProgress?.({
            phase: 'writing',
            bytesWritten: before + n,
            totalBytes: total,
            path: f.path,
          }),
      });
      bytesWritten += rec.size;
      const fileRec: Omit<ModelFileRecord, 'versionId'> = { path: f.path, blobId, size: rec.size };
      const crc = (f.entry as { crc32?: number }).crc32;
      if (crc !== undefined) fileRec.crc32 = crc;
      records.push(fileRec);
    }
    opts.onProgress?.({ phase: 'registering', bytesWritten, totalBytes: total });
    const fallbackSource =
      origin.kind === 'zip'
        ? `file:${origin.fileName}`
        : origin.kind === 'folder'
          ? `file:${origin.name}`
          : '';
    const input: Parameters<typeof createModelVersion>[1] = {
      name: opts.name,
      source: sourceOf(checked.mlmodel, fallbackSource),
      origin,
      servable: checked.servable,
      files: records,
      createModel: true,
    };
    if (checked.mlmodel.runId) input.runId = checked.mlmodel.runId;
    if (opts.description !== undefined) input.description = opts.description;
    if (opts.tags) input.tags = opts.tags;
    const version = await createModelVersion(db, input);
    emitStoreChange({ kind: 'registry', id: opts.name });
    return { ...checked, version };
  } catch (e) {
    for (const id of written) await deleteBlob(db, id).catch(() => undefined);
    throw e;
  }
}

/** Imports an MLflow model zip as a new version of `opts.name`. */
export async function importModelZip(
  db: AnyDB,
  file: Blob & { name?: string },
  opts: ImportModelOptions,
): Promise<ImportedModel> {
  opts.onProgress?.({ phase: 'checking', bytesWritten: 0, totalBytes: file.size });
  const fileName = file.name ?? 'model.zip';
  const zip = await openZip(file, { fileName, ...(opts.limits ? { limits: opts.limits } : {}) });
  const checked = await checkModelSource(zip);
  return registerCheckedModel(db, checked, { kind: 'zip', fileName, size: file.size }, opts);
}

/** Imports a picked or dropped model folder (Files with their relative paths). */
export async function importModelFolder(
  db: AnyDB,
  files: Array<File | FolderFile>,
  opts: ImportModelOptions & { folderName?: string },
): Promise<ImportedModel> {
  const src = openFolder(files, opts.limits);
  const checked = await checkModelSource(src);
  const name = opts.folderName ?? (checked.root.replace(/\/$/, '') || 'model');
  return registerCheckedModel(db, checked, { kind: 'folder', name, size: checked.totalSize }, opts);
}

export { ArchiveError };
