import type { DatasetInput, Experiment, Metric, RunInfo } from '../entities.ts';

/** A run as the mlruns file store holds it. */
export interface MlrunsRun {
  info: RunInfo;
  /** meta.yaml deleted_time: epoch ms of a soft delete, else null. */
  deletedTime: number | null;
  params: Record<string, string>;
  tags: Record<string, string>;
  /** Full history per key, in file order. */
  metrics: Record<string, Metric[]>;
  inputs: DatasetInput[];
  /** Files under the run's `artifacts/` folder, by path relative to it. */
  artifacts: Map<string, Uint8Array>;
}

export interface MlrunsExperiment {
  experiment: Experiment;
  /** It sat under `.trash/` (a deleted experiment). */
  trashed: boolean;
  runs: MlrunsRun[];
  /**
   * Files of the experiment folder that map to nothing in the store (MLflow 3 logged models,
   * traces, run outputs, model inputs, unknown files), by path relative to the experiment folder.
   * They are kept and exported byte for byte.
   */
  preserved: Map<string, Uint8Array>;
  /** Original bytes of every mapped file (meta.yaml, metrics, params, tags, inputs), by the same paths. */
  originals: Map<string, Uint8Array>;
}

export interface MlrunsTree {
  experiments: MlrunsExperiment[];
  /** Files outside any experiment (the registry under `models/`, stray files), by full path. */
  ignored: string[];
  warnings: string[];
}

/** A parse failure that names the file (path inside the mlruns tree) and, when known, the line. */
export class MlrunsParseError extends Error {
  override name = 'MlrunsParseError';
  constructor(
    readonly file: string,
    readonly line: number | null,
    readonly detail: string,
  ) {
    super(`${file}${line !== null ? `:${line}` : ''}: ${detail}`);
  }
}

export const RUN_STATUS_BY_NUMBER = {
  1: 'RUNNING',
  2: 'SCHEDULED',
  3: 'FINISHED',
  4: 'FAILED',
  5: 'KILLED',
} as const;

export const RUN_STATUS_NUMBER: Record<RunInfo['status'], number> = {
  RUNNING: 1,
  SCHEDULED: 2,
  FINISHED: 3,
  FAILED: 4,
  KILLED: 5,
};

/** Folder names inside an experiment that are never runs. */
export const RESERVED_EXPERIMENT_FOLDERS = new Set(['tags', 'datasets', 'traces', 'models']);
