// What the app shows for its store, in the same JSON shape as scripts/interop/dump_store.py
// prints for a real MLflow store, so the two can be compared field by field.
import type { TrackingClient } from '../../../src/lib/services/tracking.ts';
import type { Metric } from '../../../src/lib/mlflow/entities.ts';
import { sha256Hex } from './python.ts';

export type JsonNumber = number | 'NaN' | 'Infinity' | '-Infinity';

export function jsonNumber(v: number): JsonNumber {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return 'Infinity';
  if (v === -Infinity) return '-Infinity';
  return v;
}

export interface DumpedPoint {
  step: number;
  timestamp: number;
  value: JsonNumber;
}

export interface DumpedExperiment {
  experiment_id: string;
  name: string;
  artifact_location: string;
  lifecycle_stage: string;
  creation_time: number | null;
  last_update_time: number | null;
  tags: Record<string, string>;
}

export interface DumpedRun {
  run_id: string;
  experiment_id: string;
  run_name: string;
  user_id: string;
  status: string;
  start_time: number;
  end_time: number | null;
  lifecycle_stage: string;
  artifact_uri: string;
  params: Record<string, string>;
  tags: Record<string, string>;
  metrics: Record<string, JsonNumber>;
  metric_history: Record<string, DumpedPoint[]>;
  artifacts: Record<string, { size: number; sha256: string }> | string;
}

export interface DumpedVersion {
  version: string;
  source: string;
  run_id: string | null;
  current_stage: string;
  status: string;
  status_message: string | null;
  description: string | null;
  user_id: string | null;
  run_link: string | null;
  creation_timestamp: number;
  last_updated_timestamp: number;
  tags: Record<string, string>;
  aliases: string[];
  model_id: string | null;
}

export interface DumpedRegisteredModel {
  name: string;
  description: string | null;
  creation_timestamp: number;
  last_updated_timestamp: number;
  tags: Record<string, string>;
  aliases: Record<string, string>;
  versions: DumpedVersion[];
}

export interface StoreDump {
  experiments: DumpedExperiment[];
  runs: DumpedRun[];
  logged_models: Array<Record<string, unknown>>;
  registered_models: DumpedRegisteredModel[];
}

function pointKey(p: DumpedPoint): string {
  // Same order as the Python side: step, timestamp, then the value's JSON text.
  return `${String(p.step).padStart(20, '0')} ${String(p.timestamp).padStart(20, '0')} ${JSON.stringify(p.value)}`;
}

export function sortPoints(points: DumpedPoint[]): DumpedPoint[] {
  return [...points].sort((a, b) =>
    a.step !== b.step
      ? a.step - b.step
      : a.timestamp !== b.timestamp
        ? a.timestamp - b.timestamp
        : pointKey(a) < pointKey(b)
          ? -1
          : 1,
  );
}

function point(m: Metric): DumpedPoint {
  return { step: m.step, timestamp: m.timestamp, value: jsonNumber(m.value) };
}

async function artifactFiles(client: TrackingClient, runId: string, dir?: string) {
  const out: string[] = [];
  for (const f of await client.listArtifacts(runId, dir)) {
    if (f.isDir) out.push(...(await artifactFiles(client, runId, f.path)));
    else out.push(f.path);
  }
  return out;
}

/** Experiments and runs as the app's TrackingClient reports them. */
export async function dumpApp(
  client: TrackingClient,
): Promise<Pick<StoreDump, 'experiments' | 'runs'>> {
  const experiments = await client.listExperiments({ viewType: 'ALL' });
  const doc: Pick<StoreDump, 'experiments' | 'runs'> = { experiments: [], runs: [] };
  for (const e of [...experiments].sort((a, b) => (a.experimentId < b.experimentId ? -1 : 1))) {
    doc.experiments.push({
      experiment_id: e.experimentId,
      name: e.name,
      artifact_location: e.artifactLocation,
      lifecycle_stage: e.lifecycleStage,
      creation_time: e.creationTime,
      last_update_time: e.lastUpdateTime,
      tags: { ...e.tags },
    });
  }
  const ids = experiments.map((e) => e.experimentId);
  const runs = [];
  let pageToken: string | null = null;
  do {
    const page = await client.searchRuns({
      experimentIds: ids,
      runViewType: 'ALL',
      maxResults: 1000,
      pageToken,
    });
    runs.push(...page.runs);
    pageToken = page.nextPageToken;
  } while (pageToken);
  for (const r of runs.sort((a, b) => (a.info.runId < b.info.runId ? -1 : 1))) {
    const i = r.info;
    const history: Record<string, DumpedPoint[]> = {};
    for (const key of Object.keys(r.metrics).sort()) {
      history[key] = sortPoints((await client.getMetricHistory(i.runId, key)).map(point));
    }
    const artifacts: Record<string, { size: number; sha256: string }> = {};
    for (const path of (await artifactFiles(client, i.runId)).sort()) {
      const bytes = new Uint8Array(await (await client.readArtifact(i.runId, path)).arrayBuffer());
      artifacts[path] = { size: bytes.length, sha256: sha256Hex(bytes) };
    }
    doc.runs.push({
      run_id: i.runId,
      experiment_id: i.experimentId,
      run_name: i.runName,
      user_id: i.userId,
      status: i.status,
      start_time: i.startTime,
      end_time: i.endTime,
      lifecycle_stage: i.lifecycleStage,
      artifact_uri: i.artifactUri,
      params: { ...r.params },
      tags: { ...r.tags },
      metrics: Object.fromEntries(
        Object.entries(r.metrics).map(([k, m]) => [k, jsonNumber(m.value)]),
      ),
      metric_history: history,
      artifacts,
    });
  }
  return doc;
}
