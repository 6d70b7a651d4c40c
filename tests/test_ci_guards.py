"""The guards that keep CI honest, run as real pytest sessions in a subprocess: in CI a skip fails
the run, off CI a missing Chromium ends the run with one line, every test has a timeout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pyproject_toml import pyproject

REPO = Path(__file__).resolve().parents[1]
SKIPPING = "import pytest\n\ndef test_needs_something():\n    pytest.skip('something is missing')\n"


def pytest_in(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if k != "CI"} | env | {"PYTHONPATH": f"{REPO}:{REPO / 'tests'}"}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "skip_guard", "-p", "no:cacheprovider", *args],
                          cwd=folder, env=e, capture_output=True, text=True, timeout=240, check=False)


def test_a_skip_fails_the_run_in_ci_but_not_elsewhere(tmp_path):
    (tmp_path / "test_skips.py").write_text(SKIPPING)
    assert pytest_in(tmp_path).returncode == 0
    ci = pytest_in(tmp_path, CI="true")
    assert ci.returncode == 1, ci.stdout
    assert "test_skips.py::test_needs_something" in ci.stdout and "ALLOWED_SKIPS" in ci.stdout


def test_the_ci_script_exports_ci_itself():
    lines = (REPO / ".ci" / "run").read_text().splitlines()
    assert "export CI=true" in lines
    assert lines.index("export CI=true") < lines.index("make test")


def test_every_test_has_a_timeout():
    cfg = pyproject()["tool"]["pytest"]["ini_options"]
    assert 0 < int(cfg["timeout"]) <= 600


def test_missing_chromium_ends_the_run_with_one_line_on_how_to_enable_it(tmp_path):
    r = pytest_in(REPO, "tests/test_dashboard_browser.py", INTERP_CHROMIUM=str(tmp_path / "no-chromium"))
    assert r.returncode == 0, r.stdout
    last = r.stdout.strip().splitlines()[-1]
    assert last == "browser tests skipped: Chromium is not installed; enable them with `apt-get install chromium`", r.stdout
