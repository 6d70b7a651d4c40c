"""Start-up of the command line: `interp --help`, `interp CMD --help` and an argument error, each
the median of several fresh processes, next to a bare `python -c pass` and an `import torch`
measured in the same run. The goal: every interp case under 1.5 s.

    python bench/startup.py [--repeats 5]"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.harness import Spread, machine  # noqa: E402

GOAL = 1.5
CASES = {
    "python -c pass (baseline)": ["-c", "pass"],
    "python -c 'import torch' (what is avoided)": ["-c", "import torch"],
    "interp --help": ["-m", "interp", "--help"],
    "interp train-sae --help": ["-m", "interp", "train-sae", "--help"],
    "interp dashboard --help": ["-m", "interp", "dashboard", "--help"],
    "interp train-sae --site bogus (error)": ["-m", "interp", "train-sae", "--site", "bogus", "--out", "x"],
    "interp record (missing --out)": ["-m", "interp", "record"],
}


def seconds(argv: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, *argv], cwd=REPO, capture_output=True, check=False,
                   env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    base = None
    print(machine())
    print(f"{'case':<46} {'median s':>9} {'x python':>9}  {'[min, max] (n)':<24} goal < {GOAL} s")
    for name, argv in CASES.items():
        spread = Spread([seconds(argv) for _ in range(args.repeats)])
        med = spread.median
        base = base or med
        verdict = "" if "python -c" in name else ("ok" if med < GOAL else "TOO SLOW")
        print(f"{name:<46} {med:>9.3f} {med / base:>9.1f}  [{spread.min:.3f}, {spread.max:.3f}] ({len(spread.values)})  {verdict}")


if __name__ == "__main__":
    main()
