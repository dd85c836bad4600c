"""The Dagster side reads one way: shared pieces, then the assets, then what wires them up.

Layers, from the bottom (a module may import its own layer and the layers below, never one
above; checked on the source with ``ast``, imports inside functions included):

0. ``orchestration.{partitions, pools, resources, dbt_project, dagster_fixes}``: what every
   asset shares (partitions, pool names, resources, the dbt project);
1. ``assets.*``: the assets and asset checks;
2. ``orchestration.{jobs, pool_watchdog, alerts, unretried_alert, definitions}``: jobs,
   schedules, sensors and the ``Definitions`` object that ``workspace.yaml`` loads;
3. ``orchestration.daily_demo``: the ``amili demo`` command, which runs the definitions.

Every module of ``orchestration/`` must be in a layer, so a new one is placed on purpose.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from dagster_dbt import DbtProject

ROOT = Path(__file__).resolve().parents[1]

LAYERS: list[set[str]] = [
    {"orchestration.partitions", "orchestration.pools", "orchestration.resources",
     "orchestration.dbt_project", "orchestration.dagster_fixes", "orchestration.run_failures"},
    {"assets"},  # the whole package
    {"orchestration.jobs", "orchestration.pool_watchdog", "orchestration.alerts",
     "orchestration.unretried_alert", "orchestration.definitions"},
    {"orchestration.daily_demo"},
]
LAYER_NAMES = ["shared (partitions, pools, resources, dbt project)", "assets",
               "jobs, sensors and definitions", "commands"]


def layer_of(module: str) -> int | None:
    """The layer of a project module (``assets.x`` or ``orchestration.x``), None if unplaced."""
    for index, members in enumerate(LAYERS):
        if any(module == m or module.startswith(m + ".") for m in members):
            return index
    return None


def module_name(path: Path, root: Path) -> str:
    return ".".join(path.relative_to(root).with_suffix("").parts)


def imported_modules(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, module) of every import of ``assets`` or ``orchestration`` in the file."""
    found: list[tuple[int, str]] = []
    package = module_name(path, root).rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the file's package
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            # `from orchestration import jobs` imports the module orchestration.jobs
            names = ([f"{base}.{alias.name}" for alias in node.names]
                     if base in {"assets", "orchestration"} else [base])
        else:
            continue
        found += [(node.lineno, name) for name in names
                  if name.split(".")[0] in {"assets", "orchestration"}]
    return found


def layering_violations(root: Path = ROOT) -> list[str]:
    """One ``file:line: what`` per import against the layers, and per module in no layer."""
    problems: list[str] = []
    files = sorted(path for folder in ("assets", "orchestration")
                   for path in (root / folder).rglob("*.py") if path.name != "__init__.py")
    for path in files:
        name = module_name(path, root)
        here = layer_of(name)
        where = path.relative_to(root)
        if here is None:
            problems.append(f"{where}:1: {name} is in no layer (add it to LAYERS)")
            continue
        for line, name in imported_modules(path, root):
            there = layer_of(name)
            if there is None:
                problems.append(f"{where}:{line}: imports {name}, which is in no layer")
            elif there > here:
                problems.append(f"{where}:{line}: a module of layer '{LAYER_NAMES[here]}' "
                                f"imports {name} from the layer above, '{LAYER_NAMES[there]}'")
    return problems


def test_assets_and_orchestration_import_one_way() -> None:
    problems = layering_violations()
    assert not problems, "\n".join(problems)


def test_the_layer_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The check itself: a shared module importing the definitions is reported with its line."""
    fake = tmp_path / "orchestration"
    fake.mkdir()
    (fake / "pools.py").write_text('"""x"""\n\nfrom orchestration.definitions import defs\n')
    (tmp_path / "assets").mkdir()
    assert layering_violations(tmp_path) == [
        "orchestration/pools.py:3: a module of layer 'shared (partitions, pools, resources, dbt "
        "project)' imports orchestration.definitions from the layer above, 'jobs, sensors and "
        "definitions'"]


def test_a_missing_dbt_manifest_fails_with_the_command_to_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No dbt parse at import: without a manifest the assets fail to load, saying what to do."""
    from orchestration import dbt_project as module

    (tmp_path / "dbt_project.yml").write_text("name: x\nversion: '1'\nprofile: x\n")
    monkeypatch.setattr(module, "dbt_project", DbtProject(project_dir=tmp_path))
    with pytest.raises(module.DbtManifestMissingError, match="dbt parse"):
        module.dbt_manifest()
