import type { IDBPTransaction } from 'idb';
import type { AnyDB } from './db.ts';
import type {
  ModelVersion,
  ModelVersionStage,
  ModelVersionStatus,
  RegisteredModel,
} from '../mlflow/entities.ts';
import { MlflowError } from '../mlflow/errors.ts';
import type { ServableDescriptor } from '../mlflow/mlmodel.ts';
import type { ModelFileRecord } from './model-files.ts';

/**
 * The Model Registry over IndexedDB, with MLflow's semantics (mlflow/store/model_registry):
 * versions numbered max+1 per model, aliases unique per model and moved on re-assign, legacy
 * stages with archive_existing_versions, rename carrying versions and aliases along, delete
 * cascading to versions, aliases and files. Errors are MlflowErrors with MLflow's codes.
 */

/** Where a version's weights came from. */
export type ModelOrigin =
  | { kind: 'zip'; fileName: string; size: number }
  | { kind: 'folder'; name: string; size: number }
  | { kind: 'run'; runId: string; artifactPath: string }
  | { kind: 'huggingface'; repoId: string; revision?: string }
  | { kind: 'registry-archive'; fileName: string };

export interface RegisteredModelRecord {
  name: string;
  description: string;
  creationTimestamp: number;
  lastUpdatedTimestamp: number;
  tags: Record<string, string>;
  /** alias -> version number. */
  aliases: Record<string, number>;
  /** The meta.yaml it had in an imported mlruns store (kept so an unchanged export is identical). */
  mlrunsMeta?: string;
}

export interface ModelVersionRecord {
  /** Stable id (files are keyed by it, so a rename moves no files). */
  id: string;
  name: string;
  version: number;
  description: string;
  creationTimestamp: number;
  lastUpdatedTimestamp: number;
  currentStage: ModelVersionStage;
  source: string;
  runId: string;
  runLink: string;
  status: ModelVersionStatus;
  statusMessage: string;
  tags: Record<string, string>;
  userId: string;
  origin: ModelOrigin;
  /** How the app serves it, decided at import; null when it cannot be served in the browser. */
  servable: ServableDescriptor | null;
  /** Total bytes of the version's files. */
  size: number;
  /** The meta.yaml it had in an imported mlruns store (kept so an unchanged export is identical). */
  mlrunsMeta?: string;
}

export const STAGES: readonly ModelVersionStage[] = ['None', 'Staging', 'Production', 'Archived'];

// ---------------------------------------------------------------- validation

const notFoundModel = (name: string) =>
  new MlflowError('RESOURCE_DOES_NOT_EXIST', `Registered Model with name=${name} not found`);
const notFoundVersion = (name: string, version: number | string) =>
  new MlflowError(
    'RESOURCE_DOES_NOT_EXIST',
    `Model Version (name=${name}, version=${version}) not found`,
  );

export function validateModelName(name: string): void {
  if (typeof name !== 'string' || name.trim() === '') {
    throw new MlflowError('INVALID_PARAMETER_VALUE', 'Registered model name cannot be empty.');
  }
  if (/[/\\%]/.test(name) || name === '.' || name === '..') {
    throw new MlflowError(
      'INVALID_PARAMETER_VALUE',
      `Invalid name: '${name}'. Registered model names may not contain '/', '\\' or '%'.`,
    );
  }
  if (name.length > 256)
    throw new MlflowError(
      'INVALID_PARAMETER_VALUE',
      'Registered model name is longer than 256 characters.',
    );
}

export function validateAlias(alias: string): void {
  if (!/^[\w-]*$/.test(alias) || alias.length === 0 || alias.length > 255) {
    throw new MlflowError(
      'INVALID_PARAMETER_VALUE',
      `Invalid alias name: '${alias}'. Names may only contain alphanumerics, underscores (_) and dashes (-), and be at most 255 characters.`,
    );
  }
  if (alias.toLowerCase() === 'latest' || /^v\d+$/i.test(alias)) {
    throw new MlflowError(
      'INVALID_PARAMETER_VALUE',
      `Invalid alias name: '${alias}'. 'latest' and 'v<number>' are reserved.`,
    );
  }
}

