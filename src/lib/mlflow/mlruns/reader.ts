/**
 * Reads an `mlruns/` tree written by Python MLflow's FileStore (1.x to 3.x) from a map of
 * path -> bytes. Pure: no storage, no DOM. Every failure names the file and, where it can, the line.
 */
import { isMap, isScalar, parseDocument } from 'yaml';
import type { Dataset, DatasetInput, Experiment, Metric, RunInfo } from '../entities.ts';
import { validateKey } from '../validation.ts';
import { MlflowError } from '../errors.ts';
import { parsePyFloat } from './pyformat.ts';
import {
  MlrunsParseError,
  RESERVED_EXPERIMENT_FOLDERS,
  RUN_STATUS_BY_NUMBER,
  type MlrunsExperiment,
  type MlrunsRun,
  type MlrunsTree,
} from './types.ts';

const decoder = new TextDecoder('utf-8', { fatal: true });

export function text(file: string, bytes: Uint8Array): string {
  try {
    return decoder.decode(bytes);
  } catch {
    throw new MlrunsParseError(file, null, 'is not valid UTF-8 text');
  }
}

export function lineOfKey(src: string, key: string): number | null {
  const lines = src.split('\n');
  const i = lines.findIndex((l) => l.startsWith(`${key}:`));
  return i < 0 ? null : i + 1;
}

export type YamlMap = Record<string, unknown>;

/** Aliases a document may expand before it is refused (a "billion laughs" file). */
const MAX_ALIAS_COUNT = 100;

function toJSGuarded(file: string, doc: ReturnType<typeof parseDocument>): unknown {
  try {
    return doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (e) {
    // The yaml package stops an expansion bomb with a ReferenceError ("Excessive alias count").
    if (e instanceof ReferenceError || (e instanceof Error && /alias/i.test(e.message))) {
      throw new MlrunsParseError(file, 1, 'YAML aliases expand too far');
    }
    throw e;
  }
}

/**
 * The source text of each top-level plain (unquoted) scalar. PyYAML (which writes these files)
 * resolves plain scalars by YAML 1.1 rules, where `0e0`, `1e5` or `0o17` are strings; the yaml
 * package reads them as numbers. A key that must be a string takes this text instead.
 */
function plainSources(doc: ReturnType<typeof parseDocument>): Record<string, string> {
  const out: Record<string, string> = {};
  const contents = doc.contents;
  if (!isMap(contents)) return out;
  for (const pair of contents.items) {
    const k: unknown = isScalar(pair.key) ? pair.key.value : pair.key;
    const v = pair.value;
    if (
      typeof k === 'string' &&
      isScalar(v) &&
      v.type === 'PLAIN' &&
      typeof v.source === 'string'
    ) {
      out[k] = v.source;
    }
  }
  return out;
}

function parseYamlMap(
  file: string,
  bytes: Uint8Array,
): { map: YamlMap; src: string; plain: Record<string, string> } {
  const src = text(file, bytes);
  const doc = parseDocument(src, { uniqueKeys: true, prettyErrors: false });
  const err = doc.errors[0];
  if (err) {
    const line = src.slice(0, err.pos[0]).split('\n').length;
    throw new MlrunsParseError(file, line, `invalid YAML: ${err.message.split('\n')[0]}`);
  }
  const value: unknown = toJSGuarded(file, doc);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new MlrunsParseError(file, 1, 'expected a YAML mapping of keys to values');
  }
  return { map: value as YamlMap, src, plain: plainSources(doc) };
}

export class Fields {
  constructor(
    readonly file: string,
    readonly map: YamlMap,
    readonly src: string,
    /** Source text of plain scalars, by key (see plainSources). */
    readonly plain: Record<string, string> = {},
  ) {}
  fail(key: string, expected: string): never {
    const v = this.map[key];
    throw new MlrunsParseError(
      this.file,
      lineOfKey(this.src, key),
      `key '${key}' must be ${expected}, found ${v === undefined ? 'nothing' : JSON.stringify(v)}`,
    );
  }
  has(key: string): boolean {
    return key in this.map;
  }
  str(key: string, fallback?: string): string {
    const v = this.map[key];
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      this.fail(key, 'a string');
    }
    if (typeof v === 'string') return v;
    if (typeof v === 'number' || typeof v === 'boolean') return this.plain[key] ?? String(v);
    this.fail(key, 'a string');
  }
  optStr(key: string): string | null {
    const v = this.map[key];
    return v === undefined || v === null ? null : this.str(key);
  }
  int(key: string, fallback?: number): number {
    const v = this.map[key];
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      this.fail(key, 'an integer');
    }
    if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
    this.fail(key, 'an integer');
  }
  optInt(key: string): number | null {
    const v = this.map[key];
    return v === undefined || v === null ? null : this.int(key);
  }
}

