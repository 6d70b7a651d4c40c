"""SAE folders saved by SAELens 6.54.12 load here with the same encode/decode, and ours load in
SAELens. SAELens lives in its own overlay venv (scripts/saelens_env.sh) so that its
dependencies stay out of ours; tests/saelens_roundtrip.py runs there and this test checks it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VENV = Path(os.environ.get("INTERP_SAELENS_VENV", REPO / ".venv-saelens"))
CASES = [f"case {arch} {direction} " for arch in ("standard", "topk", "jumprelu")
         for direction in ("saelens->interp", "interp->saelens")] + ["case standard-expected_average_only_in saelens->interp "]


@pytest.mark.timeout(660)  # the overlay venv imports sae-lens and transformer-lens several times
def test_saelens_folders_round_trip_both_ways():
    python = VENV / "bin" / "python"
    if not python.exists():
        reason = f"no SAELens venv at {VENV}; build it with scripts/saelens_env.sh {VENV} {REPO / '.venv'}"
        if os.environ.get("CI"):
            pytest.fail(reason + " (CI must run the interop test)")
        pytest.skip(reason)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run([str(python), str(REPO / "tests" / "saelens_roundtrip.py")], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=600)
    sys.stdout.write(r.stdout)
    assert r.returncode == 0, f"round trip failed (exit {r.returncode}):\n{r.stdout}\n{r.stderr[-3000:]}"
    lines = r.stdout.splitlines()
    for case in CASES:
        assert any(line.startswith(case) and line.endswith(" OK") for line in lines), f"missing {case!r}:\n{r.stdout}"
