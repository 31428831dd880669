"""Log a run with one large artifact to a tracking server, through its artifact proxy.

usage: log_big_artifact.py <tracking-uri> <experiment-name> <size-bytes> [--register NAME]

The file (`weights/big.bin`) holds <size-bytes> pseudo-random bytes. Prints
{"run_id": ..., "experiment_id": ..., "path": "weights/big.bin", "size": ..., "sha256": ...}.
With --register, the same file is also the artifact `weights` of a python_function model logged
from that run and registered as version 1 of NAME ("model_version" in the output).
"""

import hashlib
import os
import random
import sys
import tempfile

from common import emit

import mlflow
from mlflow.tracking import MlflowClient


class Constant(mlflow.pyfunc.PythonModel):
    """A model that only carries its weights file: the pull is what is being tested."""

    def predict(self, context, model_input, params=None):
        return [0] * len(model_input)


def main():
    args = sys.argv[1:]
    register = None
    if "--register" in args:
        i = args.index("--register")
        register = args[i + 1]
        del args[i : i + 2]
    if len(args) != 3:
        sys.exit(__doc__)
    uri, name, size = args[0], args[1], int(args[2])
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(name)
    exp_id = exp.experiment_id if exp else client.create_experiment(name)
    rng = random.Random(7)
    digest = hashlib.sha256()
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(os.path.join(tmp, "weights"))
        path = os.path.join(tmp, "weights", "big.bin")
        with open(path, "wb") as f:
            left = size
            while left > 0:
                block = rng.randbytes(min(left, 1 << 20))
                digest.update(block)
                f.write(block)
                left -= len(block)
        run = client.create_run(exp_id, run_name="big-artifact")
        client.log_param(run.info.run_id, "size", size)
        client.log_artifact(run.info.run_id, path, "weights")
        version = None
        if register:
            mlflow.set_registry_uri(uri)
            with mlflow.start_run(run_id=run.info.run_id):
                info = mlflow.pyfunc.log_model(
                    name="big-model",
                    python_model=Constant(),
                    artifacts={"weights": path},
                    pip_requirements=["numpy"],
                )
            version = mlflow.register_model(info.model_uri, register).version
        client.set_terminated(run.info.run_id)
    emit(
        {
            "run_id": run.info.run_id,
            "experiment_id": exp_id,
            "path": "weights/big.bin",
            "size": size,
            "sha256": digest.hexdigest(),
            "model_version": None if version is None else str(version),
        }
    )


if __name__ == "__main__":
    main()
