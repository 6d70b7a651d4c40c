"""bench/harness.py's logic: the ABBA order of interleaved rounds, round-by-round ratios, spreads,
the results file (command, commit, machine line) and the memory sampler. Nothing here is timed:
a fake clock stands in for the wall clock."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.harness import (  # noqa: E402
    MemorySampler,
    Results,
    Spread,
    interleave,
    machine,
    ratios,
    spread_row,
    status_kb,
)


def test_interleave_runs_rounds_in_abba_order_after_untimed_warmup():
    calls = []
    fns = {n: (lambda n=n: calls.append(n)) for n in "abc"}
    t = interleave(fns, repeats=3, warmup=1)
    assert calls == list("abc") + list("abc") + list("cba") + list("abc")
    assert {k: len(v) for k, v in t.items()} == {"a": 3, "b": 3, "c": 3}


def test_interleave_times_each_call_with_the_given_clock_and_runs_between_untimed():
    now = [0.0]
    cost = {"a": 1.0, "b": 3.0}
    between = []

    def run(n):
        now[0] += cost[n]

    def tidy():
        between.append(now[0])
        now[0] += 100.0  # untimed: must not show in anyone's seconds

    cpu = {}
    t = interleave({n: (lambda n=n: run(n)) for n in cost}, repeats=4, warmup=0, clock=lambda: now[0],
                   between=tidy, cpu=cpu)
    assert t == {"a": [1.0] * 4, "b": [3.0] * 4}
    assert len(between) == 8
    assert set(cpu) == {"a", "b"} and all(len(v) == 4 for v in cpu.values())


def test_ratios_pair_rounds_and_spread_reports_median_min_max():
    r = ratios([2.0, 9.0, 4.0], [1.0, 3.0, 4.0])
    assert r.values == [2.0, 3.0, 1.0]
    assert (r.min, r.median, r.max) == (1.0, 2.0, 3.0)
    assert r.fmt(".1f") == "2.0 [1.0, 3.0] (n=3)"
    assert Spread([0.5, 0.25]).fmt(".0f", 1e3) == "375 [250, 500] (n=2)"
    assert spread_row("step ms", [0.1, 0.3, 0.2], ".0f", 1e3) == "step ms: 200 [100, 300] (n=3)"


def test_machine_line_names_threads_load_and_commit():
    line = machine()
    for word in ("threads", "load average", "commit", "torch"):
        assert word in line


def test_results_write_the_command_commit_and_every_line(tmp_path, capsys):
    off = Results("x", enabled=False)
    off.say("hello")
    assert off.save(tmp_path) is None and not list(tmp_path.iterdir())
    res = Results("x", enabled=True)
    res.say("| a | b |")
    path = res.save(tmp_path)
    text = path.read_text()
    assert path == tmp_path / "x.md"
    assert text.startswith("# bench/x.py") and "at commit " in text
    assert "load average" in text and "| a | b |" in text
    assert res.lines[0].startswith("torch ") and res.lines[0] in text  # the machine line comes first
    assert "hello" in capsys.readouterr().out


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc")
def test_memory_sampler_sees_this_process_and_stops_when_a_process_is_gone(tmp_path):
    assert status_kb()["RssAnon"] > 0
    s = MemorySampler(os.getpid(), every=0.001)
    s.sample()
    s.start()
    peak = s.stop()
    assert s.samples >= 1 and peak["RssAnon"] > 0
    gone = MemorySampler(2**22 + 12345)  # no such pid: the thread ends by itself
    gone.start()
    gone.join(timeout=30)
    assert not gone.is_alive() and gone.samples == 0 and status_kb(2**22 + 12345) == {}
