"""What every benchmark here shares, so that its numbers survive a noisy shared machine.

- `machine()`: one line with torch's version and thread count, the load average (1, 5 and
  15 minutes) and the commit measured; print it with every table.
- `interleave(fns, repeats)`: runs the timed functions in turn, round after round (the order
  reversed every other round, ABBA), so a load spike or a slow drift hits all of them alike;
  returns each one's seconds per round (and, if asked, its process CPU seconds).
- `Spread`: min / median / max of repeated measurements; `ratios(a, b)` pairs the rounds of two
  interleaved measurements (a_i / b_i) so the noise shared by a round cancels.
- `Results`: the lines a script prints, also written to bench/results/<name>.md (with the command
  and the commit) when the script is given `--results`; `make bench` does that.
- `MemorySampler`: peaks of a process's RssAnon and RssFile (/proc/<pid>/status), sampled by a
  thread while the process runs (bench/memory.py watches a child `interp train-sae` with it).
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def load_average() -> str:
    try:
        return "/".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:  # a platform without it
        return "n/a"


def commit() -> str:
    """The commit measured, with '+dirty' when the work tree differs from it."""
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short=10", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def threads() -> int:
    import torch

    return torch.get_num_threads()


def machine() -> str:
    import torch

    return (f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
            f"load average {load_average()} (1/5/15 min), commit {commit()}, python {platform.python_version()}")


@dataclass
class Spread:
    values: list[float]

    @property
    def min(self) -> float:
        return min(self.values)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def max(self) -> float:
        return max(self.values)

    def fmt(self, spec: str = ".3g", scale: float = 1.0) -> str:
        """'median [min, max] (n)'."""
        f = lambda v: format(v * scale, spec)  # noqa: E731
        return f"{f(self.median)} [{f(self.min)}, {f(self.max)}] (n={len(self.values)})"


def interleave(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1,
               clock: Callable[[], float] = time.perf_counter,
               between: Callable[[], object] | None = None,
               cpu: dict[str, list[float]] | None = None) -> dict[str, list[float]]:
    """Seconds of each function per round: `repeats` rounds, each running every function once,
    in reversed order every other round; `warmup` untimed rounds first. `between`, if given,
    runs untimed after each call (cleaning up a folder, say). `cpu`, if given, is filled with each
    call's process CPU seconds (all threads): other processes' load moves it far less than the
    wall clock, but it misses time spent waiting on the disk."""
    names = list(fns)
    for _ in range(warmup):
        for n in names:
            fns[n]()
            if between:
                between()
    out: dict[str, list[float]] = {n: [] for n in names}
    if cpu is not None:
        cpu.update({n: [] for n in names})
    for r in range(repeats):
        for n in (names if r % 2 == 0 else names[::-1]):
            c, t = time.process_time(), clock()
            fns[n]()
            out[n].append(clock() - t)
            if cpu is not None:
                cpu[n].append(time.process_time() - c)
            if between:
                between()
    return out


def ratios(a: Sequence[float], b: Sequence[float]) -> Spread:
    """a_i / b_i, round by round, of two interleaved measurements."""
    return Spread([x / y for x, y in zip(a, b)])


def spread_row(name: str, values: Sequence[float], spec: str = ".3g", scale: float = 1.0) -> str:
    """'name: median [min, max] (n=..)', one line per measured quantity."""
    return f"{name}: {Spread(list(values)).fmt(spec, scale)}"


class Results:
    """Print lines and keep them; `save()` writes them to bench/results/<name>.md if asked."""

    def __init__(self, name: str, enabled: bool):
        self.name, self.enabled, self.lines = name, enabled, []
        self.started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        self.say(machine())

    def say(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.append(line)

    def save(self, folder: Path | None = None) -> Path | None:
        if not self.enabled:
            return None
        folder = Path(folder or RESULTS)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.name}.md"
        cmd = " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv])
        head = [f"# bench/{self.name}.py", "",
                f"Measured {self.started} at commit {commit()}, load average at the end {load_average()}.", "",
                f"    {cmd}", "", "```"]
        path.write_text("\n".join(head + self.lines + ["```", ""]))
        print(f"wrote {path}")
        return path


def add_common_args(p) -> None:
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    p.add_argument("--results", action="store_true", help="also write the output to bench/results/<script>.md")


def start(p: argparse.ArgumentParser, name: str) -> tuple[argparse.Namespace, Results]:
    """Add the common flags to a script's parser, parse, set torch's threads and open its results."""
    add_common_args(p)
    args = p.parse_args()
    apply_threads(args.threads)
    return args, Results(name, args.results)


def apply_threads(n: int | None) -> None:
    if n:
        import torch

        torch.set_num_threads(n)


def status_kb(pid: int | str = "self") -> dict[str, int]:
    """RssAnon, RssFile and VmHWM of a process in kB (empty once it has exited)."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("RssAnon:", "RssFile:", "VmHWM:")):
                    key, value = line.split(":")
                    out[key] = int(value.split()[0])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return out


class MemorySampler(threading.Thread):
    """Peaks of RssAnon and RssFile (kB) of process `pid`, sampled every `every` seconds until
    stopped (or until the process is gone)."""

    def __init__(self, pid: int | str = "self", every: float = 0.02):
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.peak, self.samples = {"RssAnon": 0, "RssFile": 0}, 0
        self._halt = threading.Event()

    def sample(self) -> bool:
        s = status_kb(self.pid)
        if not s:
            return False
        for k in self.peak:
            self.peak[k] = max(self.peak[k], s.get(k, 0))
        self.samples += 1
        return True

    def run(self) -> None:
        while not self._halt.is_set() and self.sample():
            self._halt.wait(self.every)

    def stop(self) -> dict[str, int]:
        self._halt.set()
        self.join()
        return self.peak
