"""Lint: the whole project passes ruff, at the version pinned in pyproject.toml's test extra.

Ruff's rule set and its reasons are in pyproject.toml ([tool.ruff.lint]).
A failure prints ruff's findings; `.venv/bin/ruff check .` shows the same.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))


def _pinned(name: str) -> str:
    """The version of `name` pinned (==) in the test extra."""
    for spec in PYPROJECT["project"]["optional-dependencies"]["test"]:
        found = re.fullmatch(rf"{re.escape(name)}==(\S+)", spec.strip())
        if found:
            return found.group(1)
    raise AssertionError(f"{name} is not pinned in pyproject.toml's test extra")


def _ruff(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed ruff from the project root (so pyproject.toml's settings apply)."""
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args], cwd=ROOT, input=stdin, capture_output=True, text=True, timeout=120
    )


def test_ruff_is_the_pinned_version():
    """Ruff is installed at the pinned version: another version checks other things, and may pass what this one fails."""
    result = _ruff("--version")
    assert result.returncode == 0, f"ruff is not installed (scripts/setup --test installs it):\n{result.stderr}"
    assert result.stdout.split() == ["ruff", _pinned("ruff")]


def test_ruff_reports_a_finding():
    """The check really runs with the project's settings: an unused import in a project file is reported."""
    result = _ruff("check", "--no-cache", "--stdin-filename", "dojoguard/example.py", "-", stdin="import os\n")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "F401" in result.stdout


def test_the_project_passes_ruff():
    """Every Python file in the project passes `ruff check`; the findings are printed when it does not."""
    result = _ruff("check", "--no-cache", "--output-format=concise", ".")
    if result.returncode != 0:
        pytest.fail(f"ruff check . found problems:\n{result.stdout}{result.stderr}", pytrace=False)
