import { getDatabase, type AnyDB } from '../store/db.ts';
import { readBlobChunks, writeBlob, deleteBlob } from '../store/blobs.ts';
import { getRunArtifacts } from '../store/tracking.ts';
import {
  deleteBlobs,
  listModelFiles,
  newModelBlobId,
  readModelFileText,
  type ModelFileRecord,
} from '../store/model-files.ts';
import * as store from '../store/registry.ts';
import type {
  ModelVersionRecord,
  RegisteredModelRecord,
  SearchOptions,
} from '../store/registry.ts';
import type { ModelVersion, RegisteredModel } from '../mlflow/entities.ts';
import { MlflowError } from '../mlflow/errors.ts';
import {
  detectServable,
  parseMLmodel,
  type MLmodel,
  type ServableDescriptor,
} from '../mlflow/mlmodel.ts';
import { parseInputExample, type InputExample } from '../mlflow/input-example.ts';
import { emitStoreChange } from './events.ts';
import {
  importModelFolder,
  importModelZip,
  type ImportModelOptions,
  type ImportedModel,
} from './model-import.ts';
import { exportModelVersionZip, exportRegistry, importRegistry } from './model-export.ts';
import type { FolderFile } from '../archive/index.ts';

/**
 * The Model Registry verbs the UI calls: MLflow's registry API (create, rename, delete, tags,
 * aliases, stages, search) plus the app's own (import a model zip or folder, register from a
 * run's artifacts or a Hugging Face id, export). Every write announces itself with
 * emitStoreChange({ kind: 'registry', id: modelName }).
 */

export interface ModelVersionView extends ModelVersion {
  aliases: string[];
  runLink: string;
  origin: store.ModelOrigin;
  servable: ServableDescriptor | null;
  size: number;
}

export interface RegisteredModelView extends RegisteredModel {
  latestVersions: ModelVersionView[];
}

export interface ModelVersionDetails {
  version: ModelVersionView;
  /** null when the MLmodel file is missing (a Hugging Face reference not downloaded yet). */
  mlmodel: MLmodel | null;
  /** The MLmodel text as stored. */
  mlmodelText: string | null;
  inputExample: InputExample | null;
  files: { path: string; size: number; modified: boolean }[];
}

function versionView(
  rec: ModelVersionRecord,
  model: RegisteredModelRecord | undefined,
): ModelVersionView {
  return {
    ...store.modelVersionOf(rec),
    aliases: model ? store.aliasesOf(model, rec.version) : [],
    runLink: rec.runLink,
    origin: rec.origin,
    servable: rec.servable,
    size: rec.size,
  };
}

export class RegistryClient {
  constructor(readonly db: AnyDB) {}

  private changed(name: string): void {
    emitStoreChange({ kind: 'registry', id: name });
  }

  // ---- registered models

  async createRegisteredModel(
    name: string,
    opts: { description?: string; tags?: Record<string, string> } = {},
  ): Promise<RegisteredModelView> {
    const rec = await store.createRegisteredModel(this.db, { name, ...opts });
    this.changed(name);
    return { ...store.registeredModelOf(rec), latestVersions: [] };
  }

  async getRegisteredModel(name: string): Promise<RegisteredModelView> {
    const rec = await store.getRegisteredModelRecord(this.db, name);
    const latest = await store.getLatestVersions(this.db, name);
    return {
      ...store.registeredModelOf(rec),
      latestVersions: latest.map((v) => versionView(v, rec)),
    };
  }

  async searchRegisteredModels(
    opts: SearchOptions = {},
  ): Promise<{ models: RegisteredModelView[]; nextPageToken?: string }> {
    const page = await store.searchRegisteredModels(this.db, opts);
    const models = await Promise.all(page.items.map((m) => this.getRegisteredModel(m.name)));
    return page.nextPageToken ? { models, nextPageToken: page.nextPageToken } : { models };
  }

  async renameRegisteredModel(name: string, newName: string): Promise<RegisteredModelView> {
    await store.renameRegisteredModel(this.db, name, newName);
    this.changed(name);
    this.changed(newName);
    return this.getRegisteredModel(newName);
  }

  async updateRegisteredModel(name: string, description: string): Promise<void> {
    await store.updateRegisteredModel(this.db, name, description);
    this.changed(name);
  }

  /** Deletes the model, all its versions and their stored files. */
  async deleteRegisteredModel(name: string): Promise<void> {
    const blobs = await store.deleteRegisteredModel(this.db, name);
    await deleteBlobs(this.db, blobs);
    this.changed(name);
  }

  async setRegisteredModelTag(name: string, key: string, value: string): Promise<void> {
    await store.setRegisteredModelTag(this.db, name, key, value);
    this.changed(name);
  }

  async deleteRegisteredModelTag(name: string, key: string): Promise<void> {
    await store.deleteRegisteredModelTag(this.db, name, key);
    this.changed(name);
  }

  // ---- aliases

