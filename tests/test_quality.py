"""Project-wide checks: lint, format, strict typing, and the functional-core layering."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PURE = [
    "polytune/space.py",
    "polytune/experiment.py",
    "polytune/model.py",
    "polytune/query.py",
    "polytune/report.py",
    "polytune/review.py",
    "polytune/render.py",
    "polytune/suggest.py",
    "polytune/stopping.py",
    *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "polytune" / "algorithms").glob("*.py")),
]
FORBIDDEN_IN_PURE = {"subprocess", "filelock", "click", "rich", "time", "os", "shutil", "signal"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_do_no_io(module: str) -> None:
    path = ROOT / module
    if not path.exists():
        pytest.skip(f"{module} does not exist yet")
    bad = _imports(path) & FORBIDDEN_IN_PURE
    assert not bad, f"{module} is part of the functional core but imports {sorted(bad)}"


def _tool(name: str) -> list[str]:
    if shutil.which(name) is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return [name]


def test_ruff_lint() -> None:
    proc = subprocess.run(
        [*_tool("ruff"), "check", "polytune", "tests", "benchmarks", "examples"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_format() -> None:
    proc = subprocess.run(
        [*_tool("ruff"), "format", "--check", "polytune"], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_mypy_strict() -> None:
    proc = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