export function fields(file: string, bytes: Uint8Array): Fields {
  const { map, src, plain } = parseYamlMap(file, bytes);
  return new Fields(file, map, src, plain);
}

export function checkSafePath(p: string): void {
  const parts = p.split('/');
  if (
    p.startsWith('/') ||
    p.includes('\\') ||
    p.includes('\0') ||
    /^[A-Za-z]:/.test(p) ||
    parts.some((s) => s === '..')
  ) {
    throw new MlrunsParseError(p, null, 'unsafe path (absolute, parent folder or backslash)');
  }
}

/** Drops leading folders (e.g. `mlruns/`) until experiment folders are at the top. */
export function findRoot(paths: string[]): string {
  let prefix = '';
  for (;;) {
    const rest = paths.filter((p) => p.startsWith(prefix)).map((p) => p.slice(prefix.length));
    if (rest.length === 0) return prefix;
    const first = rest[0]!.split('/')[0]!;
    const allShare = rest.every((p) => p.split('/')[0] === first && p.includes('/'));
    if (!allShare || first === '.trash' || rest.includes(`${first}/meta.yaml`)) return prefix;
    prefix += `${first}/`;
  }
}

function keyFromPath(kind: 'metric' | 'param' | 'tag', file: string, rel: string): string {
  try {
    validateKey(kind, rel);
  } catch (e) {
    if (e instanceof MlflowError) throw new MlrunsParseError(file, null, e.message);
    throw e;
  }
  return rel;
}

function parseMetricFile(file: string, key: string, bytes: Uint8Array): Metric[] {
  const src = text(file, bytes);
  const out: Metric[] = [];
  const lines = src.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    const parts = line.split(/\s+/);
    if (parts.length !== 2 && parts.length !== 3 && parts.length !== 5) {
      throw new MlrunsParseError(
        file,
        i + 1,
        `expected "<timestamp> <value> <step>" (2, 3 or 5 fields), found ${parts.length} fields: "${line.slice(0, 80)}"`,
      );
    }
    const [ts, val, step] = parts as [string, string, string | undefined];
    if (!/^-?\d+$/.test(ts))
      throw new MlrunsParseError(file, i + 1, `timestamp must be an integer, found "${ts}"`);
    const value = parsePyFloat(val);
    if (value === undefined)
      throw new MlrunsParseError(file, i + 1, `value must be a number, found "${val}"`);
    // MLflow 3's five-field lines carry a dataset; its reader takes the step from field 3 as well.
    if (step !== undefined && !/^-?\d+$/.test(step)) {
      throw new MlrunsParseError(file, i + 1, `step must be an integer, found "${step}"`);
    }
    out.push({ key, value, timestamp: Number(ts), step: step === undefined ? 0 : Number(step) });
  }
  return out;
}

interface ExpFiles {
  /** e.g. '12' or '.trash/12' */
  dir: string;
  /** The folder as named in the input (with any wrapper folder), for messages. */
  label: string;
  id: string;
  trashed: boolean;
  files: Map<string, Uint8Array>;
}

function parseExperimentMeta(
  path: string,
  bytes: Uint8Array,
  folderId: string,
  trashed: boolean,
): Experiment {
  const f = fields(path, bytes);
  const id = f.str('experiment_id');
  if (id !== folderId) {
    throw new MlrunsParseError(
      path,
      lineOfKey(f.src, 'experiment_id'),
      `experiment_id '${id}' does not match its folder '${folderId}'`,
    );
  }
  const stage = f.str('lifecycle_stage', trashed ? 'deleted' : 'active');
  if (stage !== 'active' && stage !== 'deleted') f.fail('lifecycle_stage', "'active' or 'deleted'");
  return {
    experimentId: id,
    name: f.str('name'),
    artifactLocation: f.str('artifact_location', ''),
    lifecycleStage: stage as Experiment['lifecycleStage'],
    creationTime: f.optInt('creation_time') ?? 0,
    lastUpdateTime: f.optInt('last_update_time') ?? f.optInt('creation_time') ?? 0,
    tags: {},
  };
}

