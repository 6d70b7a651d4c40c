"""Site names, layer lists and the context check, on a tiny model."""

import pytest

from interp.errors import InterpError
from interp.sites import check_context, hook_name, hook_width, parse_layers


def test_windows_longer_than_the_model_reads_are_refused_in_one_line(tiny_model):
    check_context(tiny_model, 64)  # n_ctx itself is fine
    with pytest.raises(InterpError, match=r"--context-size 65 is longer than the 64 positions tiny reads; use at most 64\."):
        check_context(tiny_model, 65)


def test_layers_and_widths(tiny_model):
    assert parse_layers("all", 3) == [0, 1, 2]
    assert parse_layers("0,2", 3) == [0, 2]
    with pytest.raises(InterpError):
        parse_layers("3", 3)
    assert hook_width(tiny_model, hook_name("mlp_post", 1)) == 64
    assert hook_width(tiny_model, hook_name("resid_post", 2)) == 32
    assert hook_width(tiny_model, hook_name("attn_z", 0)) == 32
