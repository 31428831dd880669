/**
 * The model registry of an `mlruns/` store (Python MLflow's registry FileStore, `mlruns/models/`):
 * registered models, versions, tags and aliases, read and written. Pure: path -> bytes in and out.
 *
 * ```
 * models/<name>/meta.yaml            name, description, timestamps, aliases (a copy)
 * models/<name>/tags/<key>           raw value
 * models/<name>/aliases/<alias>      the version number as text
 * models/<name>/version-<N>/meta.yaml
 * models/<name>/version-<N>/tags/<key>
 * ```
 */
import { checkSafePath, fields, findRoot, lineOfKey, text, type Fields } from './reader.ts';
import { dumpFlatYaml, dumpNestedMap, type YamlScalar } from './pyformat.ts';
import { MlrunsParseError } from './types.ts';

/** A version's stage as the file store has it; `Deleted_Internal` marks a deleted version. */
export type MlrunsStage = 'None' | 'Staging' | 'Production' | 'Archived' | 'Deleted_Internal';

export interface MlrunsModelVersion {
  name: string;
  version: number;
  creationTimestamp: number;
  lastUpdatedTimestamp: number;
  currentStage: MlrunsStage;
  description: string | null;
  source: string;
  runId: string | null;
  runLink: string | null;
  status: 'PENDING_REGISTRATION' | 'FAILED_REGISTRATION' | 'READY';
  statusMessage: string | null;
  /** Where the files are (resolved at registration): `file://…/artifacts`, `runs:/…`. */
  storageLocation: string | null;
  userId: string | null;
  /** MLflow 3: the logged model (`m-…`) the version was registered from. */
  modelId: string | null;
  tags: Record<string, string>;
}

export interface MlrunsRegisteredModel {
  name: string;
  creationTimestamp: number;
  lastUpdatedTimestamp: number;
  description: string | null;
  tags: Record<string, string>;
  /** alias -> version number (from `aliases/`, the files MLflow reads). */
  aliases: Record<string, number>;
  versions: MlrunsModelVersion[];
}

export interface MlrunsRegistry {
  models: MlrunsRegisteredModel[];
  /** Original meta.yaml bytes, by path relative to the mlruns root (`models/<name>/meta.yaml`). */
  originals: Map<string, Uint8Array>;
  /** Files under `models/` that are not part of the registry layout, by full path. */
  ignored: string[];
}

const STAGES: readonly MlrunsStage[] = [
  'None',
  'Staging',
  'Production',
  'Archived',
  'Deleted_Internal',
];
const STATUSES = ['PENDING_REGISTRATION', 'FAILED_REGISTRATION', 'READY'] as const;

/** Keys of the meta.yaml files this module maps; others in an imported file are carried over. */
export const REGISTERED_MODEL_META_KEYS = new Set([
  'aliases',
  'creation_timestamp',
  'description',
  'last_updated_timestamp',
  'name',
]);
export const MODEL_VERSION_META_KEYS = new Set([
  'creation_timestamp',
  'current_stage',
  'description',
  'last_updated_timestamp',
  'name',
  'run_id',
  'run_link',
  'source',
  'status',
  'status_message',
  'storage_location',
  'user_id',
  'version',
]);

/** Reads a meta.yaml, turning any failure of the YAML library into an error naming the file. */
function readFields(file: string, bytes: Uint8Array): Fields {
  try {
    return fields(file, bytes);
  } catch (e) {
    if (e instanceof MlrunsParseError) throw e;
    throw new MlrunsParseError(file, null, `unreadable YAML: ${(e as Error).message}`);
  }
}

function checkName(file: string, kind: string, name: string): void {
  if (name === '' || name.length > 256 || /[\\%]/.test(name) || name === '.' || name === '..') {
    throw new MlrunsParseError(file, null, `'${name}' is not a valid ${kind} name`);
  }
}

export function parseRegisteredModelMeta(
  file: string,
  bytes: Uint8Array,
  folderName: string,
): Omit<MlrunsRegisteredModel, 'tags' | 'aliases' | 'versions'> {
  const f = readFields(file, bytes);
  const name = f.str('name');
  if (name !== folderName) {
    throw new MlrunsParseError(
      file,
      lineOfKey(f.src, 'name'),
      `name '${name}' does not match its folder '${folderName}'`,
    );
  }
  const created = f.optInt('creation_timestamp') ?? 0;
  return {
    name,
    creationTimestamp: created,
    lastUpdatedTimestamp: f.optInt('last_updated_timestamp') ?? created,
    description: f.optStr('description'),
  };
}

