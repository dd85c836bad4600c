"""The dbt project as Dagster sees it: where it lives, and its manifest.

The manifest is parsed once (``dagster dev`` re-parses on load through ``prepare_if_dev``;
``scripts/test`` and ``amili`` commands run ``dbt parse`` up front), never per run.
"""

from __future__ import annotations

import sys
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject

DBT_PROJECT_DIR = Path(__file__).resolve().parents[1] / "dbt_project"

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
dbt_project.prepare_if_dev()
if not dbt_project.manifest_path.exists():
    # A fresh clone: parse once so the code location can load.
    dbt_project.preparer.prepare(dbt_project)


def dbt_executable() -> str:
    """The dbt installed beside this Python (the venv's), even when the venv is not on PATH."""
    beside = Path(sys.executable).parent / "dbt"
    return str(beside) if beside.exists() else "dbt"


def dbt_resource() -> DbtCliResource:
    return DbtCliResource(project_dir=dbt_project, dbt_executable=dbt_executable())
