"""Start-up of the command line: `interp --help`, `interp CMD --help` and an argument error, each
the median of several fresh processes, next to a bare `python -c pass` and an `import torch`
measured in the same run: the cases take turns round after round (bench/harness.py's
interleave), and "x python" is each case over the bare python of the same round. The goal:
every interp case under 1.5 s.

    python bench/startup.py [--repeats 5] [--results]"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.harness import Results, Spread, add_common_args, interleave, ratios  # noqa: E402

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
    add_common_args(ap)
    args = ap.parse_args()
    out = Results("startup", args.results)
    t = interleave({name: (lambda argv=argv: seconds(argv)) for name, argv in CASES.items()}, args.repeats)
    base = next(iter(CASES))
    out.say(f"{args.repeats} interleaved rounds of fresh processes; seconds median [min, max] (n); x python per round\n")
    out.say(f"| case | seconds | x python | goal < {GOAL} s |\n| --- | --- | --- | --- |")
    for name in CASES:
        spread = Spread(t[name])
        verdict = "" if "python -c" in name else ("ok" if spread.median < GOAL else "TOO SLOW")
        out.say(f"| {name} | {spread.fmt('.3f')} | {ratios(t[name], t[base]).fmt('.1f')} | {verdict} |")
    out.save()


if __name__ == "__main__":
    main()
