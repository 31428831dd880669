"""Shared helpers for the interop scripts: quiet MLflow, version checks, JSON output."""

import json
import logging
import math
import os
import sys
import warnings

# MLflow 3.13+ refuses file-store backends unless this is set; older versions ignore it.
os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
# No telemetry, no network, no prompts at test time.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

warnings.filterwarnings("ignore")
logging.getLogger("mlflow").setLevel(logging.ERROR)
logging.getLogger("alembic").setLevel(logging.ERROR)

import mlflow  # noqa: E402

MLFLOW_MAJOR = int(mlflow.__version__.split(".")[0])


def json_number(v):
    """MLflow metrics may be NaN or +-Infinity; JSON has no spelling for those, REST uses these."""
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "Infinity" if v > 0 else "-Infinity"
    return v


def emit(obj, path=None):
    text = json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False)
    if path:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    else:
        sys.stdout.write(text + "\n")


def die(message):
    sys.stderr.write(message + "\n")
    sys.exit(2)