function validateTag(key: string, value: string): void {
  if (!key) throw new MlflowError('INVALID_PARAMETER_VALUE', 'Tag key cannot be empty.');
  if (key.length > 250)
    throw new MlflowError(
      'INVALID_PARAMETER_VALUE',
      `Tag key '${key.slice(0, 30)}…' is longer than 250 characters.`,
    );
  if (value.length > 5000)
    throw new MlflowError(
      'INVALID_PARAMETER_VALUE',
      `Tag value for '${key}' is longer than 5000 characters.`,
    );
}

export function parseStage(stage: string): ModelVersionStage {
  const s = STAGES.find((x) => x.toLowerCase() === stage.toLowerCase());
  if (!s) {
    throw new MlflowError(
      'INVALID_PARAMETER_VALUE',
      `Invalid Model Version stage: ${stage}. Value must be one of None, Staging, Production, Archived.`,
    );
  }
  return s;
}

function parseVersion(v: number | string): number {
  const n = typeof v === 'number' ? v : Number(v);
  if (!Number.isInteger(n) || n < 1) {
    throw new MlflowError(
      'INVALID_PARAMETER_VALUE',
      `Model version must be a positive integer, got '${v}'.`,
    );
  }
  return n;
}

// ---------------------------------------------------------------- entity views

export function registeredModelOf(rec: RegisteredModelRecord): RegisteredModel {
  return {
    name: rec.name,
    description: rec.description,
    creationTimestamp: rec.creationTimestamp,
    lastUpdatedTimestamp: rec.lastUpdatedTimestamp,
    tags: { ...rec.tags },
    aliases: Object.fromEntries(Object.entries(rec.aliases).map(([a, v]) => [a, String(v)])),
  };
}

export function modelVersionOf(rec: ModelVersionRecord): ModelVersion {
  return {
    name: rec.name,
    version: String(rec.version),
    description: rec.description,
    creationTimestamp: rec.creationTimestamp,
    lastUpdatedTimestamp: rec.lastUpdatedTimestamp,
    currentStage: rec.currentStage,
    source: rec.source,
    runId: rec.runId,
    status: rec.status,
    statusMessage: rec.statusMessage,
    tags: { ...rec.tags },
    userId: rec.userId,
  };
}

/** Aliases that point at a version (MLflow's ModelVersion.aliases). */
export function aliasesOf(model: RegisteredModelRecord, version: number): string[] {
  return Object.entries(model.aliases)
    .filter(([, v]) => v === version)
    .map(([a]) => a)
    .sort();
}

// ---------------------------------------------------------------- registered models

export async function getRegisteredModelRecord(
  db: AnyDB,
  name: string,
): Promise<RegisteredModelRecord> {
  const rec = (await db.get('registeredModels', name)) as RegisteredModelRecord | undefined;
  if (!rec) throw notFoundModel(name);
  return rec;
}

export async function createRegisteredModel(
  db: AnyDB,
  input: { name: string; description?: string; tags?: Record<string, string> },
  now = Date.now(),
): Promise<RegisteredModelRecord> {
  validateModelName(input.name);
  for (const [k, v] of Object.entries(input.tags ?? {})) validateTag(k, v);
  const tx = db.transaction('registeredModels', 'readwrite');
  if (await tx.store.get(input.name)) {
    tx.abort();
    await tx.done.catch(() => undefined);
    throw new MlflowError(
      'RESOURCE_ALREADY_EXISTS',
      `Registered Model (name=${input.name}) already exists.`,
    );
  }
  const rec: RegisteredModelRecord = {
    name: input.name,
    description: input.description ?? '',
    creationTimestamp: now,
    lastUpdatedTimestamp: now,
    tags: { ...(input.tags ?? {}) },
    aliases: {},
  };
  await tx.store.put(rec);
  await tx.done;
  return rec;
}