  async setRegisteredModelAlias(
    name: string,
    alias: string,
    version: number | string,
  ): Promise<void> {
    await store.setAlias(this.db, name, alias, version);
    this.changed(name);
  }

  async deleteRegisteredModelAlias(name: string, alias: string): Promise<void> {
    await store.deleteAlias(this.db, name, alias);
    this.changed(name);
  }

  async getModelVersionByAlias(name: string, alias: string): Promise<ModelVersionView> {
    const rec = await store.getVersionByAlias(this.db, name, alias);
    return versionView(rec, await store.getRegisteredModelRecord(this.db, name));
  }

  // ---- versions

  async getModelVersion(name: string, version: number | string): Promise<ModelVersionView> {
    const rec = await store.getModelVersionRecord(this.db, name, version);
    return versionView(rec, await store.getRegisteredModelRecord(this.db, name));
  }

  async listModelVersions(name: string): Promise<ModelVersionView[]> {
    const model = await store.getRegisteredModelRecord(this.db, name);
    return (await store.listModelVersionRecords(this.db, name)).map((v) => versionView(v, model));
  }

  async searchModelVersions(
    opts: SearchOptions = {},
  ): Promise<{ versions: ModelVersionView[]; nextPageToken?: string }> {
    const page = await store.searchModelVersions(this.db, opts);
    const models = new Map<string, RegisteredModelRecord>();
    const versions: ModelVersionView[] = [];
    for (const v of page.items) {
      if (!models.has(v.name))
        models.set(v.name, await store.getRegisteredModelRecord(this.db, v.name));
      versions.push(versionView(v, models.get(v.name)));
    }
    return page.nextPageToken ? { versions, nextPageToken: page.nextPageToken } : { versions };
  }

  async getLatestVersions(name: string, stages?: string[]): Promise<ModelVersionView[]> {
    const model = await store.getRegisteredModelRecord(this.db, name);
    return (await store.getLatestVersions(this.db, name, stages)).map((v) => versionView(v, model));
  }

  async updateModelVersion(
    name: string,
    version: number | string,
    description: string,
  ): Promise<void> {
    await store.updateModelVersion(this.db, name, version, description);
    this.changed(name);
  }

  async transitionModelVersionStage(
    name: string,
    version: number | string,
    stage: string,
    archiveExistingVersions = false,
  ): Promise<ModelVersionView> {
    await store.transitionModelVersionStage(this.db, name, version, stage, archiveExistingVersions);
    this.changed(name);
    return this.getModelVersion(name, version);
  }

  async setModelVersionTag(
    name: string,
    version: number | string,
    key: string,
    value: string,
  ): Promise<void> {
    await store.setModelVersionTag(this.db, name, version, key, value);
    this.changed(name);
  }

  async deleteModelVersionTag(name: string, version: number | string, key: string): Promise<void> {
    await store.deleteModelVersionTag(this.db, name, version, key);
    this.changed(name);
  }

  async deleteModelVersion(name: string, version: number | string): Promise<void> {
    const blobs = await store.deleteModelVersion(this.db, name, version);
    await deleteBlobs(this.db, blobs);
    this.changed(name);
  }

  /** What the version page shows: MLmodel, signature (in mlmodel), input example, files. */
  async getModelVersionDetails(
    name: string,
    version: number | string,
  ): Promise<ModelVersionDetails> {
    const view = await this.getModelVersion(name, version);
    const rec = await store.getModelVersionRecord(this.db, name, version);
    const files = await listModelFiles(this.db, rec.id);
    const has = (p: string) => files.some((f) => f.path === p);
    const mlmodelText = has('MLmodel') ? await readModelFileText(this.db, rec.id, 'MLmodel') : null;
    const mlmodel = mlmodelText === null ? null : parseMLmodel(mlmodelText);
    let inputExample: InputExample | null = null;
    const info = mlmodel?.savedInputExampleInfo;
    if (info && has(info.artifact_path)) {
      inputExample = parseInputExample(
        await readModelFileText(this.db, rec.id, info.artifact_path),
        info,
      );
    }
    return {
      version: view,
      mlmodel,
      mlmodelText,
      inputExample,
      files: files.map((f) => ({ path: f.path, size: f.size, modified: f.modified ?? false })),
    };
  }

  // ---- registering and moving models

  importModelZip(file: Blob & { name?: string }, opts: ImportModelOptions): Promise<ImportedModel> {
    return importModelZip(this.db, file, opts);
  }

  importModelFolder(
    files: Array<File | FolderFile>,
    opts: ImportModelOptions & { folderName?: string },
  ): Promise<ImportedModel> {
    return importModelFolder(this.db, files, opts);
  }

  /** Folders of a run's artifacts that hold an MLflow model (an MLmodel file); '' is the root. */
  async listRunModelFolders(runId: string): Promise<string[]> {
    const folders = (await getRunArtifacts(this.db, runId))
      .filter((a) => a.path === 'MLmodel' || a.path.endsWith('/MLmodel'))
      .map((a) => a.path.slice(0, Math.max(0, a.path.length - '/MLmodel'.length)));
    return folders.sort();
  }