export function parseModelVersionMeta(
  file: string,
  bytes: Uint8Array,
  modelName: string,
  folderVersion: number,
): Omit<MlrunsModelVersion, 'tags'> {
  const f = readFields(file, bytes);
  // MLflow writes the version as an int; REST and older tools a string.
  const version = Number(f.str('version'));
  if (!Number.isInteger(version) || version !== folderVersion) {
    f.fail('version', `the number of its folder (${folderVersion})`);
  }
  const name = f.str('name', modelName);
  if (name !== modelName) f.fail('name', `'${modelName}' (its registered model's folder)`);
  const stage = f.str('current_stage', 'None');
  const currentStage = STAGES.find((s) => s.toLowerCase() === stage.toLowerCase());
  if (currentStage === undefined) return f.fail('current_stage', `one of ${STAGES.join(', ')}`);
  const status = f.str('status', 'READY');
  if (!(STATUSES as readonly string[]).includes(status)) f.fail('status', STATUSES.join(', '));
  const created = f.optInt('creation_timestamp') ?? 0;
  return {
    name,
    version,
    creationTimestamp: created,
    lastUpdatedTimestamp: f.optInt('last_updated_timestamp') ?? created,
    currentStage,
    description: f.optStr('description'),
    source: f.str('source', ''),
    runId: f.optStr('run_id'),
    runLink: f.optStr('run_link'),
    status: status as MlrunsModelVersion['status'],
    statusMessage: f.optStr('status_message'),
    storageLocation: f.optStr('storage_location'),
    userId: f.optStr('user_id'),
    modelId: f.optStr('model_id'),
  };
}

/**
 * Reads the `models/` folder of an mlruns tree (paths as readMlruns takes them: any wrapper
 * folder such as `mlruns/` is found the same way). A tree without one gives no models.
 */
export function readMlrunsRegistry(files: Map<string, Uint8Array>): MlrunsRegistry {
  const paths = [...files.keys()].filter((p) => !p.endsWith('/'));
  for (const p of paths) checkSafePath(p);
  const root = findRoot(paths);
  const byModel = new Map<string, Map<string, Uint8Array>>();
  const ignored: string[] = [];
  for (const full of paths) {
    if (!full.startsWith(`${root}models/`)) continue;
    const rest = full.slice(root.length + 'models/'.length);
    const slash = rest.indexOf('/');
    if (slash <= 0) {
      ignored.push(full);
      continue;
    }
    const name = rest.slice(0, slash);
    let m = byModel.get(name);
    if (!m) byModel.set(name, (m = new Map()));
    m.set(rest.slice(slash + 1), files.get(full)!);
  }

  const models: MlrunsRegisteredModel[] = [];
  const originals = new Map<string, Uint8Array>();
  for (const [folder, own] of byModel) {
    const base = `${root}models/${folder}`;
    const metaBytes = own.get('meta.yaml');
    if (!metaBytes) {
      throw new MlrunsParseError(
        `${base}/meta.yaml`,
        null,
        'missing: every registered model folder needs a meta.yaml',
      );
    }
    checkName(`${base}/meta.yaml`, 'registered model', folder);
    const head = parseRegisteredModelMeta(`${base}/meta.yaml`, metaBytes, folder);
    originals.set(`models/${folder}/meta.yaml`, metaBytes);
    const model: MlrunsRegisteredModel = { ...head, tags: {}, aliases: {}, versions: [] };
    const versionFiles = new Map<number, Map<string, Uint8Array>>();
    for (const [rel, bytes] of own) {
      if (rel === 'meta.yaml') continue;
      const path = `${base}/${rel}`;
      const parts = rel.split('/');
      if (parts[0] === 'tags' && parts.length >= 2) {
        model.tags[parts.slice(1).join('/')] = text(path, bytes);
      } else if (parts[0] === 'aliases' && parts.length === 2) {
        const alias = parts[1]!;
        if (!/^[\w-]{1,255}$/.test(alias)) {
          throw new MlrunsParseError(path, null, `'${alias}' is not a valid alias name`);
        }
        const v = text(path, bytes).trim();
        if (!/^\d+$/.test(v)) {
          throw new MlrunsParseError(
            path,
            1,
            `expected a version number, found "${v.slice(0, 40)}"`,
          );
        }
        model.aliases[alias] = Number(v);
      } else if (/^version-\d+$/.test(parts[0]!) && parts.length >= 2) {
        const n = Number(parts[0]!.slice('version-'.length));
        let vf = versionFiles.get(n);
        if (!vf) versionFiles.set(n, (vf = new Map()));
        vf.set(parts.slice(1).join('/'), bytes);
      } else {
        ignored.push(path);
      }
    }
    for (const [n, vf] of [...versionFiles].sort((a, b) => a[0] - b[0])) {
      const vbase = `${base}/version-${n}`;
      const vmeta = vf.get('meta.yaml');
      if (!vmeta) {
        throw new MlrunsParseError(
          `${vbase}/meta.yaml`,
          null,
          'missing: every model version folder needs a meta.yaml',
        );
      }
      const v: MlrunsModelVersion = {
        ...parseModelVersionMeta(`${vbase}/meta.yaml`, vmeta, folder, n),
        tags: {},
      };
      originals.set(`models/${folder}/version-${n}/meta.yaml`, vmeta);
      for (const [rel, bytes] of vf) {
        if (rel === 'meta.yaml') continue;
        if (rel.startsWith('tags/') && rel.length > 5) {
          v.tags[rel.slice(5)] = text(`${vbase}/${rel}`, bytes);
        } else ignored.push(`${vbase}/${rel}`);
      }
      model.versions.push(v);
    }
    for (const [alias, version] of Object.entries(model.aliases)) {
      const target = model.versions.find((v) => v.version === version);
      if (!target || target.currentStage === 'Deleted_Internal') {
        throw new MlrunsParseError(
          `${base}/aliases/${alias}`,
          1,
          `alias '${alias}' points at version ${version}, which ${target ? 'is deleted' : 'does not exist'}`,
        );
      }
    }
    models.push(model);
  }
  models.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { models, originals, ignored };
}

