"""MLflow 3 logged models in an mlflow.db: write some with real MLflow, and dump what it reports.

usage:
  logged_models_db.py write <sqlite-uri> <artifact-root-dir>
  logged_models_db.py dump <tracking-uri> [--out FILE]
  logged_models_db.py diff <expected.json> <tracking-uri> [--empty-is-null]

`write` logs, in one experiment: a pyfunc model from a run (`mlflow.pyfunc.log_model(name=...)`
with params, tags, model_type, and metrics logged against it, one on a dataset), a model made
with `mlflow.initialize_logged_model` and finalized as failed, a run that uses the first model
as an input, and a soft-deleted logged model. Prints the ids as JSON.

`dump` writes, per logged model, what `MlflowClient.get_logged_model` reports (every field, the
params, tags, metric points and the files under its artifact location, by SHA-256), which runs
produced and used it (`get_run(...).outputs` / `.inputs`), and which model ids
`search_logged_models` lists. `diff` prints the differences against a dump (`[]` when none).
"""

import sys
import tempfile

from common import emit, json_number

import mlflow
from dump_store import differences, dump_tree, paged, strip
from mlflow.entities import LoggedModelInput, LoggedModelStatus, ViewType
from mlflow.tracking import MlflowClient


class Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return list(model_input["text"])


def write(uri, artifact_root):
    import pandas as pd

    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    exp = client.create_experiment(
        "interop-logged-models", artifact_location=f"file://{artifact_root}/lm"
    )
    mlflow.set_experiment(experiment_id=exp)
    ids = {"experiment_id": exp}
    t0 = 1_700_000_000_000
    with mlflow.start_run(run_name="trainer") as run:
        ids["trainer"] = run.info.run_id
        mlflow.log_param("epochs", 3)
        info = mlflow.pyfunc.log_model(
            name="classifier",
            python_model=Echo(),
            params={"lr": "0.01", "optimizer/name": "adam"},
            tags={"stage": "candidate", "ünïcode": "✓"},
            model_type="classifier",
            step=2,
        )
        ids["classifier"] = info.model_id
        frame = pd.DataFrame({"text": ["a", "b"]})
        dataset = mlflow.data.from_pandas(frame, name="holdout")
        mlflow.log_metric("accuracy", 0.75, step=1, timestamp=t0, model_id=info.model_id)
        mlflow.log_metric("accuracy", 0.875, step=2, timestamp=t0 + 10, model_id=info.model_id)
        mlflow.log_metric(
            "f1", 0.5, step=2, timestamp=t0 + 20, model_id=info.model_id, dataset=dataset
        )
        mlflow.log_metric("big", 1e16, step=0, timestamp=t0, model_id=info.model_id)

        draft = mlflow.initialize_logged_model(
            name="draft-agent",
            source_run_id=run.info.run_id,
            tags={"owner": "team-b"},
            params={"temperature": "0.2"},
            model_type="agent",
        )
        ids["draft"] = draft.model_id
        client.finalize_logged_model(draft.model_id, LoggedModelStatus.FAILED)

    with mlflow.start_run(run_name="evaluator") as run:
        ids["evaluator"] = run.info.run_id
        client.log_inputs(run.info.run_id, models=[LoggedModelInput(ids["classifier"])])
        mlflow.log_metric("latency_ms", 12.5, timestamp=t0)

    gone = client.create_logged_model(exp, name="discarded")
    client.delete_logged_model(gone.model_id)
    ids["deleted"] = gone.model_id
    emit(ids)


def model_doc(m):
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=m.artifact_location, dst_path=tmp
            )
            files = dump_tree(local)
        except Exception as e:  # a location that does not resolve is a difference
            files = f"unreadable: {type(e).__name__}"
    return {
        "model_id": m.model_id,
        "experiment_id": m.experiment_id,
        "name": m.name,
        "source_run_id": m.source_run_id,
        "status": str(m.status),
        "status_message": m.status_message,
        "model_type": m.model_type,
        "creation_timestamp": m.creation_timestamp,
        "last_updated_timestamp": m.last_updated_timestamp,
        "artifact_location": m.artifact_location,
        "tags": dict(m.tags),
        "params": dict(m.params),
        "metrics": sorted(
            (
                {
                    "key": x.key,
                    "value": json_number(x.value),
                    "timestamp": x.timestamp,
                    "step": x.step,
                    "run_id": x.run_id,
                    "dataset_name": x.dataset_name,
                    "dataset_digest": x.dataset_digest,
                }
                for x in (m.metrics or [])
            ),
            key=lambda p: (p["key"], p["step"], p["timestamp"], p["run_id"]),
        ),
        "files": files,
    }


def dump(uri):
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    exps = [
        e
        for e in client.search_experiments(view_type=ViewType.ALL, max_results=1000)
        if e.name != "Default"
    ]
    exp_ids = [e.experiment_id for e in exps]
    listed = list(
        paged(lambda t: client.search_logged_models(exp_ids, max_results=100, page_token=t))
    )
    models = [model_doc(client.get_logged_model(m.model_id)) for m in listed]
    runs = []
    for r in client.search_runs(exp_ids, run_view_type=ViewType.ALL, max_results=1000):
        full = client.get_run(r.info.run_id)
        outputs = full.outputs.model_outputs if full.outputs else []
        inputs = full.inputs.model_inputs if full.inputs else []
        runs.append(
            {
                "run_id": r.info.run_id,
                "model_outputs": sorted(
                    ({"model_id": o.model_id, "step": o.step} for o in outputs),
                    key=lambda o: o["model_id"],
                ),
                "model_inputs": sorted(i.model_id for i in inputs),
            }
        )
    return {
        "searched": sorted(m.model_id for m in listed),
        "logged_models": sorted(models, key=lambda m: m["model_id"]),
        "runs": sorted(runs, key=lambda r: r["run_id"]),
    }


def main():
    args = sys.argv[1:]
    if len(args) == 3 and args[0] == "write":
        write(args[1], args[2])
    elif len(args) >= 2 and args[0] == "dump":
        out = args[args.index("--out") + 1] if "--out" in args else None
        emit(dump(args[1]), out)
    elif len(args) >= 3 and args[0] == "diff":
        import json

        with open(args[1], encoding="utf-8") as f:
            expected = json.load(f)
        empty = "--empty-is-null" in args
        emit(differences(strip(expected, set(), empty), strip(dump(args[2]), set(), empty)))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
