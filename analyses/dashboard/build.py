"""Write a dashboard folder from FeatureStats: static HTML that opens from disk with no network.

    index.html              every feature: id, density, max, top tokens, top logits, explanation
                            and score (when explanations are given), with search, sort, filters
    features/<id>.html      one page per feature: highlighted top examples, band samples,
                            activation and logit histograms, logit tables, neighbours
    prompts.html            the prompt view (precomputed, see analyses/prompts.py)
    assets/                 style.css, the pages' scripts, plotly.min.js (from the plotly
                            package, never a CDN) and vocab.js (the text of every token shown)

Token text is data: the pages build token spans with textContent, the server-side parts go
through html.escape, and JSON inside <script> is escaped by analyses/dashboard/html.py."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Iterable

import torch

from analyses.dashboard.html import script_json
from analyses.dashboard.pages import Pages, prompts_page
from analyses.dashboard.token_text import token_text
from analyses.features import FeatureStats
from interp.files import copy_atomic, write_text_atomic

STATIC = Path(__file__).with_name("static")
SCRIPTS = ("common.js", "feature.js", "index.js", "prompts.js")


def tokenizer_strings(tokenizer) -> Callable[[Iterable[int]], dict[int, str]]:
    """ids -> {id: text}, each token decoded on its own; a token holding part of a character shows
    its bytes (analyses/dashboard/token_text.py)."""

    def strings(ids: Iterable[int]) -> dict[int, str]:
        out = {}
        for i in ids:
            try:
                out[i] = token_text(tokenizer, i)
            except Exception:  # an id outside this tokenizer: show the number
                out[i] = f"<{i}>"
        return out

    return strings


def read_explanations(path: str | Path | None) -> dict[int, dict]:
    """explanations.json: {"<feature id>": {"explanation": str, "score": float}} (optionally under
    a top-level "features" key). A missing file means no explanations yet."""
    if path is None or not Path(path).is_file():
        return {}
    data = json.loads(Path(path).read_text())
    data = data.get("features", data) if isinstance(data, dict) else {}
    out = {}
    for k, v in data.items():
        if str(k).lstrip("-").isdigit() and isinstance(v, dict):
            out[int(k)] = {"explanation": v.get("explanation"), "score": v.get("score")}
    return out


def write_assets(out: Path) -> None:
    assets = out / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    for name in ("style.css", *SCRIPTS):
        copy_atomic(STATIC / name, assets / name, sync=False)
    plotly_js = assets / "plotly.min.js"
    if not plotly_js.exists():
        from plotly.offline import get_plotlyjs

        write_text_atomic(plotly_js, get_plotlyjs(), sync=False)


def build_dashboard(
    stats: FeatureStats,
    out: str | Path,
    token_strings: Callable[[Iterable[int]], dict[int, str]],
    explanations: dict[int, dict] | None = None,
    prompts: list[dict] | None = None,
    title: str = "dashboard",
    steering: dict[int, dict] | None = None,  # analyses/dashboard/steering.py: steering_examples
    steer_cfg=None,  # the SteerConfig that made `steering` (for the words above the examples)
) -> Path:
    """Write the dashboard for every feature in `stats` into `out`; returns index.html's path."""
    t0 = time.perf_counter()
    out = Path(out)
    (out / "features").mkdir(parents=True, exist_ok=True)
    write_assets(out)
    t = stats.tensors
    used = {int(i) for name in ("top_tokens", "band_tokens", "logit_top_ids", "logit_bottom_ids") if name in t for i in torch.unique(t[name]).tolist()}
    used |= {i for p in prompts or [] for i in p["tokens"]}
    used |= {i for e in (steering or {}).values() for r in e["runs"] for i in r["default"] + r["steered"]}
    used.discard(-1)
    strings = token_strings(sorted(used))
    # every page whole or as it was (a full disk is one line); not fsynced: pages are many and remade in seconds
    write_text_atomic(out / "assets" / "vocab.js", "window.VOCAB = " + script_json({str(k): v for k, v in strings.items()}) + ";\n",
                      sync=False)
    w = Pages(stats, strings, explanations or {}, bool(prompts), title, steering, steer_cfg)
    for r, fid in enumerate(w.ids):
        write_text_atomic(out / "features" / f"{fid}.html", w.feature_page(r), sync=False)
    if prompts:
        write_text_atomic(out / "prompts.html", prompts_page(prompts, stats, title), sync=False)
    index = out / "index.html"
    write_text_atomic(index, w.index_page())  # last, and durable: the dashboard is there once it is
    stats.meta["seconds_render"] = round(time.perf_counter() - t0, 3)
    return index