// ---------------------------------------------------------------- writing

export type RegistryMetaExtras = Record<string, YamlScalar>;

const encoder = new TextEncoder();

/** models/<name>/meta.yaml as the FileStore writes it (aliases copied in, as a map). */
export function registeredModelMetaYaml(
  m: Omit<MlrunsRegisteredModel, 'tags' | 'versions'>,
  extras: RegistryMetaExtras = {},
): string {
  const flat: Record<string, YamlScalar> = {
    ...extras,
    creation_timestamp: m.creationTimestamp,
    description: m.description,
    last_updated_timestamp: m.lastUpdatedTimestamp,
    name: m.name,
  };
  const aliases = Object.fromEntries(
    Object.entries(m.aliases)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([a, v]) => [a, String(v)]),
  );
  // `aliases` sorts first among the keys MLflow writes; extras that sort before it go first.
  const before = Object.fromEntries(Object.entries(flat).filter(([k]) => k < 'aliases'));
  const after = Object.fromEntries(Object.entries(flat).filter(([k]) => k > 'aliases'));
  return dumpFlatYaml(before) + dumpNestedMap('aliases', aliases) + dumpFlatYaml(after);
}

export function modelVersionMetaYaml(
  v: Omit<MlrunsModelVersion, 'tags'>,
  /** Keys of an imported file this module does not write (`model_id`, `workspace`…), kept. */
  extras: RegistryMetaExtras = {},
): string {
  return dumpFlatYaml({
    ...extras,
    creation_timestamp: v.creationTimestamp,
    current_stage: v.currentStage,
    description: v.description,
    last_updated_timestamp: v.lastUpdatedTimestamp,
    name: v.name,
    run_id: v.runId,
    run_link: v.runLink,
    source: v.source,
    status: v.status,
    status_message: v.statusMessage,
    storage_location: v.storageLocation,
    user_id: v.userId,
    version: v.version,
  });
}

export interface RegistryWriteOptions {
  /**
   * The meta.yaml bytes of an earlier import, by path relative to the mlruns root: unchanged
   * entities get them back byte for byte, changed ones keep their unknown keys.
   */
  originals?: (rel: string) => Uint8Array | undefined;
}

