"""What MlflowClient sees of a run pushed by the app, found by its source tag.

usage: read_remote_run.py <tracking-uri> <local-run-id>

Prints {"count": <runs carrying tabflow.source_run_id = local-run-id>, "run": {...}} with the
run's name, status, params, tags, full metric histories and artifact files (path -> size).
"""

import sys

from common import emit, json_number

from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient


def files(client, run_id, path=None):
    out = {}
    for f in client.list_artifacts(run_id, path):
        if f.is_dir:
            out.update(files(client, run_id, f.path))
        else:
            out[f.path] = f.file_size
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    uri, local_id = sys.argv[1], sys.argv[2]
    client = MlflowClient(uri)
    exps = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    runs = client.search_runs(
        exps, filter_string=f"tags.`tabflow.source_run_id` = '{local_id}'", run_view_type=ViewType.ALL
    )
    doc = {"count": len(runs), "run": None}
    if runs:
        r = runs[0]
        doc["run"] = {
            "run_id": r.info.run_id,
            "run_name": r.info.run_name,
            "status": r.info.status,
            "params": dict(r.data.params),
            "tags": dict(r.data.tags),
            "metric_history": {
                k: [
                    [m.step, m.timestamp, json_number(m.value)]
                    for m in client.get_metric_history(r.info.run_id, k)
                ]
                for k in sorted(r.data.metrics)
            },
            "artifacts": files(client, r.info.run_id),
        }
    emit(doc)


if __name__ == "__main__":
    main()
