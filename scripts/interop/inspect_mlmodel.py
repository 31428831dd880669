"""What mlflow.models.Model.load sees in a model folder or zip (no flavor loading).

usage: inspect_mlmodel.py <model-dir or .zip>

Prints {"flavors": {...}, "signature": {...}, "metadata", "saved_input_example_info",
"input_example", "model_uuid", "mlflow_version"} as JSON.
"""

import os
import sys
import tempfile
import zipfile

from common import emit

import mlflow


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    path = sys.argv[1]
    if path.endswith(".zip"):
        out = tempfile.mkdtemp(prefix="model-zip-", dir=os.getcwd())
        with zipfile.ZipFile(path) as z:
            z.extractall(out)
        path = out
    m = mlflow.models.Model.load(path)
    emit(
        {
            "flavors": m.flavors,
            "signature": m.signature.to_dict() if m.signature else None,
            "metadata": m.metadata,
            "saved_input_example_info": m.saved_input_example_info,
            "input_example": m.load_input_example(path),
            "model_uuid": m.model_uuid,
            "mlflow_version": m.mlflow_version,
        }
    )


if __name__ == "__main__":
    main()
