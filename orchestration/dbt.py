"""The dbt project as Dagster sees it: where it lives, and its manifest.

The manifest is parsed once (``dagster dev`` re-parses on load through ``prepare_if_dev``;
``scripts/test`` and ``amili`` commands run ``dbt parse`` up front), never per run.
"""

from __future__ import annotations

import sys
from functools import cached_property
from importlib.metadata import version as installed_version
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject
from packaging.version import Version

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


class AmiliDbtCliResource(DbtCliResource):
    """dagster-dbt's resource, without a ``dbt --version`` subprocess in every run.

    Before its first invocation in a run, ``DbtCliResource`` asks the dbt executable for its
    version (``_cli_version``: a subprocess that imports all of dbt, 4 to 6 s here, about a
    sixth of an empty day's run). The executable is the one installed beside this Python
    (:func:`dbt_executable`), so the version of the ``dbt-core`` package is its version.
    ``tests/orchestration`` holds the two equal. (An override of a private member: it goes
    if dagster-dbt stops asking.)
    """

    @cached_property
    def _cli_version(self) -> Version:
        return Version(installed_version("dbt-core"))


def dbt_resource() -> DbtCliResource:
    return AmiliDbtCliResource(project_dir=dbt_project, dbt_executable=dbt_executable())