async function updateModel(
  db: AnyDB,
  name: string,
  change: (rec: RegisteredModelRecord) => void,
): Promise<RegisteredModelRecord> {
  const tx = db.transaction('registeredModels', 'readwrite');
  const rec = (await tx.store.get(name)) as RegisteredModelRecord | undefined;
  if (!rec) {
    tx.abort();
    await tx.done.catch(() => undefined);
    throw notFoundModel(name);
  }
  change(rec);
  rec.lastUpdatedTimestamp = Date.now();
  await tx.store.put(rec);
  await tx.done;
  return rec;
}

export function updateRegisteredModel(
  db: AnyDB,
  name: string,
  description: string,
): Promise<RegisteredModelRecord> {
  return updateModel(db, name, (rec) => {
    rec.description = description;
  });
}

export function setRegisteredModelTag(
  db: AnyDB,
  name: string,
  key: string,
  value: string,
): Promise<RegisteredModelRecord> {
  validateTag(key, value);
  return updateModel(db, name, (rec) => {
    rec.tags[key] = value;
  });
}

export function deleteRegisteredModelTag(
  db: AnyDB,
  name: string,
  key: string,
): Promise<RegisteredModelRecord> {
  return updateModel(db, name, (rec) => {
    delete rec.tags[key];
  });
}

/** Renames a model; its versions, aliases and tags move with it. */
export async function renameRegisteredModel(
  db: AnyDB,
  name: string,
  newName: string,
): Promise<RegisteredModelRecord> {
  validateModelName(newName);
  const tx = db.transaction(['registeredModels', 'modelVersions'], 'readwrite');
  const models = tx.objectStore('registeredModels');
  const rec = (await models.get(name)) as RegisteredModelRecord | undefined;
  const fail = async (e: MlflowError) => {
    tx.abort();
    await tx.done.catch(() => undefined);
    throw e;
  };
  if (!rec) return fail(notFoundModel(name));
  if (newName !== name && (await models.get(newName))) {
    return fail(
      new MlflowError(
        'RESOURCE_ALREADY_EXISTS',
        `Registered Model (name=${newName}) already exists.`,
      ),
    );
  }
  const now = Date.now();
  const versions = tx.objectStore('modelVersions');
  const vs = (await versions.index('name').getAll(name)) as ModelVersionRecord[];
  await models.delete(name);
  const renamed = { ...rec, name: newName, lastUpdatedTimestamp: now };
  await models.put(renamed);
  for (const v of vs) await versions.put({ ...v, name: newName, lastUpdatedTimestamp: now });
  await tx.done;
  return renamed;
}

/**
 * Deletes a model with its versions, aliases and file records. Returns the blob ids the files
 * used, for the caller to delete once this transaction has committed.
 */
export async function deleteRegisteredModel(db: AnyDB, name: string): Promise<string[]> {
  const tx = db.transaction(['registeredModels', 'modelVersions', 'modelFiles'], 'readwrite');
  if (!(await tx.objectStore('registeredModels').get(name))) {
    tx.abort();
    await tx.done.catch(() => undefined);
    throw notFoundModel(name);
  }
  const versions = (await tx
    .objectStore('modelVersions')
    .index('name')
    .getAll(name)) as ModelVersionRecord[];
  const blobIds: string[] = [];
  for (const v of versions) {
    const files = (await tx
      .objectStore('modelFiles')
      .index('versionId')
      .getAll(v.id)) as ModelFileRecord[];
    for (const f of files) {
      blobIds.push(f.blobId);
      await tx.objectStore('modelFiles').delete([f.versionId, f.path]);
    }
    await tx.objectStore('modelVersions').delete(v.id);
  }
  await tx.objectStore('registeredModels').delete(name);
  await tx.done;
  return blobIds;
}

export async function listRegisteredModelRecords(db: AnyDB): Promise<RegisteredModelRecord[]> {
  return (await db.getAll('registeredModels')) as RegisteredModelRecord[];
}

