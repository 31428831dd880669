"""Reads a project folder with MLflow's own MLproject loader (what `mlflow run` uses) and prints
its name, entry points and parameters, and the command each entry point renders for the given
parameter values, as one JSON document.

usage: load_mlproject.py <project dir> <entry point> <json of parameter values>
"""
import json
import os
import sys

from mlflow.projects import _project_spec


def main():
    directory, entry, values = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    # `mlflow run <dir>` resolves relative `path` values from the project's folder.
    os.chdir(directory)
    project = _project_spec.load_project(directory)
    eps = {}
    for name, ep in project._entry_points.items():
        eps[name] = {
            "command": ep.command,
            "parameters": {
                p.name: {"type": p.type, "default": p.default} for p in ep.parameters.values()
            },
        }
    ep = project.get_entry_point(entry)
    command = ep.compute_command(values, storage_dir=directory)
    print(json.dumps({"name": project.name, "entry_points": eps, "command": command, "env_type": project.env_type}))


if __name__ == "__main__":
    main()
