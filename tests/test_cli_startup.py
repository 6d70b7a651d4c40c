"""`interp --help`, `interp CMD --help` and argument errors answer without importing torch,
TransformerLens or transformers (bench/startup.py times them), while each command's module says
what it depends on at its top: no import tucked inside a function there."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from interp.cli import COMMANDS

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformer_lens", "transformers", "numpy")
PROBE = """
import sys
from interp.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print("HEAVY:" + ",".join(m for m in {heavy!r} if m in sys.modules))
"""


def imported_by(*argv: str) -> tuple[list[str], subprocess.CompletedProcess]:
    r = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *argv], capture_output=True, text=True, check=False,
                       cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=120)
    last = r.stdout.strip().splitlines()[-1]
    assert last.startswith("HEAVY:"), r.stdout + r.stderr
    return [m for m in last[len("HEAVY:"):].split(",") if m], r


@pytest.mark.parametrize("argv", [["--help"], ["bogus-command"], *[[c, "--help"] for c in COMMANDS],
                                  ["train-sae", "--site", "nowhere", "--out", "x"], ["record"]])
def test_help_and_argument_errors_import_nothing_heavy(argv):
    heavy, r = imported_by(*argv)
    assert heavy == [], f"{argv} imported {heavy}"
    if argv != ["--help"] and argv[-1] != "--help":
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "error:" in lines[0], r.stderr


@pytest.mark.parametrize("module", sorted(set(COMMANDS.values())))
def test_command_modules_import_at_their_top(module):
    tree = ast.parse((REPO / "interp" / "commands" / f"{module}.py").read_text())
    inner = [node.lineno for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
             for node in ast.walk(f) if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert inner == [], f"interp/commands/{module}.py imports inside a function at lines {inner}"
