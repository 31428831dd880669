import type { Migration } from '../db.ts';

/**
 * MLflow Tracking. Shaped for a 10k-run runs table:
 * - `runs` holds one record per run with its params, tags, latest metric values and dataset
 *   inputs: the row the runs table shows, read with one getAll on `experimentId`.
 *   `paramKV`/`tagKV` (multiEntry over "<exp>\0<key>\0<value>") answer `params.x = '...'`.
 * - `latestMetrics` holds keys only, [experimentId, metric key, latest value, runId]: a metric
 *   comparison or a sort by a metric is one key-range read that fetches no record.
 * - `metricHistory` keeps every logged point (duplicates allowed, as MLflow does) in append-only
 *   chunks of up to 4096 points per [runId, key, seq], as parallel Float64Arrays. One record per
 *   point capped Chromium at ~20k points/s and made a 100k-point chart read 100k records.
 * - `artifacts` [runId, path] -> blob id (bytes live in the blob store).
 * - `mlrunsFiles` original bytes of imported mlruns files (exported unchanged when the entity
 *   did not change) and files we keep without mapping them (logged models, traces, ...).
 */
export const tracking: Migration = {
  description:
    'experiments, runs, latest metrics, metric history, artifacts, imported mlruns files',
  up(db) {
    const experiments = db.createObjectStore('experiments', { keyPath: 'experimentId' });
    experiments.createIndex('name', 'name', { unique: true });
    experiments.createIndex('lifecycleStage', 'lifecycleStage');

    const runs = db.createObjectStore('runs', { keyPath: 'runId' });
    runs.createIndex('experimentId', 'experimentId');
    runs.createIndex('experimentStart', ['experimentId', 'startTime']);
    runs.createIndex('paramKV', 'paramIndex', { multiEntry: true });
    runs.createIndex('tagKV', 'tagIndex', { multiEntry: true });

    db.createObjectStore('latestMetrics');

    db.createObjectStore('metricHistory', { keyPath: ['runId', 'key', 'seq'] });

    db.createObjectStore('artifacts', { keyPath: ['runId', 'path'] });

    const files = db.createObjectStore('mlrunsFiles', { keyPath: 'path' });
    files.createIndex('experimentId', 'experimentId');
    files.createIndex('runId', 'runId');
  },
};