// ---------------------------------------------------------------- aliases

export async function setAlias(
  db: AnyDB,
  name: string,
  alias: string,
  version: number | string,
): Promise<RegisteredModelRecord> {
  validateAlias(alias);
  const v = parseVersion(version);
  await getModelVersionRecord(db, name, v);
  // One alias names one version of a model: assigning it again moves it.
  return updateModel(db, name, (rec) => {
    rec.aliases[alias] = v;
  });
}

export async function deleteAlias(
  db: AnyDB,
  name: string,
  alias: string,
): Promise<RegisteredModelRecord> {
  return updateModel(db, name, (rec) => {
    delete rec.aliases[alias];
  });
}

export async function getVersionByAlias(
  db: AnyDB,
  name: string,
  alias: string,
): Promise<ModelVersionRecord> {
  const model = await getRegisteredModelRecord(db, name);
  const v = model.aliases[alias];
  // MLflow answers a missing alias with INVALID_PARAMETER_VALUE, not 404.
  if (v === undefined) {
    throw new MlflowError('INVALID_PARAMETER_VALUE', `Registered model alias ${alias} not found.`);
  }
  return getModelVersionRecord(db, name, v);
}

// ---------------------------------------------------------------- model versions

export async function getModelVersionRecord(
  db: AnyDB,
  name: string,
  version: number | string,
): Promise<ModelVersionRecord> {
  const v = parseVersion(version);
  const rec = (await db.getFromIndex('modelVersions', 'nameVersion', [name, v])) as
    ModelVersionRecord | undefined;
  if (!rec) throw notFoundVersion(name, v);
  return rec;
}

export async function getModelVersionById(
  db: AnyDB,
  id: string,
): Promise<ModelVersionRecord | undefined> {
  return (await db.get('modelVersions', id)) as ModelVersionRecord | undefined;
}

export async function listModelVersionRecords(
  db: AnyDB,
  name: string,
): Promise<ModelVersionRecord[]> {
  const vs = (await db.getAllFromIndex('modelVersions', 'name', name)) as ModelVersionRecord[];
  return vs.sort((a, b) => b.version - a.version);
}

export interface NewModelVersion {
  name: string;
  source: string;
  runId?: string;
  runLink?: string;
  description?: string;
  tags?: Record<string, string>;
  userId?: string;
  origin: ModelOrigin;
  servable: ServableDescriptor | null;
  /** The version's files, their blobs already written. */
  files: Omit<ModelFileRecord, 'versionId'>[];
  /** Create the registered model when it does not exist (the "Register model" dialog does). */
  createModel?: boolean;
  /** Keep the version number of an exported registry (import of a registry archive). */
  version?: number;
  currentStage?: ModelVersionStage;
  creationTimestamp?: number;
}

/**
 * Creates a version (number max + 1 unless given) and its file records in one transaction: a
 * version never exists without all of its files.
 */
