"""The dbt project as Dagster sees it: where it lives, and its manifest.

The manifest is parsed once, never per run and never as a side effect of an import:
``dagster dev`` re-parses on load (``prepare_if_dev``); elsewhere ``scripts/test``,
``amili demo`` (:func:`prepare_dbt_project`) or a deploy step run ``dbt parse`` before the
definitions are loaded, and a missing manifest fails with a message that says so.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from dagster_dbt import DbtProject

DBT_PROJECT_DIR = Path(__file__).resolve().parents[1] / "dbt_project"

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
dbt_project.prepare_if_dev()


class DbtManifestMissingError(FileNotFoundError):
    """The dbt project has not been parsed: the assets cannot be defined without its manifest."""


def dbt_manifest() -> Path:
    """The parsed manifest the dbt assets are built from; fails clearly when there is none."""
    manifest = Path(dbt_project.manifest_path)
    if not manifest.exists():
        raise DbtManifestMissingError(
            f"No dbt manifest at {manifest}: parse the dbt project once before loading the "
            f"Dagster definitions: `cd {DBT_PROJECT_DIR} && dbt parse` (scripts/test, "
            "`amili demo` and `dagster dev` do it for you)."
        )
    return manifest


def dbt_executable() -> str:
    """The dbt installed beside this Python (the venv's), even when the venv is not on PATH."""
    beside = Path(sys.executable).parent / "dbt"
    return str(beside) if beside.exists() else "dbt"


def prepare_dbt_project() -> None:
    """Parse the dbt project if it has no manifest yet (for commands run on a fresh clone).

    The same ``dbt parse`` as ``scripts/test``, with the venv's dbt: dagster-dbt's own
    preparer looks for ``dbt`` on PATH, which a venv's console script need not have.
    """
    if not Path(dbt_project.manifest_path).exists():
        subprocess.run([dbt_executable(), "parse", "--quiet"], cwd=DBT_PROJECT_DIR, check=True)
