"""The layers of docs/architecture.md hold: import-linter's contracts in pyproject.toml pass, and
a module importing upwards makes them fail (so the check cannot pass by checking nothing)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

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


def test_an_upward_import_breaks_a_contract(tmp_path):
    tree = _copy_tree(tmp_path)
    errors = tree / "foundation" / "errors.py"
    errors.write_text(errors.read_text() + "\nimport identity  # an upward import: the ground must not know identity\n")
    result = _lint_imports(tree)
    assert result.returncode != 0
    assert "foundation is not allowed to import identity" in result.stdout or "foundation.errors -> identity" in result.stdout


def test_ratings_below_redemption_breaks_the_benefits_layers(tmp_path):
    tree = _copy_tree(tmp_path)
    reasons = tree / "benefits" / "redemption" / "reasons.py"
    reasons.write_text(reasons.read_text() + "\nimport benefits.ratings  # redemption must not know ratings\n")
    result = _lint_imports(tree)
    assert result.returncode != 0
    assert "benefits.redemption.reasons -> benefits.ratings" in result.stdout


def test_the_runtime_core_importing_the_demo_breaks_the_runtime_layers(tmp_path):
    tree = _copy_tree(tmp_path)
    runtime = tree / "chongjun" / "runtime.py"
    runtime.write_text(runtime.read_text() + "\nimport chongjun.demo  # the runtime must not know its tools\n")
    result = _lint_imports(tree)
    assert result.returncode != 0
    assert "chongjun.runtime -> chongjun.demo" in result.stdout


def test_a_bench_importing_the_demo_breaks_their_independence(tmp_path):
    tree = _copy_tree(tmp_path)
    matching = tree / "chongjun" / "bench" / "matching.py"
    matching.write_text(matching.read_text() + "\nimport chongjun.demo  # the CLI hands the bench its catalog\n")
    result = _lint_imports(tree)
    assert result.returncode != 0
    assert "chongjun.bench.matching -> chongjun.demo" in result.stdout
