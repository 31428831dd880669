"""What real MLflow sees in a tracking store, as canonical JSON, and the difference between two.

usage:
  dump_store.py dump <tracking-uri> [--out FILE]
  dump_store.py diff <expected.json> <tracking-uri> [--ignore KEY ...] [--empty-is-null]

`dump` asks MlflowClient (search_experiments, search_runs, get_metric_history, list_artifacts,
search_logged_models, search_registered_models, search_model_versions) and writes one JSON
document. Artifact contents are compared by SHA-256, downloaded through MLflow itself, so an
export whose artifact URIs do not resolve shows up as missing files.

`diff` dumps <tracking-uri> and prints a JSON list of differences against <expected.json>
(`[]` when nothing was lost or changed). Keys named with --ignore (e.g. `artifact_location`)
are left out of the comparison wherever they appear. --empty-is-null compares '' and null as
equal: over REST (an http:// tracking URI) MLflow sends an unset string as "" or leaves it out.
"""

import hashlib
import json
import os
import sys
import tempfile

from common import MLFLOW_MAJOR, emit, json_number

import mlflow
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

PAGE = 1000


def paged(fetch):
    token = None
    while True:
        page = fetch(token)
        yield from page
        token = page.token
        if not token:
            return


def artifact_files(client, run_id, path=None):
    out = []
    for f in client.list_artifacts(run_id, path):
        if f.is_dir:
            out.extend(artifact_files(client, run_id, f.path))
        else:
            out.append(f.path)
    return out


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def dump_artifacts(client, run_id):
    try:
        files = sorted(artifact_files(client, run_id))
    except Exception as e:
        return f"unreadable: {type(e).__name__}"
    out = {}
    if not files:
        return out
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = client.download_artifacts(run_id, "", tmp)
        except Exception as e:
            return f"unreadable: {type(e).__name__}"
        for rel in files:
            p = os.path.join(local, rel)
            out[rel] = (
                {"size": os.path.getsize(p), "sha256": sha256_of(p)}
                if os.path.exists(p)
                else "missing after download"
            )
    return out


def dump_tree(root):
    out = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root).replace(os.sep, "/")
            out[rel] = {"size": os.path.getsize(p), "sha256": sha256_of(p)}
    return dict(sorted(out.items()))


def metric_point(m):
    return {"step": m.step, "timestamp": m.timestamp, "value": json_number(m.value)}


def point_key(p):
    return (p["step"], p["timestamp"], json.dumps(p["value"]))