export async function createModelVersion(
  db: AnyDB,
  input: NewModelVersion,
): Promise<ModelVersionRecord> {
  validateModelName(input.name);
  for (const [k, v] of Object.entries(input.tags ?? {})) validateTag(k, v);
  const now = Date.now();
  const tx = db.transaction(['registeredModels', 'modelVersions', 'modelFiles'], 'readwrite');
  const models = tx.objectStore('registeredModels');
  const versions = tx.objectStore('modelVersions');
  const fail = async (e: MlflowError): Promise<never> => {
    tx.abort();
    await tx.done.catch(() => undefined);
    throw e;
  };
  let model = (await models.get(input.name)) as RegisteredModelRecord | undefined;
  if (!model) {
    if (!input.createModel) return fail(notFoundModel(input.name));
    model = {
      name: input.name,
      description: '',
      creationTimestamp: now,
      lastUpdatedTimestamp: now,
      tags: {},
      aliases: {},
    };
  }
  let version = input.version;
  if (version === undefined) {
    const cursor = await versions
      .index('nameVersion')
      .openCursor(
        IDBKeyRange.bound([input.name, 0], [input.name, Number.MAX_SAFE_INTEGER]),
        'prev',
      );
    version = ((cursor?.value as ModelVersionRecord | undefined)?.version ?? 0) + 1;
  } else if (await versions.index('nameVersion').get([input.name, version])) {
    return fail(
      new MlflowError(
        'RESOURCE_ALREADY_EXISTS',
        `Model Version (name=${input.name}, version=${version}) already exists.`,
      ),
    );
  }
  const rec: ModelVersionRecord = {
    id: crypto.randomUUID(),
    name: input.name,
    version,
    description: input.description ?? '',
    creationTimestamp: input.creationTimestamp ?? now,
    lastUpdatedTimestamp: now,
    currentStage: input.currentStage ?? 'None',
    source: input.source,
    runId: input.runId ?? '',
    runLink: input.runLink ?? '',
    status: 'READY',
    statusMessage: '',
    tags: { ...(input.tags ?? {}) },
    userId: input.userId ?? '',
    origin: input.origin,
    servable: input.servable,
    size: input.files.reduce((n, f) => n + f.size, 0),
  };
  await versions.put(rec);
  for (const f of input.files) await tx.objectStore('modelFiles').put({ ...f, versionId: rec.id });
  model.lastUpdatedTimestamp = now;
  await models.put(model);
  await tx.done;
  return rec;
}

async function updateVersion(
  db: AnyDB,
  name: string,
  version: number | string,
  change: (rec: ModelVersionRecord) => void,
): Promise<ModelVersionRecord> {
  const v = parseVersion(version);
  const tx = db.transaction('modelVersions', 'readwrite');
  const rec = (await tx.store.index('nameVersion').get([name, v])) as
    ModelVersionRecord | undefined;
  if (!rec) {
    tx.abort();
    await tx.done.catch(() => undefined);
    throw notFoundVersion(name, v);
  }
  change(rec);
  rec.lastUpdatedTimestamp = Date.now();
  await tx.store.put(rec);
  await tx.done;
  return rec;
}

export function updateModelVersion(
  db: AnyDB,
  name: string,
  version: number | string,
  description: string,
): Promise<ModelVersionRecord> {
  return updateVersion(db, name, version, (r) => {
    r.description = description;
  });
}

export function setModelVersionTag(
  db: AnyDB,
  name: string,
  version: number | string,
  key: string,
  value: string,
): Promise<ModelVersionRecord> {
  validateTag(key, value);
  return updateVersion(db, name, version, (r) => {
    r.tags[key] = value;
  });
}

export function deleteModelVersionTag(
  db: AnyDB,
  name: string,
  version: number | string,
  key: string,
): Promise<ModelVersionRecord> {
  return updateVersion(db, name, version, (r) => {
    delete r.tags[key];
  });
}

/** Sets the servable descriptor (e.g. once the Hugging Face weights of a reference are stored). */
export function setServable(
  db: AnyDB,
  name: string,
  version: number | string,
  servable: ServableDescriptor | null,
): Promise<ModelVersionRecord> {
  return updateVersion(db, name, version, (r) => {
    r.servable = servable;
  });
}

/**
 * Moves a version to a stage. With archiveExisting, the other versions in the target stage
 * (Staging or Production only) move to Archived, as MLflow does.
 */
export async function transitionModelVersionStage(
  db: AnyDB,
  name: string,
  version: number | string,
  stage: string,
  archiveExisting = false,
): Promise<ModelVersionRecord> {
  const target = parseStage(stage);
  const v = parseVersion(version);
  const tx = db.transaction('modelVersions', 'readwrite');
  const all = (await tx.store.index('name').getAll(name)) as ModelVersionRecord[];
  const rec = all.find((r) => r.version === v);
  if (!rec) {
    tx.abort();
    await tx.done.catch(() => undefined);
    throw notFoundVersion(name, v);
  }
  const now = Date.now();
  if (archiveExisting && (target === 'Staging' || target === 'Production')) {
    for (const other of all) {
      if (other.version !== v && other.currentStage === target) {
        await tx.store.put({ ...other, currentStage: 'Archived', lastUpdatedTimestamp: now });
      }
    }
  }
  rec.currentStage = target;
  rec.lastUpdatedTimestamp = now;
  await tx.store.put(rec);
  await tx.done;
  return rec;
}

