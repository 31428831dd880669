/**
 * Writes experiments and runs in the layout and text forms of Python MLflow's FileStore, so that
 * `mlflow.tracking.MlflowClient(tracking_uri="file:...")` reads them. Pure: entities in, files out.
 */
import type { DatasetInput, Experiment, Metric, RunInfo } from '../entities.ts';
import { md5Hex } from './md5.ts';
import { dumpFlatYaml, dumpNestedMap, pyFloatRepr, type YamlScalar } from './pyformat.ts';
import { RUN_STATUS_NUMBER } from './types.ts';

const encoder = new TextEncoder();

export interface RunForWriting {
  info: RunInfo;
  deletedTime: number | null;
  params: Record<string, string>;
  tags: Record<string, string>;
  /** Full history per key, in the order it was logged. */
  metrics: Record<string, Metric[]>;
  inputs: DatasetInput[];
}

export interface ExperimentFiles {
  /** Path relative to the experiment folder -> bytes. */
  files: Map<string, Uint8Array>;
  /** Folders MLflow creates even when empty (relative to the experiment folder, trailing '/'). */
  dirs: string[];
}

/** Keys of meta.yaml this writer produces; others found in an imported file are carried over. */
export const EXPERIMENT_META_KEYS = new Set([
  'artifact_location',
  'creation_time',
  'experiment_id',
  'last_update_time',
  'lifecycle_stage',
  'name',
]);
export const RUN_META_KEYS = new Set([
  'artifact_uri',
  'deleted_time',
  'end_time',
  'entry_point_name',
  'experiment_id',
  'lifecycle_stage',
  'run_id',
  'run_name',
  'run_uuid',
  'source_name',
  'source_type',
  'source_version',
  'start_time',
  'status',
  'tags',
  'user_id',
]);

export type MetaExtras = Record<string, YamlScalar>;

export function experimentMetaYaml(e: Experiment, extras: MetaExtras = {}): string {
  return dumpFlatYaml({
    ...extras,
    artifact_location: e.artifactLocation,
    creation_time: e.creationTime,
    experiment_id: e.experimentId,
    last_update_time: e.lastUpdateTime,
    lifecycle_stage: e.lifecycleStage,
    name: e.name,
  });
}

export function runMetaYaml(
  info: RunInfo,
  deletedTime: number | null,
  extras: MetaExtras = {},
): string {
  // MLflow writes the legacy keys too (run_uuid, source_*, entry_point_name, tags: []): older
  // readers require them.
  return dumpFlatYaml({
    ...extras,
    artifact_uri: info.artifactUri,
    deleted_time: deletedTime,
    end_time: info.endTime,
    entry_point_name: '',
    experiment_id: info.experimentId,
    lifecycle_stage: info.lifecycleStage,
    run_id: info.runId,
    run_name: info.runName,
    run_uuid: info.runId,
    source_name: '',
    source_type: 4,
    source_version: '',
    start_time: info.startTime,
    status: RUN_STATUS_NUMBER[info.status],
    tags: [],
    user_id: info.userId,
  });
}

export function metricFileText(points: readonly Metric[]): string {
  let out = '';
  for (const p of points) out += `${p.timestamp} ${pyFloatRepr(p.value)} ${p.step}\n`;
  return out;
}

/** MLflow's dataset id: md5 of the UTF-8 name followed by the digest. */
export function datasetId(name: string, digest: string): string {
  return md5Hex(name + digest);
}

export function datasetMetaYaml(d: DatasetInput['dataset']): string {
  return dumpFlatYaml({
    digest: d.digest,
    name: d.name,
    profile: d.profile ?? null,
    schema: d.schema ?? null,
    source: d.source,
    source_type: d.sourceType,
  });
}

export function inputMetaYaml(dsId: string, tags: Record<string, string>): string {
  // Quirk reproduced: MLflow stores the dataset id as destination_id too.
  return (
    dumpFlatYaml({
      destination_id: dsId,
      destination_type: 'RUN',
      source_id: dsId,
      source_type: 'DATASET',
    }) + dumpNestedMap('tags', tags)
  );
}

/** Every metadata file of one experiment folder (artifacts are added by the caller). */
export function writeExperimentFolder(
  experiment: Experiment,
  runs: readonly RunForWriting[],
  /** Unknown keys of imported meta.yaml files (by path relative to the experiment folder), kept. */
  extras: (rel: string) => MetaExtras | undefined = () => undefined,
): ExperimentFiles {
  const files = new Map<string, Uint8Array>();
  const dirs: string[] = ['tags/'];
  const put = (p: string, s: string) => files.set(p, encoder.encode(s));
  put('meta.yaml', experimentMetaYaml(experiment, extras('meta.yaml')));
  for (const [k, v] of Object.entries(experiment.tags)) put(`tags/${k}`, v);
  for (const run of runs) {
    const r = run.info.runId;
    dirs.push(`${r}/`, `${r}/metrics/`, `${r}/params/`, `${r}/tags/`, `${r}/artifacts/`);
    put(`${r}/meta.yaml`, runMetaYaml(run.info, run.deletedTime, extras(`${r}/meta.yaml`)));
    for (const [k, points] of Object.entries(run.metrics))
      put(`${r}/metrics/${k}`, metricFileText(points));
    for (const [k, v] of Object.entries(run.params)) put(`${r}/params/${k}`, v);
    for (const [k, v] of Object.entries(run.tags)) put(`${r}/tags/${k}`, v);
    for (const input of run.inputs) {
      const dsId = datasetId(input.dataset.name, input.dataset.digest);
      put(`datasets/${dsId}/meta.yaml`, datasetMetaYaml(input.dataset));
      put(`${r}/inputs/${md5Hex(dsId + r)}/meta.yaml`, inputMetaYaml(dsId, input.tags));
    }
  }
  return { files, dirs };
}