/** Every file of the `models/` folder for these models, by path relative to the mlruns root. */
export function writeMlrunsRegistry(
  models: readonly MlrunsRegisteredModel[],
  options: RegistryWriteOptions = {},
): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  const put = (p: string, s: string) => out.set(p, encoder.encode(s));
  for (const m of models) {
    const base = `models/${m.name}`;
    out.set(
      `${base}/meta.yaml`,
      registeredModelMetaFile(m, options.originals?.(`${base}/meta.yaml`)),
    );
    for (const [k, v] of Object.entries(m.tags)) put(`${base}/tags/${k}`, v);
    for (const [a, v] of Object.entries(m.aliases)) put(`${base}/aliases/${a}`, String(v));
    for (const v of m.versions) {
      const rel = `${base}/version-${v.version}/meta.yaml`;
      out.set(rel, modelVersionMetaFile(v, options.originals?.(rel)));
      for (const [k, t] of Object.entries(v.tags)) put(`${base}/version-${v.version}/tags/${k}`, t);
    }
  }
  return out;
}

// ---------------------------------------------------------------- exporting what was imported

const decoder = new TextDecoder();

function extrasOf(map: Record<string, unknown>, known: ReadonlySet<string>): RegistryMetaExtras {
  const out: RegistryMetaExtras = {};
  for (const [k, v] of Object.entries(map)) {
    if (known.has(k)) continue;
    if (v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean')
      out[k] = v;
  }
  return out;
}

/** '' where the original file had null (or had no file: MLflow's default) reads back as null. */
function nullable(now: string | null, before: string | null | undefined): string | null {
  if (now !== '' && now !== null) return now;
  if (before === undefined) return null;
  return before === null ? null : now;
}

/**
 * The `models/<name>/meta.yaml` to export: the imported bytes when nothing it holds has changed
 * since, else a rewrite that keeps the keys this module does not map (`workspace`…).
 */
export function registeredModelMetaFile(
  now: Omit<MlrunsRegisteredModel, 'tags' | 'versions'>,
  original?: Uint8Array,
): Uint8Array {
  if (!original) {
    return encoder.encode(
      registeredModelMetaYaml({ ...now, description: nullable(now.description, undefined) }),
    );
  }
  const f = readFields('meta.yaml', original);
  const before = parseRegisteredModelMeta('meta.yaml', original, f.str('name'));
  const extras = extrasOf(f.map, REGISTERED_MODEL_META_KEYS);
  const rawAliases = f.map['aliases'];
  const aliases: Record<string, number> = {};
  if (rawAliases && typeof rawAliases === 'object' && !Array.isArray(rawAliases)) {
    for (const [a, v] of Object.entries(rawAliases)) aliases[a] = Number(v);
  }
  const asImported = registeredModelMetaYaml({ ...before, aliases }, extras);
  const text = registeredModelMetaYaml(
    { ...now, description: nullable(now.description, before.description) },
    extras,
  );
  return text === asImported && decoder.decode(original) === asImported
    ? original
    : encoder.encode(text);
}

/** The `version-<N>/meta.yaml` to export, on the same terms as registeredModelMetaFile. */
export function modelVersionMetaFile(
  now: Omit<MlrunsModelVersion, 'tags'>,
  original?: Uint8Array,
): Uint8Array {
  if (!original) {
    return encoder.encode(
      modelVersionMetaYaml({
        ...now,
        description: nullable(now.description, undefined),
        runId: nullable(now.runId, undefined),
        runLink: nullable(now.runLink, undefined),
        statusMessage: nullable(now.statusMessage, undefined),
        userId: nullable(now.userId, undefined),
      }),
    );
  }
  const f = readFields('meta.yaml', original);
  const before = parseModelVersionMeta(
    'meta.yaml',
    original,
    f.str('name', now.name),
    Number(f.str('version')),
  );
  const extras = extrasOf(f.map, MODEL_VERSION_META_KEYS);
  const asImported = modelVersionMetaYaml(before, extras);
  const text = modelVersionMetaYaml(
    {
      ...now,
      description: nullable(now.description, before.description),
      runId: nullable(now.runId, before.runId),
      runLink: nullable(now.runLink, before.runLink),
      statusMessage: nullable(now.statusMessage, before.statusMessage),
      userId: nullable(now.userId, before.userId),
      storageLocation: now.storageLocation ?? before.storageLocation,
    },
    extras,
  );
  return text === asImported && decoder.decode(original) === asImported
    ? original
    : encoder.encode(text);
}