function parseRunMeta(path: string, bytes: Uint8Array, folderId: string, experimentId: string) {
  const f = fields(path, bytes);
  const runId = f.optStr('run_id') ?? f.str('run_uuid');
  if (runId !== folderId) {
    throw new MlrunsParseError(
      path,
      lineOfKey(f.src, 'run_id'),
      `run_id '${runId}' does not match its folder '${folderId}'`,
    );
  }
  const rawStatus = f.map['status'];
  let status: RunInfo['status'] = 'RUNNING';
  if (rawStatus === undefined || rawStatus === null) status = 'RUNNING';
  else if (typeof rawStatus === 'number' && rawStatus in RUN_STATUS_BY_NUMBER) {
    status = RUN_STATUS_BY_NUMBER[rawStatus as keyof typeof RUN_STATUS_BY_NUMBER];
  } else if (
    typeof rawStatus === 'string' &&
    Object.values(RUN_STATUS_BY_NUMBER).includes(rawStatus as RunInfo['status'])
  ) {
    status = rawStatus as RunInfo['status'];
  } else {
    f.fail('status', 'a run status (1-5 or RUNNING, SCHEDULED, FINISHED, FAILED, KILLED)');
  }
  const stage = f.str('lifecycle_stage', 'active');
  if (stage !== 'active' && stage !== 'deleted') f.fail('lifecycle_stage', "'active' or 'deleted'");
  const info: RunInfo = {
    runId,
    experimentId,
    runName: f.optStr('run_name') ?? '',
    userId: f.str('user_id', ''),
    status,
    startTime: f.int('start_time', 0),
    endTime: f.optInt('end_time'),
    artifactUri: f.str('artifact_uri', ''),
    lifecycleStage: stage as RunInfo['lifecycleStage'],
  };
  return { info, deletedTime: f.optInt('deleted_time'), hasRunName: f.optStr('run_name') !== null };
}

function parseDatasetMeta(path: string, bytes: Uint8Array): Dataset {
  const f = fields(path, bytes);
  const d: Dataset = {
    name: f.str('name'),
    digest: f.str('digest'),
    sourceType: f.str('source_type'),
    source: f.str('source'),
  };
  const schema = f.optStr('schema');
  const profile = f.optStr('profile');
  if (schema !== null) d.schema = schema;
  if (profile !== null) d.profile = profile;
  return d;
}