  /** The model versions registered from a run (MLflow's search_model_versions run_id filter). */
  async listRunModelVersions(runId: string): Promise<ModelVersionView[]> {
    const { versions } = await this.searchModelVersions({
      filter: `run_id = '${runId.replace(/'/g, "''")}'`,
      orderBy: ['name ASC', 'version_number ASC'],
    });
    return versions;
  }

  /**
   * "Register model" from a run's artifacts: copies the files under `artifactPath` (which must
   * hold an MLmodel) into a new version whose source is `runs:/<runId>/<artifactPath>`.
   */
  async registerModelFromRun(
    name: string,
    runId: string,
    artifactPath: string,
    opts: { description?: string; tags?: Record<string, string> } = {},
  ): Promise<ModelVersionView> {
    const prefix = artifactPath.replace(/^\/+|\/+$/g, '');
    const artifacts = (await getRunArtifacts(this.db, runId)).filter(
      (a) => prefix === '' || a.path.startsWith(prefix + '/'),
    );
    const rel = (p: string) => (prefix === '' ? p : p.slice(prefix.length + 1));
    const mlmodelArt = artifacts.find((a) => rel(a.path) === 'MLmodel');
    if (!mlmodelArt) {
      throw new MlflowError(
        'INVALID_PARAMETER_VALUE',
        `Run ${runId} has no MLflow model at '${artifactPath}' (no MLmodel file there).`,
      );
    }
    let text = '';
    for await (const c of readBlobChunks(this.db, mlmodelArt.blobId))
      text += new TextDecoder().decode(c, { stream: true });
    const mlmodel = parseMLmodel(text, `${prefix}/MLmodel`);
    const written: string[] = [];
    try {
      // Copies, so that deleting or overwriting the run's artifacts never breaks the version.
      const files: Omit<ModelFileRecord, 'versionId'>[] = [];
      for (const a of artifacts) {
        const blobId = newModelBlobId();
        written.push(blobId);
        const rec = await writeBlob(this.db, blobId, readBlobChunks(this.db, a.blobId));
        files.push({ path: rel(a.path), blobId, size: rec.size });
      }
      const rec = await store.createModelVersion(this.db, {
        name,
        source: `runs:/${runId}/${prefix}`,
        runId,
        origin: { kind: 'run', runId, artifactPath: prefix },
        servable: detectServable(
          mlmodel,
          files.map((f) => f.path),
        ),
        files,
        createModel: true,
        ...opts,
      });
      this.changed(name);
      return this.getModelVersion(name, rec.version);
    } catch (e) {
      for (const id of written) await deleteBlob(this.db, id).catch(() => undefined);
      throw e;
    }
  }

  /**
   * "Register model" from a Hugging Face id: records where the weights come from; the download
   * (and then setServable) is the inference layer's.
   */
  async registerHuggingFaceModel(
    name: string,
    repoId: string,
    opts: {
      revision?: string;
      description?: string;
      tags?: Record<string, string>;
      servable?: ServableDescriptor | null;
    } = {},
  ): Promise<ModelVersionView> {
    if (!/^[\w.-]+\/[\w.-]+$/.test(repoId)) {
      throw new MlflowError(
        'INVALID_PARAMETER_VALUE',
        `'${repoId}' is not a Hugging Face model id (owner/name).`,
      );
    }
    const origin: store.ModelOrigin = opts.revision
      ? { kind: 'huggingface', repoId, revision: opts.revision }
      : { kind: 'huggingface', repoId };
    const input: store.NewModelVersion = {
      name,
      source: `hf:/${repoId}`,
      origin,
      servable: opts.servable ?? {
        kind: 'chat',
        layout: 'reference',
        root: '',
        files: {},
        sourceModelName: repoId,
      },
      files: [],
      createModel: true,
    };
    if (opts.description !== undefined) input.description = opts.description;
    if (opts.tags) input.tags = opts.tags;
    const rec = await store.createModelVersion(this.db, input);
    this.changed(name);
    return this.getModelVersion(name, rec.version);
  }

  async setServable(
    name: string,
    version: number | string,
    servable: ServableDescriptor | null,
  ): Promise<void> {
    await store.setServable(this.db, name, version, servable);
    this.changed(name);
  }

  exportModelVersion(name: string, version: number | string): Promise<Blob> {
    return exportModelVersionZip(this.db, name, version);
  }

  exportRegistry(names?: string[]): Promise<Blob> {
    return exportRegistry(this.db, names);
  }

  importRegistry(file: Blob & { name?: string }) {
    return importRegistry(this.db, file);
  }
}

let shared: Promise<RegistryClient> | undefined;

/** The app's registry, on the app's database. */
export function getRegistry(): Promise<RegistryClient> {
  shared ??= getDatabase().then((db) => new RegistryClient(db));
  return shared;
}