def dump(uri):
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(uri, uri)
    doc = {"experiments": [], "runs": [], "logged_models": [], "registered_models": []}

    experiments = list(
        paged(
            lambda t: client.search_experiments(
                view_type=ViewType.ALL, max_results=PAGE, page_token=t
            )
        )
    )
    for e in sorted(experiments, key=lambda e: e.experiment_id):
        doc["experiments"].append(
            {
                "experiment_id": e.experiment_id,
                "name": e.name,
                "artifact_location": e.artifact_location,
                "lifecycle_stage": e.lifecycle_stage,
                "creation_time": e.creation_time,
                "last_update_time": e.last_update_time,
                "tags": dict(e.tags),
            }
        )
    exp_ids = [e.experiment_id for e in experiments]
    if not exp_ids:
        return doc

    runs = list(
        paged(
            lambda t: client.search_runs(
                exp_ids, run_view_type=ViewType.ALL, max_results=PAGE, page_token=t
            )
        )
    )
    for r in sorted(runs, key=lambda r: r.info.run_id):
        i = r.info
        histories = {}
        for key in sorted(r.data.metrics):
            points = [metric_point(m) for m in client.get_metric_history(i.run_id, key)]
            histories[key] = sorted(points, key=point_key)
        latest = {}
        for key, value in r.data.metrics.items():
            latest[key] = json_number(value)
        doc["runs"].append(
            {
                "run_id": i.run_id,
                "experiment_id": i.experiment_id,
                "run_name": i.run_name,
                "user_id": i.user_id,
                "status": i.status,
                "start_time": i.start_time,
                "end_time": i.end_time,
                "lifecycle_stage": i.lifecycle_stage,
                "artifact_uri": i.artifact_uri,
                "params": dict(r.data.params),
                "tags": dict(r.data.tags),
                "metrics": latest,
                "metric_history": histories,
                "artifacts": dump_artifacts(client, i.run_id),
            }
        )

    if MLFLOW_MAJOR >= 3:
        models = list(
            paged(
                lambda t: client.search_logged_models(exp_ids, max_results=100, page_token=t)
            )
        )
        for m in sorted(models, key=lambda m: m.model_id):
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    local = mlflow.artifacts.download_artifacts(
                        artifact_uri=m.artifact_location, dst_path=tmp
                    )
                    files = dump_tree(local)
                except Exception as e:  # a broken location is a difference, not a crash
                    files = f"unreadable: {type(e).__name__}"
            doc["logged_models"].append(
                {
                    "model_id": m.model_id,
                    "experiment_id": m.experiment_id,
                    "name": m.name,
                    "source_run_id": m.source_run_id,
                    "status": str(m.status),
                    "model_type": m.model_type,
                    "creation_timestamp": m.creation_timestamp,
                    "artifact_location": m.artifact_location,
                    "tags": dict(m.tags),
                    "params": dict(m.params),
                    "metrics": sorted(
                        (
                            {
                                "key": x.key,
                                "run_id": x.run_id,
                                **metric_point(x),
                            }
                            for x in (m.metrics or [])
                        ),
                        key=lambda p: (p["key"], *point_key(p)),
                    ),
                    "files": files,
                }
            )

    names = [
        rm.name
        for rm in paged(
            lambda t: client.search_registered_models(max_results=PAGE, page_token=t)
        )
    ]
    for name in sorted(names):
        rm = client.get_registered_model(name)
        versions = []
        for found in client.search_model_versions(f"name = '{name}'"):
            # The SQL store's search leaves aliases empty; get_model_version fills them.
            v = client.get_model_version(name, found.version)
            versions.append(
                {
                    "version": str(v.version),
                    "source": v.source,
                    "run_id": v.run_id,
                    "current_stage": v.current_stage,
                    "status": v.status,
                    "status_message": v.status_message,
                    "description": v.description,
                    "user_id": v.user_id,
                    "run_link": v.run_link,
                    "creation_timestamp": v.creation_timestamp,
                    "last_updated_timestamp": v.last_updated_timestamp,
                    "tags": dict(v.tags),
                    "aliases": sorted(v.aliases),
                    "model_id": getattr(v, "model_id", None),
                }
            )
        aliases = rm.aliases
        if isinstance(aliases, list):
            aliases = {a.alias: a.version for a in aliases}
        doc["registered_models"].append(
            {
                "name": rm.name,
                "description": rm.description,
                "creation_timestamp": rm.creation_timestamp,
                "last_updated_timestamp": rm.last_updated_timestamp,
                "tags": dict(rm.tags),
                "aliases": {k: str(v) for k, v in sorted(dict(aliases).items())},
                "versions": sorted(versions, key=lambda v: int(v["version"])),
            }
        )
    return doc


def strip(obj, ignore, empty_is_null=False):
    if isinstance(obj, dict):
        return {k: strip(v, ignore, empty_is_null) for k, v in obj.items() if k not in ignore}
    if isinstance(obj, list):
        return [strip(v, ignore, empty_is_null) for v in obj]
    if empty_is_null and obj == "":
        return None
    return obj


def by_id(items):
    """Lists of entities are compared by their id, so one missing run is one difference."""
    for id_key in ("run_id", "experiment_id", "model_id", "name"):
        if items and all(isinstance(x, dict) and id_key in x for x in items):
            return {str(x[id_key]): x for x in items}
    return None


def differences(expected, actual, path="$"):
    out = []
    if isinstance(expected, dict) and isinstance(actual, dict):
        for k in sorted(set(expected) | set(actual), key=str):
            p = f"{path}.{k}"
            if k not in actual:
                out.append({"path": p, "expected": expected[k], "actual": "<missing>"})
            elif k not in expected:
                out.append({"path": p, "expected": "<absent>", "actual": actual[k]})
            else:
                out.extend(differences(expected[k], actual[k], p))
        return out
    if isinstance(expected, list) and isinstance(actual, list):
        e_ids, a_ids = by_id(expected), by_id(actual)
        if e_ids is not None and a_ids is not None:
            return differences(e_ids, a_ids, path)
        if len(expected) != len(actual):
            return [{"path": path, "expected": expected, "actual": actual}]
        for n, (e, a) in enumerate(zip(expected, actual)):
            out.extend(differences(e, a, f"{path}[{n}]"))
        return out
    if expected != actual:
        out.append({"path": path, "expected": expected, "actual": actual})
    return out


def main():
    args = sys.argv[1:]
    if len(args) >= 2 and args[0] == "dump":
        out = args[args.index("--out") + 1] if "--out" in args else None
        emit(dump(args[1]), out)
    elif len(args) >= 3 and args[0] == "diff":
        ignore = {args[i + 1] for i, a in enumerate(args) if a == "--ignore"}
        with open(args[1], encoding="utf-8") as f:
            expected = json.load(f)
        actual = dump(args[2])
        empty = "--empty-is-null" in args
        emit(differences(strip(expected, ignore, empty), strip(actual, ignore, empty)))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
