/**
 * The CPU-heavy, storage-free parts of mlruns import and export.
 * - Import: parse the tree (tracking and registry) and compute, for every mapped file, the hash
 *   of what our writer makes of its entity as imported (an entity unchanged at export time then
 *   re-emits the original bytes).
 * - Export: write each experiment folder from the stored entities, re-emitting the original
 *   bytes of unchanged files, and lay the files out for the zip.
 *
 * For 2,000 runs each is most of a second of YAML parsing and writing, so the page runs them in
 * the zip worker (`zip-worker.ts`) next to the unzip and zip; where there is no worker they run
 * on the calling thread with the same results and errors. Pure: no DOM, no storage.
 */
import type { Zippable } from 'fflate';
import type { Experiment } from '../mlflow/entities.ts';
import {
  EXPERIMENT_META_KEYS,
  RUN_META_KEYS,
  metaExtras,
  readMlruns,
  readMlrunsRegistry,
  writeExperimentFolder,
  type MetaExtras,
  type MlrunsExperiment,
  type MlrunsRegistry,
  type MlrunsRun,
  type MlrunsTree,
  type RunForWriting,
} from '../mlflow/mlruns/index.ts';

export interface PreparedMlruns {
  tree: MlrunsTree;
  /** The registry folder (`models/`), or null when not asked for. */
  registry: MlrunsRegistry | null;
  /** Per experiment id, per path relative to its folder: SHA-256 (hex) of our writer's output. */
  canonicalHashes: Map<string, Map<string, string>>;
  /** Entries of the tree (files and folders), for progress. */
  fileCount: number;
}

export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes as BufferSource));
  let out = '';
  for (const x of d) out += (x < 16 ? '0' : '') + x.toString(16);
  return out;
}

/** Unknown keys of imported meta.yaml files, so a rewritten file keeps them. */
export function extrasFrom(
  originals: Map<string, Uint8Array | undefined>,
): (rel: string) => MetaExtras | undefined {
  return (rel) => {
    const bytes = originals.get(rel);
    if (!bytes) return undefined;
    return metaExtras(bytes, rel === 'meta.yaml' ? EXPERIMENT_META_KEYS : RUN_META_KEYS);
  };
}

export function runsForWriting(x: MlrunsExperiment): RunForWriting[] {
  return x.runs.map((r) => ({
    info: r.info,
    deletedTime: r.deletedTime,
    params: r.params,
    tags: r.tags,
    metrics: r.metrics,
    inputs: r.inputs,
  }));
}

/**
 * A view that does not cover its whole buffer (a stored zip entry is a slice of the zip) is
 * copied: IndexedDB and postMessage would otherwise copy the whole zip with each such file.
 */
export function ownBytes(b: Uint8Array): Uint8Array {
  return b.byteOffset === 0 && b.byteLength === b.buffer.byteLength ? b : b.slice();
}

function compact(m: Map<string, Uint8Array>): void {
  for (const [k, b] of m) m.set(k, ownBytes(b));
}

/** Parses the files of an mlruns tree and computes the canonical hashes (see the file comment). */
export async function prepareMlruns(
  files: Map<string, Uint8Array>,
  options: { registry: boolean },
): Promise<PreparedMlruns> {
  const tree = readMlruns(files);
  const registry = options.registry ? readMlrunsRegistry(files) : null;
  const canonicalHashes = new Map<string, Map<string, string>>();
  for (const x of tree.experiments) {
    // Every array then owns its buffer, so each can be transferred on its own.
    compact(x.originals);
    compact(x.preserved);
    for (const r of x.runs) compact(r.artifacts);
    const canonical = writeExperimentFolder(
      x.experiment,
      runsForWriting(x),
      extrasFrom(x.originals),
    ).files;
    const hashes = new Map<string, string>();
    for (const rel of x.originals.keys()) {
      const mine = canonical.get(rel);
      if (mine) hashes.set(rel, await sha256Hex(mine));
    }
    canonicalHashes.set(x.experiment.experimentId, hashes);
  }
  if (registry) compact(registry.originals);
  return { tree, registry, canonicalHashes, fileCount: files.size };
}

/**
 * A piece of a prepared tree: some runs, or some original files with their hashes, of the
 * experiment at that index. The worker sends a tree as pieces and then the rest: one message
 * for 2,000 runs takes the page over 100 ms to receive (structured clone), a piece a few ms.
 */
export type PreparedPart =
  | { kind: 'runs'; experiment: number; runs: MlrunsRun[] }
  | {
      kind: 'originals';
      experiment: number;
      files: [string, Uint8Array][];
      hashes: [string, string][];
    };

/** Runs per piece, and original files per piece. */
export const PART_RUNS = 25;
export const PART_FILES = 150;