function readExperiment(e: ExpFiles): MlrunsExperiment {
  const metaPath = `${e.label}/meta.yaml`;
  const metaBytes = e.files.get('meta.yaml');
  if (!metaBytes)
    throw new MlrunsParseError(
      metaPath,
      null,
      'missing: every experiment folder needs a meta.yaml',
    );
  const experiment = parseExperimentMeta(metaPath, metaBytes, e.id, e.trashed);
  const originals = new Map<string, Uint8Array>([['meta.yaml', metaBytes]]);
  const preserved = new Map<string, Uint8Array>();
  const datasets = new Map<string, { dataset: Dataset; path: string; used: boolean }>();
  const runFiles = new Map<string, Map<string, Uint8Array>>();

  for (const [rel, bytes] of e.files) {
    if (rel === 'meta.yaml') continue;
    const slash = rel.indexOf('/');
    const top = slash < 0 ? rel : rel.slice(0, slash);
    const rest = slash < 0 ? '' : rel.slice(slash + 1);
    if (top === 'tags' && rest) {
      const key = keyFromPath('tag', `${e.label}/${rel}`, rest);
      experiment.tags[key] = text(`${e.label}/${rel}`, bytes);
      originals.set(rel, bytes);
    } else if (top === 'datasets' && /^[^/]+\/meta\.yaml$/.test(rest)) {
      datasets.set(rest.split('/')[0]!, {
        dataset: parseDatasetMeta(`${e.label}/${rel}`, bytes),
        path: rel,
        used: false,
      });
      originals.set(rel, bytes);
    } else if (RESERVED_EXPERIMENT_FOLDERS.has(top) || slash < 0) {
      preserved.set(rel, bytes);
    } else {
      let m = runFiles.get(top);
      if (!m) runFiles.set(top, (m = new Map()));
      m.set(rest, bytes);
    }
  }

  const runs: MlrunsRun[] = [];
  for (const [runFolder, files] of runFiles) {
    const meta = files.get('meta.yaml');
    if (!meta) {
      // Not a run (MLflow skips such folders too): keep its files untouched.
      for (const [rest, bytes] of files) preserved.set(`${runFolder}/${rest}`, bytes);
      continue;
    }
    const base = `${e.label}/${runFolder}`;
    const { info, deletedTime, hasRunName } = parseRunMeta(
      `${base}/meta.yaml`,
      meta,
      runFolder,
      experiment.experimentId,
    );
    originals.set(`${runFolder}/meta.yaml`, meta);
    const run: MlrunsRun = {
      info,
      deletedTime,
      params: {},
      tags: {},
      metrics: {},
      inputs: [],
      artifacts: new Map(),
    };
    const inputMetas: [string, Uint8Array][] = [];
    for (const [rest, bytes] of files) {
      if (rest === 'meta.yaml') continue;
      const slash = rest.indexOf('/');
      const top = slash < 0 ? rest : rest.slice(0, slash);
      const sub = slash < 0 ? '' : rest.slice(slash + 1);
      const path = `${base}/${rest}`;
      const relToExp = `${runFolder}/${rest}`;
      if (top === 'metrics' && sub) {
        const key = keyFromPath('metric', path, sub);
        run.metrics[key] = parseMetricFile(path, key, bytes);
        originals.set(relToExp, bytes);
      } else if (top === 'params' && sub) {
        run.params[keyFromPath('param', path, sub)] = text(path, bytes);
        originals.set(relToExp, bytes);
      } else if (top === 'tags' && sub) {
        run.tags[keyFromPath('tag', path, sub)] = text(path, bytes);
        originals.set(relToExp, bytes);
      } else if (top === 'artifacts' && sub) {
        run.artifacts.set(sub, bytes);
      } else if (top === 'inputs' && /^[^/]+\/meta\.yaml$/.test(sub)) {
        inputMetas.push([rest, bytes]);
      } else {
        preserved.set(relToExp, bytes);
      }
    }
    for (const [rest, bytes] of inputMetas) {
      const path = `${base}/${rest}`;
      const f = fields(path, bytes);
      const sourceType = f.str('source_type');
      if (sourceType !== 'DATASET') {
        // MLflow 3 model inputs: kept as they are.
        preserved.set(`${runFolder}/${rest}`, bytes);
        continue;
      }
      const datasetId = f.str('source_id');
      const ds = datasets.get(datasetId);
      if (!ds) {
        throw new MlrunsParseError(
          path,
          lineOfKey(f.src, 'source_id'),
          `refers to dataset '${datasetId}', which has no datasets/${datasetId}/meta.yaml`,
        );
      }
      ds.used = true;
      const rawTags = f.map['tags'];
      const tags: Record<string, string> = {};
      if (rawTags !== undefined && rawTags !== null) {
        if (typeof rawTags !== 'object' || Array.isArray(rawTags)) f.fail('tags', 'a mapping');
        for (const [k, v] of Object.entries(rawTags as YamlMap))
          tags[k] = v === null ? '' : String(v);
      }
      const input: DatasetInput = { dataset: { ...ds.dataset }, tags };
      run.inputs.push(input);
      originals.set(`${runFolder}/${rest}`, bytes);
    }
    // Runs from before run_name existed: the name lives in the tag.
    if (!hasRunName) run.info.runName = run.tags['mlflow.runName'] ?? '';
    runs.push(run);
  }
  for (const ds of datasets.values()) {
    if (!ds.used) {
      preserved.set(ds.path, originals.get(ds.path)!);
      originals.delete(ds.path);
    }
  }
  runs.sort(
    (a, b) => a.info.startTime - b.info.startTime || (a.info.runId < b.info.runId ? -1 : 1),
  );
  return { experiment, trashed: e.trashed, runs, preserved, originals };
}

/** An MLflow 3 logged model (`<exp>/models/<model_id>/meta.yaml`). */
export interface LoggedModelMeta {
  modelId: string;
  experimentId: string;
  name: string;
  sourceRunId: string | null;
  status:
    | 'LOGGED_MODEL_STATUS_UNSPECIFIED'
    | 'LOGGED_MODEL_PENDING'
    | 'LOGGED_MODEL_READY'
    | 'LOGGED_MODEL_UPLOAD_FAILED';
  statusMessage: string | null;
  modelType: string | null;
  artifactLocation: string;
  creationTimestamp: number | null;
  lastUpdatedTimestamp: number | null;
  lifecycleStage: string;
}

const LOGGED_MODEL_STATUS = [
  'LOGGED_MODEL_STATUS_UNSPECIFIED',
  'LOGGED_MODEL_PENDING',
  'LOGGED_MODEL_READY',
  'LOGGED_MODEL_UPLOAD_FAILED',
] as const;

