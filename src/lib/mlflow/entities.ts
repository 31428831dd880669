/**
 * MLflow's entities, named as MLflow names them (mlflow/entities/*.py), in TypeScript.
 * Times are milliseconds since the epoch, as in MLflow's stores and REST API.
 * This file is pure types: every layer imports it, it imports nothing.
 */

export type LifecycleStage = 'active' | 'deleted';

export type RunStatus = 'RUNNING' | 'SCHEDULED' | 'FINISHED' | 'FAILED' | 'KILLED';

export interface ExperimentTag {
  key: string;
  value: string;
}

export interface Experiment {
  experimentId: string;
  name: string;
  artifactLocation: string;
  lifecycleStage: LifecycleStage;
  creationTime: number;
  lastUpdateTime: number;
  tags: Record<string, string>;
}

export interface RunInfo {
  /** 32 lowercase hex characters. */
  runId: string;
  experimentId: string;
  runName: string;
  userId: string;
  status: RunStatus;
  startTime: number;
  endTime: number | null;
  artifactUri: string;
  lifecycleStage: LifecycleStage;
}

export interface Param {
  key: string;
  value: string;
}

export interface RunTag {
  key: string;
  value: string;
}

/** One logged point of a metric's history. */
export interface Metric {
  key: string;
  value: number;
  timestamp: number;
  step: number;
}

export interface Dataset {
  name: string;
  digest: string;
  sourceType: string;
  source: string;
  schema?: string;
  profile?: string;
}

export interface DatasetInput {
  dataset: Dataset;
  tags: Record<string, string>;
}

/** A run as the runs table and the run page see it: latest metric values only. */
export interface Run {
  info: RunInfo;
  params: Record<string, string>;
  /** Latest value per metric key (MLflow's "latest" is the one with max step, then max timestamp). */
  metrics: Record<string, Metric>;
  tags: Record<string, string>;
  inputs?: DatasetInput[];
}

export interface FileInfo {
  /** Path relative to the run's artifact root, '/' separated. */
  path: string;
  isDir: boolean;
  fileSize?: number;
}

// ---- Model registry ----

export type ModelVersionStatus = 'PENDING_REGISTRATION' | 'FAILED_REGISTRATION' | 'READY';

export type ModelVersionStage = 'None' | 'Staging' | 'Production' | 'Archived';

export interface RegisteredModel {
  name: string;
  description: string;
  creationTimestamp: number;
  lastUpdatedTimestamp: number;
  tags: Record<string, string>;
  /** alias -> version number (as a string, as MLflow's REST API gives it). */
  aliases: Record<string, string>;
}

export interface ModelVersion {
  name: string;
  version: string;
  description: string;
  creationTimestamp: number;
  lastUpdatedTimestamp: number;
  currentStage: ModelVersionStage;
  source: string;
  runId: string;
  status: ModelVersionStatus;
  statusMessage: string;
  tags: Record<string, string>;
  userId: string;
}