/** Splits off the runs and original files (the bulk) as pieces; `rest` keeps everything else. */
export function splitPrepared(p: PreparedMlruns): { rest: PreparedMlruns; parts: PreparedPart[] } {
  const parts: PreparedPart[] = [];
  const experiments = p.tree.experiments.map((x, i) => {
    for (let k = 0; k < x.runs.length; k += PART_RUNS) {
      parts.push({ kind: 'runs', experiment: i, runs: x.runs.slice(k, k + PART_RUNS) });
    }
    const files = [...x.originals];
    const hashes = p.canonicalHashes.get(x.experiment.experimentId) ?? new Map<string, string>();
    for (let k = 0; k < files.length; k += PART_FILES) {
      const page = files.slice(k, k + PART_FILES);
      parts.push({
        kind: 'originals',
        experiment: i,
        files: page,
        hashes: page.flatMap(([rel]) => {
          const h = hashes.get(rel);
          return h === undefined ? [] : [[rel, h] as [string, string]];
        }),
      });
    }
    return { ...x, runs: [], originals: new Map<string, Uint8Array>() };
  });
  return {
    rest: {
      ...p,
      tree: { ...p.tree, experiments },
      canonicalHashes: new Map(experiments.map((x) => [x.experiment.experimentId, new Map()])),
    },
    parts,
  };
}

/** Puts the pieces back (in the order they were split) into `rest`, which it returns. */
export function joinPrepared(rest: PreparedMlruns, parts: Iterable<PreparedPart>): PreparedMlruns {
  for (const part of parts) {
    const x = rest.tree.experiments[part.experiment];
    if (!x) throw new Error(`prepared mlruns: no experiment #${part.experiment}`);
    if (part.kind === 'runs') {
      for (const r of part.runs) x.runs.push(r);
      continue;
    }
    const id = x.experiment.experimentId;
    let hashes = rest.canonicalHashes.get(id);
    if (!hashes) rest.canonicalHashes.set(id, (hashes = new Map()));
    for (const [rel, bytes] of part.files) x.originals.set(rel, bytes);
    for (const [rel, h] of part.hashes) hashes.set(rel, h);
  }
  return rest;
}

/** The byte arrays of a piece or of the rest (transferred, not copied, out of the worker). */
export function preparedArrays(p: PreparedMlruns | PreparedPart): Uint8Array[] {
  if ('kind' in p) {
    if (p.kind === 'originals') return p.files.map(([, b]) => b);
    return p.runs.flatMap((r) => [...r.artifacts.values()]);
  }
  const out: Uint8Array[] = [];
  for (const x of p.tree.experiments) {
    out.push(...x.originals.values(), ...x.preserved.values());
    for (const r of x.runs) out.push(...r.artifacts.values());
  }
  if (p.registry) out.push(...p.registry.originals.values());
  return out;
}

/** One experiment folder to export, as read from the store. */
export interface ExportExperimentInput {
  /** Folder under `mlruns/`: the experiment id, or `.trash/<id>` for a deleted one. */
  dir: string;
  experiment: Experiment;
  runs: RunForWriting[];
  /**
   * Mapped files as imported (meta.yaml, metrics, params, tags...), by path relative to the
   * experiment folder, with the hash of our writer's output for the entity as imported.
   */
  originals: Map<string, { bytes?: Uint8Array; canonicalHash: string }>;
  /** Files kept as they are (logged models, traces...), by path relative to the folder. */
  preserved: Map<string, Uint8Array>;
  /** Run artifacts, by path relative to the folder (`<run>/artifacts/<path>`). */
  artifacts: Map<string, Uint8Array>;
}

export interface MlrunsExportInput {
  experiments: ExportExperimentInput[];
  /** Files after the experiments (the registry folder), by path under `mlruns/`. */
  extra: Map<string, Uint8Array | null>;
}

/** The files of the exported tree by path under `mlruns/` (null: a folder). */
export async function buildMlrunsFiles(
  input: MlrunsExportInput,
): Promise<Map<string, Uint8Array | null>> {
  const out = new Map<string, Uint8Array | null>();
  out.set('.trash/', null);
  for (const x of input.experiments) {
    const originalBytes = new Map([...x.originals].map(([rel, f]) => [rel, f.bytes]));
    const { files, dirs } = writeExperimentFolder(x.experiment, x.runs, extrasFrom(originalBytes));
    for (const d of dirs) out.set(`${x.dir}/${d}`, null);
    for (const [rel, bytes] of x.preserved) out.set(`${x.dir}/${rel}`, bytes);
    for (const [rel, bytes] of files) {
      const orig = x.originals.get(rel);
      const same = orig?.bytes && orig.canonicalHash === (await sha256Hex(bytes));
      out.set(`${x.dir}/${rel}`, same ? orig.bytes! : bytes);
    }
    for (const [rel, bytes] of x.artifacts) out.set(`${x.dir}/${rel}`, bytes);
  }
  for (const [path, bytes] of input.extra) out.set(path, bytes);
  return out;
}

/** The zip's entries: everything under `mlruns/`, big files stored rather than deflated. */
export function mlrunsZippable(files: Map<string, Uint8Array | null>): Zippable {
  const tree: Zippable = {};
  for (const [path, bytes] of files) {
    const name = `mlruns/${path}`;
    if (bytes === null) tree[name] = [new Uint8Array(0), { level: 0 }];
    else tree[name] = [bytes, { level: bytes.length > 8 * 1024 * 1024 ? 0 : 6 }];
  }
  return tree;
}
