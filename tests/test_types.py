"""The library type-checks: mypy over ``pipeline/`` with the settings in pyproject.toml."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_mypy_finds_no_errors_in_the_library():
    run = subprocess.run([sys.executable, "-m", "mypy", "pipeline"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