/** Deletes a version, the aliases pointing at it and its file records; returns the blob ids. */
export async function deleteModelVersion(
  db: AnyDB,
  name: string,
  version: number | string,
): Promise<string[]> {
  const v = parseVersion(version);
  const tx = db.transaction(['registeredModels', 'modelVersions', 'modelFiles'], 'readwrite');
  const rec = (await tx.objectStore('modelVersions').index('nameVersion').get([name, v])) as
    ModelVersionRecord | undefined;
  if (!rec) {
    tx.abort();
    await tx.done.catch(() => undefined);
    throw notFoundVersion(name, v);
  }
  const files = (await tx
    .objectStore('modelFiles')
    .index('versionId')
    .getAll(rec.id)) as ModelFileRecord[];
  for (const f of files) await tx.objectStore('modelFiles').delete([f.versionId, f.path]);
  await tx.objectStore('modelVersions').delete(rec.id);
  const model = (await tx.objectStore('registeredModels').get(name)) as
    RegisteredModelRecord | undefined;
  if (model) {
    for (const [a, av] of Object.entries(model.aliases)) if (av === v) delete model.aliases[a];
    model.lastUpdatedTimestamp = Date.now();
    await tx.objectStore('registeredModels').put(model);
  }
  await tx.done;
  return files.map((f) => f.blobId);
}

/** The latest version per stage (all stages when none are given). */
export async function getLatestVersions(
  db: AnyDB,
  name: string,
  stages?: string[],
): Promise<ModelVersionRecord[]> {
  await getRegisteredModelRecord(db, name);
  const wanted = stages && stages.length > 0 ? stages.map(parseStage) : STAGES;
  const latest = new Map<ModelVersionStage, ModelVersionRecord>();
  for (const v of await listModelVersionRecords(db, name)) {
    const cur = latest.get(v.currentStage);
    if (wanted.includes(v.currentStage) && (!cur || v.version > cur.version))
      latest.set(v.currentStage, v);
  }
  return [...latest.values()].sort((a, b) => a.version - b.version);
}

// ---------------------------------------------------------------- search

interface Clause {
  key: string;
  tag: boolean;
  op: '=' | '!=' | 'LIKE' | 'ILIKE' | 'IN' | 'NOT IN';
  values: string[];
}

function unquote(s: string): string {
  const q = s[0];
  return s.slice(1, -1).replaceAll(`${q}${q}`, q!).replace(/\\(.)/g, '$1');
}