export function parseLoggedModelMeta(file: string, bytes: Uint8Array): LoggedModelMeta {
  const f = fields(file, bytes);
  const raw = f.map['status'];
  const status =
    typeof raw === 'number' && LOGGED_MODEL_STATUS[raw] !== undefined
      ? LOGGED_MODEL_STATUS[raw]
      : typeof raw === 'string' && (LOGGED_MODEL_STATUS as readonly string[]).includes(raw)
        ? (raw as LoggedModelMeta['status'])
        : 'LOGGED_MODEL_STATUS_UNSPECIFIED';
  return {
    modelId: f.str('model_id'),
    experimentId: f.str('experiment_id'),
    name: f.str('name', ''),
    sourceRunId: f.optStr('source_run_id'),
    status,
    statusMessage: f.optStr('status_message'),
    modelType: f.optStr('model_type'),
    artifactLocation: f.str('artifact_location', ''),
    creationTimestamp: f.optInt('creation_timestamp'),
    lastUpdatedTimestamp: f.optInt('last_updated_timestamp'),
    lifecycleStage: f.str('lifecycle_stage', 'active'),
  };
}

/**
 * The keys of an imported meta.yaml that this code does not map (newer MLflow adds some, e.g.
 * `workspace`), with scalar values, so a rewritten file keeps them.
 */
export function metaExtras(
  bytes: Uint8Array,
  known: ReadonlySet<string>,
): Record<string, string | number | boolean | null> {
  const out: Record<string, string | number | boolean | null> = {};
  let map: unknown;
  try {
    map = parseDocument(decoder.decode(bytes)).toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch {
    // An alias bomb or broken YAML: the strict parse of the same file reports it.
    return out;
  }
  if (!map || typeof map !== 'object' || Array.isArray(map)) return out;
  for (const [k, v] of Object.entries(map as YamlMap)) {
    if (known.has(k)) continue;
    if (v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean')
      out[k] = v;
  }
  return out;
}

/** Parses a whole mlruns tree. Paths use '/'; a leading `mlruns/` (or any wrapper folder) is fine. */
export function readMlruns(files: Map<string, Uint8Array>): MlrunsTree {
  const paths = [...files.keys()].filter((p) => !p.endsWith('/'));
  for (const p of paths) checkSafePath(p);
  const root = findRoot(paths);
  const exps = new Map<string, ExpFiles>();
  const ignored: string[] = [];
  const warnings: string[] = [];
  for (const full of paths) {
    if (!full.startsWith(root)) {
      ignored.push(full);
      continue;
    }
    const p = full.slice(root.length);
    const parts = p.split('/');
    let dir: string;
    let id: string;
    let trashed = false;
    let restStart: number;
    if (parts[0] === '.trash' && parts.length >= 3) {
      id = parts[1]!;
      dir = `.trash/${id}`;
      trashed = true;
      restStart = 2;
    } else if (parts.length >= 2 && parts[0] !== 'models' && !parts[0]!.startsWith('.')) {
      id = parts[0]!;
      dir = id;
      restStart = 1;
    } else {
      ignored.push(full);
      continue;
    }
    let e = exps.get(dir);
    if (!e) exps.set(dir, (e = { dir, label: root + dir, id, trashed, files: new Map() }));
    e.files.set(parts.slice(restStart).join('/'), files.get(full)!);
  }
  const experiments: MlrunsExperiment[] = [];
  const seen = new Map<string, string>();
  for (const e of exps.values()) {
    const parsed = readExperiment(e);
    const other = seen.get(parsed.experiment.experimentId);
    if (other !== undefined) {
      throw new MlrunsParseError(
        `${e.label}/meta.yaml`,
        null,
        `experiment id '${parsed.experiment.experimentId}' also appears in ${other}`,
      );
    }
    seen.set(parsed.experiment.experimentId, `${e.label}/meta.yaml`);
    experiments.push(parsed);
  }
  const runIds = new Map<string, string>();
  for (const x of experiments) {
    for (const r of x.runs) {
      const prev = runIds.get(r.info.runId);
      if (prev)
        throw new MlrunsParseError(
          `${x.experiment.experimentId}/${r.info.runId}/meta.yaml`,
          null,
          `run id also used in experiment ${prev}`,
        );
      runIds.set(r.info.runId, x.experiment.experimentId);
    }
  }
  if (ignored.some((p) => p.slice(root.length).startsWith('models/'))) {
    warnings.push(
      'The model registry folder (models/) is not part of a tracking import and was skipped.',
    );
  }
  experiments.sort((a, b) => (a.experiment.experimentId < b.experiment.experimentId ? -1 : 1));
  return { experiments, ignored, warnings };
}
