"""The floors of DESIGN.md, read off the import graph: interp.cli, interp.commands, interp.pipelines,
interp.server on top; then analyses; then sae; then the interp core. Imports only run downward, and
none is tucked inside a function (where it would hide a cycle from the file's header)."""

from __future__ import annotations

import ast
import itertools
import os
import subprocess
import sys
from pathlib import Path

import grimp
import pytest
from pyproject_toml import pyproject

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("interp", "sae", "analyses")
TOP = ("interp.cli", "interp.commands", "interp.pipelines", "interp.server")


def _contracts() -> dict:
    cfg = pyproject()["tool"]["importlinter"]
    return {c["id"]: c for c in cfg["contracts"]}


def test_import_linter_contracts_are_kept(tmp_path):
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.exists():
        pytest.fail("lint-imports is missing: install the dev extra (pip install -e '.[dev]').")
    env = os.environ | {"PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    run = subprocess.run([str(lint), "--no-cache"], cwd=REPO, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "2 kept, 0 broken" in run.stdout, run.stdout[-2000:]


def test_every_top_floor_package_is_forbidden_to_the_core():
    forbidden = set(_contracts()["core"]["forbidden_modules"])
    for name in TOP:
        path = REPO / Path(*name.split("."))
        if path.is_dir() or path.with_suffix(".py").exists():
            assert name in forbidden, f"{name} exists: name it in forbidden_modules of the 'core' contract"


def _function_imports(path: Path, root: Path = REPO) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = ["." if node.level else (node.module or "")]
            else:
                continue
            if any(n == "." or n.split(".")[0] in PACKAGES for n in names):
                found.append(f"{path.relative_to(root)}:{node.lineno} in {fn.name}(): {ast.unparse(node)}")
    return found


def test_no_library_module_imports_a_project_package_inside_a_function():
    files = sorted(p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py"))
    assert len(files) > 50
    found = [hit for p in files for hit in _function_imports(p)]
    assert not found, "move these imports to the top of their files:\n" + "\n".join(found)


def test_the_function_import_check_sees_one(tmp_path):
    p = tmp_path / "probe.py"
    p.write_text("import torch\n\ndef f():\n    import numpy\n    from interp.errors import InterpError\n"
                 "    from . import x\n    return InterpError\n")
    assert len(_function_imports(p, tmp_path)) == 2


CIRCLE = ("interp.text", "interp.corpus", "interp.tokens")


@pytest.mark.parametrize("order", list(itertools.permutations(CIRCLE)))
def test_text_corpus_and_tokens_import_in_any_order(order):
    code = "".join(f"import {m}\n" for m in order)
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         env=os.environ | {"PYTHONPATH": str(REPO)})
    assert run.returncode == 0, run.stderr[-2000:]


def test_text_corpus_and_tokens_import_without_a_cycle():
    graph = grimp.build_graph("interp", cache_dir=None)
    for a, b in itertools.permutations(CIRCLE, 2):
        there = graph.find_shortest_chain(importer=a, imported=b)
        back = graph.find_shortest_chain(importer=b, imported=a)
        assert not (there and back), f"cycle: {' -> '.join(there)} and back {' -> '.join(back)}"
