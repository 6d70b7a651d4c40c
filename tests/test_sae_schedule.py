"""The learning-rate schedule: warm-up scaled to the run, flat, linear decay to zero."""

from sae import TrainConfig
from sae.schedule import lr_at, sparsity_at


def test_short_run_warms_up_over_a_tenth_of_its_steps():
    cfg = TrainConfig(steps=192, lr=1e-3)
    assert cfg.lr_warmup() == 19
    assert abs(lr_at(0, cfg) - 1e-3 / 19) < 1e-15
    assert lr_at(18, cfg) == 1e-3  # full rate from the end of the warm-up ...
    assert lr_at(int(0.8 * 192) - 1, cfg) == 1e-3  # ... until the decay starts
    assert abs(lr_at(191, cfg) - 1e-3 / (192 - int(0.8 * 192))) < 1e-12  # last step: one decay slice left


def test_long_run_warm_up_is_capped_and_explicit_value_wins():
    assert TrainConfig(steps=50_000).lr_warmup() == 100
    assert TrainConfig(steps=50_000, lr_warmup_steps=7).lr_warmup() == 7
    assert TrainConfig(steps=3).lr_warmup() == 1


def test_sparsity_coefficient_ramps_over_five_percent():
    cfg = TrainConfig(steps=200)
    assert sparsity_at(0, cfg, 5.0) == 5.0 / 10
    assert sparsity_at(9, cfg, 5.0) == 5.0
    assert sparsity_at(150, cfg, 5.0) == 5.0
