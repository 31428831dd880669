"""What Python MLflow's registry FileStore reads from an mlruns folder, as JSON.

usage: read_registry.py <mlruns folder> <model name> <alias>

Prints the registered models (tags, aliases, versions with source, run id, stage, tags), the
version the alias names, and the files `models:/<name>@<alias>` downloads (resolved through the
version's storage location, e.g. runs:/<run>/model among the run artifacts).
"""

import os
import sys
import tempfile

from common import emit

import mlflow
from mlflow.tracking import MlflowClient


def main(root, name, alias):
    uri = "file://" + os.path.abspath(root)
    # Relative artifact locations (what the app writes for browser-made experiments) resolve
    # against the folder holding mlruns/.
    os.chdir(os.path.dirname(os.path.abspath(root)))
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    models = []
    for m in client.search_registered_models():
        versions = client.search_model_versions(f"name='{m.name}'")
        models.append({
            "name": m.name,
            "description": m.description,
            "tags": m.tags,
            "aliases": m.aliases,
            "versions": sorted(
                [
                    {
                        "version": int(v.version),
                        "source": v.source,
                        "run_id": v.run_id,
                        "stage": v.current_stage,
                        "tags": v.tags,
                    }
                    for v in versions
                ],
                key=lambda v: v["version"],
            ),
        })
    mv = client.get_model_version_by_alias(name, alias)
    out = tempfile.mkdtemp()
    local = mlflow.artifacts.download_artifacts(f"models:/{name}@{alias}", dst_path=out)
    files = sorted(
        os.path.relpath(os.path.join(d, f), local).replace(os.sep, "/")
        for d, _, fs in os.walk(local)
        for f in fs
    )
    emit({
        "models": sorted(models, key=lambda m: m["name"]),
        "by_alias": {"version": int(mv.version), "source": mv.source, "run_id": mv.run_id},
        "files": files,
    })


if __name__ == "__main__":
    main(*sys.argv[1:4])
