"""Where a TopK / BatchTopK training step's time goes: torch.profiler over 3 steps, by operator.

    .venv/bin/python bench/profile_step.py topk 1      # arch, torch threads

Prints 4 interleaved (encoder bound, step) timings first; bench/results/sae_train_profile.md
holds a reading of its output."""
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from bench.sae_train import EncoderBound, make_trainer  # noqa: E402

arch, th = sys.argv[1], int(sys.argv[2])
torch.set_num_threads(th)
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
print(arch, th, "threads: step ms", [round(v*1e3) for v in ts], "bound ms", [round(v*1e3) for v in bs])
with profile(activities=[ProfilerActivity.CPU]) as p:
    for _ in range(3):
        trainer.step(x)
print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=28, max_name_column_width=48))
