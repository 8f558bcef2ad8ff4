"""The layers of docs/architecture.md hold: import-linter's contracts in pyproject.toml pass, and
a module importing upwards makes them fail (so the check cannot pass by checking nothing)."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("foundation", "migrations", "identity", "merchants", "benefits", "api", "chongjun")


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache", "--config", str(tree / "pyproject.toml")],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _copy_tree(target: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, target / package, ignore=shutil.ignore_patterns("__pycache__", "*.json", "*.sql"))
    shutil.copy(ROOT / "pyproject.toml", target / "pyproject.toml")
    return target


def test_the_layer_contracts_hold():
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def _lint_with_import(tmp_path: Path, module: str, line: str) -> subprocess.CompletedProcess[str]:
    """import-linter over a copy of the tree in which `module` (a path) ends with one more import."""
    tree = _copy_tree(tmp_path)
    target = tree / module
    target.write_text(target.read_text() + "\n" + line + "\n")
    return _lint_imports(tree)


def test_an_upward_import_breaks_a_contract(tmp_path):
    result = _lint_with_import(
        tmp_path, "foundation/errors.py", "import identity  # an upward import: the ground must not know identity"
    )
    assert result.returncode != 0
    assert "foundation is not allowed to import identity" in result.stdout or "foundation.errors -> identity" in result.stdout


def test_ratings_below_redemption_breaks_the_benefits_layers(tmp_path):
    result = _lint_with_import(
        tmp_path, "benefits/redemption/reasons.py", "import benefits.ratings  # redemption must not know ratings"
    )
    assert result.returncode != 0
    assert "benefits.redemption.reasons -> benefits.ratings" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "reported"),
    [
        ("chongjun/runtime.py", "import chongjun.demo  # the runtime must not know its tools",
         "chongjun.runtime -> chongjun.demo"),
        ("chongjun/bench/matching.py", "import chongjun.demo  # the CLI hands the bench its catalog",
         "chongjun.bench.matching -> chongjun.demo"),
    ],
    ids=["runtime-imports-demo", "bench-imports-demo"],
)
def test_the_runtime_core_and_its_tools_keep_apart(tmp_path, module, line, reported):
    result = _lint_with_import(tmp_path, module, line)
    assert result.returncode != 0
    assert reported in result.stdout


OUR_PACKAGES = ("foundation", "migrations", "identity", "merchants", "benefits", "archive", "exchange", "api", "chongjun")


def private_names_imported_across_modules(root: Path) -> list[str]:
    """`from our.module import _name` anywhere in our packages: a module's `_` names are its own
    (docs/architecture.md), so a second module that needs one needs it made public."""
    found = []
    for package in OUR_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in OUR_PACKAGES:
                    found += [
                        f"{path.relative_to(root)}: from {node.module} import {alias.name}"
                        for alias in node.names
                        if alias.name.startswith("_") and not alias.name.startswith("__")
                    ]
    return found


def test_no_private_name_is_imported_across_modules():
    assert private_names_imported_across_modules(ROOT) == []


def test_a_private_import_is_found(tmp_path):
    (tmp_path / "api").mkdir()
    (tmp_path / "api" / "stats.py").write_text("from api.merchants import CSV, _csv\n")
    assert private_names_imported_across_modules(tmp_path) == ["api/stats.py: from api.merchants import _csv"]
