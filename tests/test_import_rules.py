"""The project's import rules, read from the source with :mod:`ast`.

Two rules keep the layout honest (see ``shared/DESIGN.md``):

* the sandbox is a test double: nothing outside ``amili/sandbox/`` and ``tests/`` imports
  ``amili.sandbox``, except the commands that start it (``amili sandbox``/``amili demo``, the
  Dagster demo and the benchmark). What Amili is assumed to accept lives in
  :mod:`amili.contract`, which everything imports instead;
* the ``amili`` package (client, models, contract, validation, pipeline, ...) never imports
  Dagster, so it can be used and tested without it.

Every import counts, at any level: module top, inside functions, under ``TYPE_CHECKING``,
relative imports (resolved against the file's package) and ``importlib.import_module("...")``
with a literal name.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Folders that hold no project source (environments, build output, data).
SKIPPED_DIRS = {"__pycache__", "target", "dbt_packages", "logs", "data", "node_modules"}

# The commands that start the sandbox may import it; everything else on the production path
# must not. Paths are relative to the repository root; a trailing "/" means a whole folder.
SANDBOX_STARTERS = (
    "amili/cli.py", "amili/api_demo.py", "orchestration/daily_demo.py", "bench/",
)


@dataclass(frozen=True)
class Import:
    """One imported module name and where it is written."""

    module: str
    file: str
    line: int

    def where(self) -> str:
        return f"{self.file}:{self.line}"


def _package_of(relative: Path) -> list[str]:
    """The package a file belongs to (its folder, for modules and __init__ alike)."""
    return list(relative.parent.parts)


def imports_in(source: str, relative: Path) -> Iterator[Import]:
    """Every module name the source imports, anywhere in it, with its line."""
    file = relative.as_posix()
    for node in ast.walk(ast.parse(source, filename=file)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(alias.name, file, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = _package_of(relative)
                base = package[: len(package) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            yield Import(module, file, node.lineno)
            # `from amili import sandbox` imports amili.sandbox too
            for alias in node.names:
                yield Import(f"{module}.{alias.name}", file, node.lineno)
        elif isinstance(node, ast.Call) and (name := _imported_by_call(node)):
            yield Import(name, file, node.lineno)


def _imported_by_call(call: ast.Call) -> str | None:
    """The literal module name of ``import_module("x")`` / ``__import__("x")``, else None."""
    func = call.func
    called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
    if called not in {"import_module", "__import__"} or not call.args:
        return None
    first = call.args[0]
    return first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None


def project_files() -> Iterator[Path]:
    """Every .py file of the project, relative to the root (hidden folders skipped)."""
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT)
        if any(part.startswith(".") or part in SKIPPED_DIRS for part in relative.parts[:-1]):
            continue
        yield relative


def all_imports() -> list[Import]:
    return [
        found
        for relative in project_files()
        for found in imports_in((ROOT / relative).read_text(encoding="utf-8"), relative)
    ]


def _is(module: str, name: str) -> bool:
    return module == name or module.startswith(name + ".")


def _under(file: str, prefixes: tuple[str, ...]) -> bool:
    return any(file.startswith(p) if p.endswith("/") else file == p for p in prefixes)


def _report(imports: Iterator[Import]) -> list[str]:
    """One line per offending statement (``from a import b`` yields both a and a.b)."""
    first: dict[str, Import] = {}
    for found in imports:
        first.setdefault(found.where(), found)
    return [f"{where} imports {i.module}" for where, i in first.items()]


def sandbox_imports_off_the_test_path(imports: list[Import]) -> list[str]:
    """Imports of amili.sandbox from files that are neither the sandbox, tests nor starters."""
    return _report(
        i
        for i in imports
        if _is(i.module, "amili.sandbox")
        and not _under(i.file, ("amili/sandbox/", "tests/", *SANDBOX_STARTERS))
    )


def dagster_imports_in_amili(imports: list[Import]) -> list[str]:
    """Imports of dagster or a dagster-* library from the amili package."""
    return _report(
        i
        for i in imports
        if i.file.startswith("amili/")
        and (_is(i.module, "dagster") or i.module.split(".")[0].startswith("dagster_"))
    )


def test_the_scan_sees_the_project() -> None:
    """The walk finds the packages the rules are about (a wrong root would pass vacuously)."""
    files = {p.as_posix() for p in project_files()}
    assert {"amili/client.py", "amili/contract.py", "amili/sandbox/app.py"} <= files
    assert any(f.startswith("orchestration/") for f in files)
    assert not any(f.startswith(".venv/") for f in files)


def test_nothing_outside_the_sandbox_and_tests_imports_it_but_its_starters() -> None:
    offending = sandbox_imports_off_the_test_path(all_imports())
    assert not offending, (
        "amili.sandbox is a test double; import what Amili accepts from amili.contract "
        "instead:\n  " + "\n  ".join(offending)
    )


def test_the_amili_package_never_imports_dagster() -> None:
    offending = dagster_imports_in_amili(all_imports())
    assert not offending, (
        "the amili package must work without Dagster; move this to assets/ or "
        "orchestration/:\n  " + "\n  ".join(offending)
    )


@pytest.mark.parametrize(
    ("file", "source", "expected"),
    [
        # a function-level import is found, with its line
        ("amili/pipeline/x.py", "def f():\n    from amili.sandbox.faults import FaultRule\n",
         ["amili/pipeline/x.py:2 imports amili.sandbox.faults"]),
        # a relative import is resolved against the file's package
        ("amili/pipeline/x.py", "from ..sandbox import store\n",
         ["amili/pipeline/x.py:1 imports amili.sandbox"]),
        ("amili/validation.py", "from amili import sandbox\n",
         ["amili/validation.py:1 imports amili.sandbox"]),
        ("amili/models.py", "import importlib\nimportlib.import_module('amili.sandbox.app')\n",
         ["amili/models.py:2 imports amili.sandbox.app"]),
        # the sandbox itself, the tests and the starters may
        ("amili/sandbox/app.py", "from amili.sandbox.store import Store\n", []),
        ("amili/cli.py", "from amili.sandbox.server import serve\n", []),
        ("bench/common.py", "from amili.sandbox.tokens import issue_token\n", []),
        # a name that only starts like the sandbox is not it
        ("amili/client.py", "import amili.sandboxes\n", []),
    ],
)
def test_the_sandbox_rule_reads_every_kind_of_import(
    file: str, source: str, expected: list[str]
) -> None:
    found = list(imports_in(source, Path(file)))
    assert sandbox_imports_off_the_test_path(found) == expected


@pytest.mark.parametrize(
    ("file", "source", "expected"),
    [
        ("amili/client.py", "if True:\n    import dagster as dg\n",
         ["amili/client.py:2 imports dagster"]),
        ("amili/pipeline/x.py", "from dagster_dbt import DbtCliResource\n",
         ["amili/pipeline/x.py:1 imports dagster_dbt"]),
        ("assets/submission.py", "import dagster\n", []),
    ],
)
def test_the_dagster_rule_reads_every_kind_of_import(
    file: str, source: str, expected: list[str]
) -> None:
    found = list(imports_in(source, Path(file)))
    assert dagster_imports_in_amili(found) == expected
