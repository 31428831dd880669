"""Write a tracking store (mlruns folder or mlflow.db) with real MLflow, covering what users have.

usage: write_store.py <tracking-uri> <artifact-root-dir>

<tracking-uri> is `file:///abs/mlruns` or `sqlite:////abs/mlflow.db`; the same URI is the registry.
<artifact-root-dir> is used for experiment artifact locations when the backend is a database
(a file store keeps artifacts inside itself). Prints {"experiments": [...], "runs": {...}} ids.
Works with MLflow 2.x and 3.x; in 3.x the model is a logged model (models/<model_id>/ layout).
"""

import sys
import time

from common import MLFLOW_MAJOR, emit

import mlflow
import numpy as np
from mlflow.entities import Metric, Param, RunTag
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient


class Echo(mlflow.pyfunc.PythonModel):
    """Returns its `text` column: enough to prove a model logged here loads back."""

    def predict(self, context, model_input, params=None):
        return list(model_input["text"])


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    uri, artifact_root = sys.argv[1], sys.argv[2]
    is_file_store = uri.startswith("file:")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(uri, uri)

    def location(name):
        return None if is_file_store else f"file://{artifact_root}/{name}"

    alpha = client.create_experiment(
        "interop-alpha",
        artifact_location=location("alpha"),
        tags={"team": "vision", "mlflow.note.content": "Alpha *experiment* notes"},
    )
    beta = client.create_experiment("interop-beta", artifact_location=location("beta"))
    client.set_experiment_tag(beta, "stage", "ünïcode ✓")

    # Fixed clock so that duplicate timestamps are really duplicates.
    t0 = 1_700_000_000_000
    ids = {}

    mlflow.set_experiment(experiment_id=alpha)
    with mlflow.start_run(run_name="parent", tags={"kind": "sweep"}) as parent:
        ids["parent"] = parent.info.run_id
        mlflow.log_params({"lr": 0.01, "optimizer/name": "adam", "layers": 4, "note": "x" * 600})
        mlflow.log_param("empty", "")
        mlflow.set_tag("mlflow.note.content", "Run description with `markdown`")
        # Several steps, two points sharing a timestamp, one step logged twice.
        metrics = [
            Metric("loss", 1.0, t0, 0),
            Metric("loss", 0.5, t0, 1),
            Metric("loss", 0.25, t0 + 10, 2),
            Metric("loss", 0.3, t0 + 20, 2),
            Metric("loss", 1e-05, t0 + 30, 3),
            Metric("train/acc", 0.1, t0 + 5, 0),
            Metric("train/acc", 0.9, t0 + 5, 1),
            Metric("big", 1e16, t0, 0),
            Metric("count", 3, t0, 0),
            Metric("weird", float("nan"), t0, 0),
            Metric("weird", float("inf"), t0 + 1, 1),
            Metric("weird", float("-inf"), t0 + 2, 2),
        ]
        client.log_batch(parent.info.run_id, metrics=metrics)
        mlflow.log_text("hello from python\nsecond line\n", "notes/readme.txt")
        mlflow.log_dict({"a": 1, "nested": {"b": [1, 2, 3]}}, "config/params.json")
        image = (np.arange(8 * 8 * 3).reshape(8, 8, 3) * 3 % 256).astype(np.uint8)
        mlflow.log_image(image, "images/pattern.png")

        signature = infer_signature({"text": ["hi"]}, ["hi"])
        if MLFLOW_MAJOR >= 3:
            info = mlflow.pyfunc.log_model(
                name="echo-model", python_model=Echo(), signature=signature
            )
        else:
            info = mlflow.pyfunc.log_model(
                artifact_path="echo-model", python_model=Echo(), signature=signature
            )
        ids["model_uri"] = info.model_uri
        ids["model_id"] = getattr(info, "model_id", None)

        with mlflow.start_run(run_name="child-1", nested=True) as child:
            ids["child-1"] = child.info.run_id
            mlflow.log_param("fold", 1)
            for step in range(5):
                mlflow.log_metric("loss", 1.0 / (step + 1), step=step, timestamp=t0 + step * 100)
            with mlflow.start_run(run_name="grandchild", nested=True) as grandchild:
                ids["grandchild"] = grandchild.info.run_id
                mlflow.log_metric("depth", 2)
        with mlflow.start_run(run_name="child-2", nested=True) as child:
            ids["child-2"] = child.info.run_id
            mlflow.log_param("fold", 2)
            mlflow.log_metric("loss", 0.75, step=0, timestamp=t0)
            mlflow.end_run(status="FAILED")

    mlflow.set_experiment(experiment_id=beta)
    with mlflow.start_run(run_name="to-delete") as run:
        ids["deleted"] = run.info.run_id
        mlflow.log_param("p", "v")
        mlflow.log_metric("m", 1.5, step=7, timestamp=t0)
    client.delete_run(ids["deleted"])
    with mlflow.start_run(run_name="killed") as run:
        ids["killed"] = run.info.run_id
        client.log_batch(
            run.info.run_id,
            params=[Param("unicode", "héllo wörld ✓")],
            tags=[RunTag("quote", "it's \"quoted\"")],
        )
        mlflow.end_run(status="KILLED")
    still_running = client.create_run(beta, run_name="still-running", start_time=t0)
    ids["running"] = still_running.info.run_id

    # Registry: versions from the logged model (3.x: models:/m-...; 2.x: runs:/...), aliases,
    # tags, descriptions, a stage, and a registered model with no versions.
    name = "interop-echo"
    client.create_registered_model(name, tags={"owner": "ml-team"}, description="Echo model")
    source = ids["model_uri"]
    v1 = mlflow.register_model(source, name)
    v2 = client.create_model_version(
        name,
        f"runs:/{ids['parent']}/echo-model" if MLFLOW_MAJOR < 3 else source,
        run_id=ids["parent"],
        tags={"validated": "yes"},
        description="second version",
    )
    client.set_registered_model_alias(name, "champion", v1.version)
    client.set_registered_model_alias(name, "challenger", v2.version)
    client.set_model_version_tag(name, v1.version, "quality", "gold")
    client.transition_model_version_stage(name, v1.version, "Staging")
    client.create_registered_model("interop-empty", tags={"note": "no versions yet"})
    time.sleep(0.01)

    emit({"experiments": {"alpha": alpha, "beta": beta}, "ids": ids})


if __name__ == "__main__":
    main()
