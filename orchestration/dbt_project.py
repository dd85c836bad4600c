"""The dbt project as Dagster sees it: where it lives, and its manifest.

The manifest is parsed once, never per run and never as a side effect of an import:
``dagster dev`` re-parses on load (``prepare_if_dev``); elsewhere ``scripts/test``,
``amili demo`` (:func:`prepare_dbt_project`) or a deploy step run ``dbt parse`` before the
definitions are loaded, and a missing manifest fails with a message that says so.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
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


#: The folder dagster-dbt gives one invocation under the project's target folder:
#: ``<op name>-<run id[:7]>-<random[:7]>`` (or the random part alone without a context).
_INVOCATION_FOLDER = re.compile(r"(?:[A-Za-z0-9_]+-[0-9a-f]{7}-)?[0-9a-f]{7}")


def prune_invocation_targets(target_dir: Path, keep_days: float,
                             now: float | None = None) -> list[Path]:
    """Delete the per-invocation target folders older than ``keep_days``; returns them.

    Each dbt invocation gets a folder of its own (manifest, run results, compiled SQL: about
    5 MB), and dagster-dbt never removes one: a daily job would fill its volume by gigabytes
    a year. The recent ones stay for looking into a failed run; the project's own files
    (``manifest.json``, ``partial_parse.msgpack``) are never touched.
    """
    if not target_dir.is_dir():
        return []
    cutoff = (time.time() if now is None else now) - keep_days * 86400
    removed = []
    for folder in target_dir.iterdir():
        if (folder.is_dir() and _INVOCATION_FOLDER.fullmatch(folder.name)
                and folder.stat().st_mtime < cutoff):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed
