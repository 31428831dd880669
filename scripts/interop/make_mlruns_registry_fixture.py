"""Writes an mlruns store with a model registry, as Python MLflow's FileStore does, and zips it.

The store holds one run whose model sits among its artifacts (`saved/`, the 2.x layout) and whose
MLflow 3 logged model is named `model`; a registered model with versions from each (runs:/ to the
artifacts, models:/m-..., runs:/ resolved through the logged model), one whose files live
elsewhere, a deleted version, an alias, tags, a stage; and a second model registered from the
logged model. Usage: python make_mlruns_registry_fixture.py OUT.zip
"""

import os
import shutil
import sys
import tempfile
import zipfile

os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"

import mlflow  # noqa: E402
from mlflow import MlflowClient  # noqa: E402


class Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input):
        return model_input


def main(out_zip: str) -> None:
    work = tempfile.mkdtemp()
    os.chdir(work)
    mlflow.set_tracking_uri("file:./mlruns")
    mlflow.set_experiment("registry demo")
    with mlflow.start_run(run_name="trainer") as run:
        mlflow.log_param("lr", "0.01")
        mlflow.log_metric("acc", 0.9)
        local = os.path.join(work, "saved-model")
        mlflow.pyfunc.save_model(local, python_model=Echo(), pip_requirements=["numpy"])
        mlflow.log_artifacts(local, "saved")
        info = mlflow.pyfunc.log_model(name="model", python_model=Echo(), pip_requirements=["numpy"])
    rid = run.info.run_id
    c = MlflowClient()
    c.create_registered_model("My Model", tags={"team": "vision"}, description="Echo *model*")
    c.create_model_version("My Model", f"runs:/{rid}/saved", run_id=rid)
    c.create_model_version("My Model", info.model_uri, run_id=rid)
    c.create_model_version("My Model", f"runs:/{rid}/model", run_id=rid, tags={"reviewed": "yes"})
    c.create_model_version("My Model", "file:///elsewhere/model", description="gone soon")
    c.delete_model_version("My Model", "4")
    c.create_model_version("My Model", "s3://bucket/models/echo")
    c.set_registered_model_alias("My Model", "champion", "2")
    c.transition_model_version_stage("My Model", "3", "Staging")
    mlflow.register_model(info.model_uri, "other")
    with zipfile.ZipFile(out_zip, "w", zipfile.ZIP_DEFLATED) as z:
        for root, dirs, files in os.walk("mlruns"):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(root, name)
                z.write(path, path.replace(os.sep, "/"))
    shutil.rmtree(work)


if __name__ == "__main__":
    main(os.path.abspath(sys.argv[1]))