const CLAUSE =
  /^\s*((?:tags?\.)?(?:`[^`]+`|"[^"]+"|[\w.]+))\s*(=|!=|NOT\s+IN|IN|ILIKE|LIKE)\s*('(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*"|\([^)]*\))\s*$/i;

/** Parses a registry search filter: `name LIKE '%phi%' AND tags.task = 'chat'`. */
export function parseRegistryFilter(filter: string | undefined, allowed: string[]): Clause[] {
  if (!filter || !filter.trim()) return [];
  // Split on AND outside quotes.
  const parts: string[] = [];
  let cur = '';
  let quote: string | null = null;
  for (let i = 0; i < filter.length; i++) {
    const ch = filter[i]!;
    if (quote) {
      if (ch === quote) quote = null;
      cur += ch;
    } else if (ch === "'" || ch === '"' || ch === '`') {
      quote = ch;
      cur += ch;
    } else if (/\s/.test(ch) && /^\s+and\s/i.test(filter.slice(i, i + 5))) {
      parts.push(cur);
      cur = '';
      i += filter.slice(i).match(/^\s+and/i)![0].length - 1;
    } else cur += ch;
  }
  parts.push(cur);
  return parts.map((p) => {
    const m = CLAUSE.exec(p);
    if (!m)
      throw new MlflowError(
        'INVALID_PARAMETER_VALUE',
        `Invalid filter '${filter}': could not parse '${p.trim()}'.`,
      );
    let ident = m[1]!;
    const tag = /^tags?\./i.test(ident);
    if (tag) ident = ident.replace(/^tags?\./i, '');
    if (/^[`"]/.test(ident)) ident = ident.slice(1, -1);
    if (!tag && !allowed.includes(ident)) {
      throw new MlflowError(
        'INVALID_PARAMETER_VALUE',
        `Invalid attribute key '${ident}' specified. Valid keys are '${allowed.join("', '")}' and tags.<key>.`,
      );
    }
    const op = m[2]!.toUpperCase().replace(/\s+/g, ' ') as Clause['op'];
    const raw = m[3]!;
    const values = raw.startsWith('(')
      ? (raw.slice(1, -1).match(/'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"/g) ?? []).map(unquote)
      : [unquote(raw)];
    if ((op === 'IN' || op === 'NOT IN') !== raw.startsWith('(')) {
      throw new MlflowError(
        'INVALID_PARAMETER_VALUE',
        `Invalid filter '${filter}': '${op}' needs ${op.endsWith('IN') ? 'a list' : 'a quoted string'}.`,
      );
    }
    return { key: ident, tag, op, values };
  });
}

export function likeToRegExp(pattern: string, caseInsensitive: boolean): RegExp {
  let re = '';
  for (const ch of pattern)
    re += ch === '%' ? '.*' : ch === '_' ? '.' : ch.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^${re}$`, caseInsensitive ? 'is' : 's');
}

function matches(
  clauses: Clause[],
  get: (key: string, tag: boolean) => string | undefined,
): boolean {
  return clauses.every((c) => {
    const v = get(c.key, c.tag);
    if (v === undefined) return false;
    switch (c.op) {
      case '=':
        return v === c.values[0];
      case '!=':
        return v !== c.values[0];
      case 'LIKE':
        return likeToRegExp(c.values[0]!, false).test(v);
      case 'ILIKE':
        return likeToRegExp(c.values[0]!, true).test(v);
      case 'IN':
        return c.values.includes(v);
      case 'NOT IN':
        return !c.values.includes(v);
    }
  });
}

export interface SearchOptions {
  filter?: string;
  /** e.g. ['name ASC'], ['last_updated_timestamp DESC']. */
  orderBy?: string[];
  maxResults?: number;
  pageToken?: string;
}

export interface Page<T> {
  items: T[];
  nextPageToken?: string;
}

function paginate<T>(all: T[], opts: SearchOptions, defaultMax: number): Page<T> {
  const max = opts.maxResults ?? defaultMax;
  let offset = 0;
  if (opts.pageToken) {
    try {
      offset = (JSON.parse(atob(opts.pageToken)) as { offset: number }).offset;
    } catch {
      throw new MlflowError('INVALID_PARAMETER_VALUE', 'Invalid page token.');
    }
  }
  const items = all.slice(offset, offset + max);
  const page: Page<T> = { items };
  if (offset + max < all.length)
    page.nextPageToken = btoa(JSON.stringify({ offset: offset + max }));
  return page;
}

function comparator<T>(
  orderBy: string[] | undefined,
  fields: Record<string, (x: T) => string | number>,
  fallback: string[],
): (a: T, b: T) => number {
  const clauses = (orderBy && orderBy.length > 0 ? orderBy : fallback).map((o) => {
    const [key = '', dir = 'ASC'] = o.trim().split(/\s+/);
    const get = fields[key];
    if (!get) throw new MlflowError('INVALID_PARAMETER_VALUE', `Invalid order_by key '${key}'.`);
    return { get, sign: dir.toUpperCase() === 'DESC' ? -1 : 1 };
  });
  return (a, b) => {
    for (const c of clauses) {
      const x = c.get(a);
      const y = c.get(b);
      if (x < y) return -c.sign;
      if (x > y) return c.sign;
    }
    return 0;
  };
}

/** MLflow's search_registered_models: filter by `name` and `tags.*`, default order name ASC. */
export async function searchRegisteredModels(
  db: AnyDB,
  opts: SearchOptions = {},
): Promise<Page<RegisteredModelRecord>> {
  const clauses = parseRegistryFilter(opts.filter, ['name']);
  const all = (await listRegisteredModelRecords(db)).filter((m) =>
    matches(clauses, (k, tag) => (tag ? m.tags[k] : m.name)),
  );
  all.sort(
    comparator<RegisteredModelRecord>(
      opts.orderBy,
      {
        name: (m) => m.name,
        creation_timestamp: (m) => m.creationTimestamp,
        last_updated_timestamp: (m) => m.lastUpdatedTimestamp,
        timestamp: (m) => m.lastUpdatedTimestamp,
      },
      ['name ASC'],
    ),
  );
  return paginate(all, opts, 100);
}

/** MLflow's search_model_versions: `name`, `run_id`, `source_path`, `tags.*`. */
export async function searchModelVersions(
  db: AnyDB,
  opts: SearchOptions = {},
): Promise<Page<ModelVersionRecord>> {
  const clauses = parseRegistryFilter(opts.filter, [
    'name',
    'run_id',
    'source_path',
    'version_number',
  ]);
  const all = ((await db.getAll('modelVersions')) as ModelVersionRecord[]).filter((v) =>
    matches(clauses, (k, tag) => {
      if (tag) return v.tags[k];
      if (k === 'name') return v.name;
      if (k === 'run_id') return v.runId;
      if (k === 'version_number') return String(v.version);
      return v.source;
    }),
  );
  all.sort(
    comparator<ModelVersionRecord>(
      opts.orderBy,
      {
        name: (v) => v.name,
        version_number: (v) => v.version,
        creation_timestamp: (v) => v.creationTimestamp,
        last_updated_timestamp: (v) => v.lastUpdatedTimestamp,
      },
      ['last_updated_timestamp DESC', 'name ASC', 'version_number DESC'],
    ),
  );
  return paginate(all, opts, 10_000);
}

// ---------------------------------------------------------------- imports within a larger write

export const REGISTRY_STORES = ['registeredModels', 'modelVersions', 'modelFiles'] as const;

export interface RegistryImport {
  models: RegisteredModelRecord[];
  versions: ModelVersionRecord[];
  /** The versions' file records, their blobs already written. */
  files: ModelFileRecord[];
  /** Registered models removed first, with their versions and files (import with replace). */
  replaceNames: string[];
}

/**
 * Writes imported registry records inside a caller's transaction (one that covers
 * REGISTRY_STORES), so that an mlruns import lands tracking and registry data together or not at
 * all. Returns the blob ids of the replaced models' files, to delete once the transaction commits.
 */
export async function writeRegistryImport(
  tx: IDBPTransaction<unknown, string[], 'readwrite'>,
  data: RegistryImport,
): Promise<string[]> {
  const models = tx.objectStore('registeredModels');
  const versions = tx.objectStore('modelVersions');
  const files = tx.objectStore('modelFiles');
  const freed: string[] = [];
  for (const name of data.replaceNames) {
    for (const v of (await versions.index('name').getAll(name)) as ModelVersionRecord[]) {
      for (const f of (await files.index('versionId').getAll(v.id)) as ModelFileRecord[]) {
        freed.push(f.blobId);
        await files.delete([f.versionId, f.path]);
      }
      await versions.delete(v.id);
    }
    await models.delete(name);
  }
  const ops: Promise<unknown>[] = [];
  for (const m of data.models) {
    validateModelName(m.name);
    ops.push(models.add(m));
  }
  for (const v of data.versions) ops.push(versions.add(v));
  for (const f of data.files) ops.push(files.put(f));
  await Promise.all(ops);
  return freed;
}
