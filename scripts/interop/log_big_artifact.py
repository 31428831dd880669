"""Log a run with one large artifact to a tracking server, through its artifact proxy.

usage: log_big_artifact.py <tracking-uri> <experiment-name> <size-bytes>

The file (`weights/big.bin`) holds <size-bytes> pseudo-random bytes. Prints
{"run_id": ..., "experiment_id": ..., "path": "weights/big.bin", "size": ..., "sha256": ...}.
"""

import hashlib
import os
import random
import sys
import tempfile

from common import emit

import mlflow
from mlflow.tracking import MlflowClient


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    uri, name, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
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
        client.set_terminated(run.info.run_id)
    emit(
        {
            "run_id": run.info.run_id,
            "experiment_id": exp_id,
            "path": "weights/big.bin",
            "size": size,
            "sha256": digest.hexdigest(),
        }
    )


if __name__ == "__main__":
    main()
