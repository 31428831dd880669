// MLflow 3 logged models as scripts/interop/logged_models_db.py dumps them, and the app's
// logged models in that shape.
import type { LoggedModel } from '../../../src/lib/services/mlflow-db.ts';

/** A logged model as logged_models_db.py dumps it, from what the app holds. */
export function loggedModelDoc(m: LoggedModel) {
  return {
    model_id: m.modelId,
    experiment_id: m.experimentId,
    name: m.name,
    source_run_id: m.sourceRunId,
    status: m.status.replace(/^LOGGED_MODEL_(STATUS_)?/, '').replace('UPLOAD_FAILED', 'FAILED'),
    status_message: m.statusMessage,
    model_type: m.modelType,
    creation_timestamp: m.creationTimestamp,
    last_updated_timestamp: m.lastUpdatedTimestamp,
    artifact_location: m.artifactLocation,
    tags: m.tags,
    params: m.params,
    metrics: m.metrics
      .map((p) => ({
        key: p.key,
        value: p.value,
        timestamp: p.timestamp,
        step: p.step,
        run_id: p.runId,
        dataset_name: p.datasetName,
        dataset_digest: p.datasetDigest,
      }))
      .sort(
        (a, b) =>
          (a.key < b.key ? -1 : a.key > b.key ? 1 : 0) ||
          a.step - b.step ||
          a.timestamp - b.timestamp ||
          (a.run_id < b.run_id ? -1 : 1),
      ),
  };
}

export interface LoggedModelsDump {
  searched: string[];
  logged_models: Array<ReturnType<typeof loggedModelDoc> & { files: unknown }>;
  runs: Array<{
    run_id: string;
    model_outputs: Array<{ model_id: string; step: number }>;
    model_inputs: string[];
  }>;
}
