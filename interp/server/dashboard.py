"""The static dashboard the server shows beside the live page: a folder `interp dashboard` wrote,
or one built at start for the features asked, from held-out text recorded at the SAE's hook."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from analyses.dashboard import make_dashboard
from analyses.dictionary import sae_dictionary
from analyses.features import FeatureStats, FeatureStatsConfig, parse_features
from interp.errors import InterpError
from interp.recording import record
from interp.tokens import token_windows


def open_dashboard(folder: str | Path) -> tuple[Path, FeatureStats | None]:
    """A dashboard folder and its statistics (None when it was copied without stats/)."""
    folder = Path(folder)
    if not (folder / "index.html").is_file() or not (folder / "features").is_dir():
        raise InterpError(f"{folder} is not a dashboard folder (no index.html and features/); build one with "
                          "`interp dashboard`, or leave --dashboard out to build one at start.")
    stats = FeatureStats.load(folder / "stats") if (folder / "stats").is_dir() else None
    return folder, stats


def build_dashboard_at_start(model: Any, sae: Any, out: Path, text: str, tokens: int, features: str,
                             context_size: int = 128) -> tuple[Path, FeatureStats]:
    """Record `tokens` held-out tokens of `text` at the SAE's hook into out/acts and write the
    dashboard of `features` into out."""
    dictionary = sae_dictionary(sae)
    ids = parse_features(features, dictionary.n_features)
    ctx = min(context_size, int(model.cfg.n_ctx))
    windows = token_windows(text, model.tokenizer, context_size=ctx, split="heldout", max_tokens=tokens)
    windows = windows[: max(1, tokens // ctx)]
    cache = record(model, windows, [dictionary.hook_name], out / "acts", header={"source": text, "split": "heldout"},
                   progress=False)
    title = f"{model.cfg.model_name} {sae.cfg.hook_name} SAE"
    _, stats = make_dashboard(dictionary, cache, out, model=model, features=ids, cfg=FeatureStatsConfig(n_top=10),
                              title=title, device=sae.W_enc.device)
    return out, stats
