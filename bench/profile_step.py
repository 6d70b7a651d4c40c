"""Where a TopK / BatchTopK training step's time goes: torch.profiler over 3 steps, by operator.

    .venv/bin/python bench/profile_step.py topk 1      # arch, torch threads

Prints the machine line (threads, load average, commit), then 4 interleaved rounds of (encoder
bound, step) as median [min, max] with bound/step taken round by round, then the profile;
bench/results/sae_train_profile.md holds a reading of its output."""
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from bench.harness import Spread, machine, ratios  # noqa: E402
from bench.sae_train import EncoderBound, make_trainer  # noqa: E402

arch, th = sys.argv[1], int(sys.argv[2])
torch.set_num_threads(th)
print(machine())
trainer, x = make_trainer(arch, 576, 4608, 32, 4096)
for _ in range(3):
    trainer.step(x)
bound=EncoderBound(trainer, x)
ts, bs = [], []
for _ in range(4):
    t = time.perf_counter()
    bound()
    bs.append(time.perf_counter() - t)
    t = time.perf_counter()
    trainer.step(x)
    ts.append(time.perf_counter() - t)
print(f"{arch}, {th} threads: step ms {Spread(ts).fmt('.0f', 1e3)}, bound ms {Spread(bs).fmt('.0f', 1e3)}, "
      f"bound/step per round {ratios(bs, ts).fmt('.2f')}")
with profile(activities=[ProfilerActivity.CPU]) as p:
    for _ in range(3):
        trainer.step(x)
print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=28, max_name_column_width=48))
