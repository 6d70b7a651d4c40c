"""The HTML of the dashboard's pages. Server-side text goes through `esc`; token spans are built in
the browser (static/*.js) from JSON that `data_script` embeds safely."""

from __future__ import annotations

import json

import numpy as np
import torch

from analyses.dashboard.html import data_script, esc, page
from analyses.features import FeatureStats


def _rounded(t: torch.Tensor, scale: torch.Tensor, digits: int = 4) -> np.ndarray:
    """Values kept to `digits` significant digits of `scale` (one per feature): short JSON."""
    a = t.double().numpy()
    dec = (digits - 1 - np.floor(np.log10(np.maximum(scale.double().numpy(), 1e-30)))).astype(int)
    dec = dec.reshape(-1, *([1] * (a.ndim - 1)))
    return np.round(a * 10.0**dec) / 10.0**dec


def _examples(value, index, start, tokens, acts) -> list:
    """[value, peak offset, token ids, activations] for each filled slot."""
    return [[v, i - s, t, a] for v, i, s, t, a in zip(value, index, start, tokens, acts) if i >= 0]


class Pages:
    """The HTML of the index and of each feature page, from FeatureStats."""

    def __init__(self, stats: FeatureStats, strings: dict[int, str], explanations: dict[int, dict], has_prompts: bool, title: str,
                 steering: dict[int, dict] | None = None, steer_cfg=None):
        self.s, self.title = stats, title
        self.steering, self.steer_cfg = steering, steer_cfg
        self.explanations = explanations
        self.has_prompts = has_prompts
        self.ids = stats.features.tolist()
        self.pos = {f: i for i, f in enumerate(self.ids)}
        self.kind = stats.meta.get("kind", "sae")
        self.noun = "Neuron" if self.kind == "neurons" else "Feature"
        t = stats.tensors
        mx = t["max"]
        self.L = {name: t[name].tolist() for name in (
            "count", "density", "mean", "max", "top_index", "top_start", "top_tokens", "band_index", "band_start",
            "band_tokens", "band_count", "band_edges", "hist_count", "hist_width", "neighbour_ids", "neighbour_cos",
            "logit_top_ids", "logit_top_values", "logit_bottom_ids", "logit_bottom_values", "logit_hist_count",
            "logit_hist_range") if name in t}
        self.L["top_value"] = _rounded(t["top_value"], mx).tolist()
        self.L["top_acts"] = _rounded(t["top_acts"], mx).tolist()
        self.L["band_value"] = _rounded(t["band_value"], mx).tolist()
        self.L["band_acts"] = _rounded(t["band_acts"], mx).tolist()
        self.strings = strings
        self._tokname: dict[int, str] = {}

    def tok(self, i: int) -> str:
        return self.strings.get(i, f"<{i}>")

    def tokname(self, i: int) -> str:
        """A token's text as an escaped, whitespace-visible HTML span (memoised: logit tables repeat tokens)."""
        got = self._tokname.get(i)
        if got is None:
            s = self.tok(i).replace("\n", "\u21b5").replace("\t", "\u21e5").replace("\r", "\u240d")
            got = f'<span class="tokname" title="{esc(json.dumps(self.tok(i), ensure_ascii=False))}">{esc(s)}</span>'
            self._tokname[i] = got
        return got

    def top_tokens(self, r: int, n: int = 5) -> list[str]:
        seen = []
        for i, s, toks in zip(self.L["top_index"][r], self.L["top_start"][r], self.L["top_tokens"][r]):
            if i >= 0:
                t = self.tok(toks[i - s])
                if t not in seen:
                    seen.append(t)
            if len(seen) == n:
                break
        return seen

    # -- one feature -------------------------------------------------------------------------
    def feature_page(self, r: int) -> str:
        L, fid = self.L, self.ids[r]
        data = {
            "id": fid, "max": L["max"][r], "count": L["count"][r],
            "top": _examples(L["top_value"][r], L["top_index"][r], L["top_start"][r], L["top_tokens"][r], L["top_acts"][r]),
            "bands": [
                {"lo": L["band_edges"][r][b], "hi": L["band_edges"][r][b + 1], "count": L["band_count"][r][b],
                 "ex": _examples(L["band_value"][r][b], L["band_index"][r][b], L["band_start"][r][b], L["band_tokens"][r][b], L["band_acts"][r][b])}
                for b in range(len(L["band_count"][r]))
            ],
            "band_edges": L["band_edges"][r],
            "hist": {"width": L["hist_width"][r], "counts": _trim(L["hist_count"][r])},
            "logit_hist": None,
        }
        if "logit_hist_count" in L:
            lo, hi = L["logit_hist_range"][r]
            data["logit_hist"] = {"lo": lo, "hi": hi, "counts": L["logit_hist_count"][r]}
        prev_link = f'<a href="{self.ids[r - 1]}.html">&larr; {self.noun.lower()} {self.ids[r - 1]}</a>' if r > 0 else ""
        next_link = f'<a href="{self.ids[r + 1]}.html">{self.noun.lower()} {self.ids[r + 1]} &rarr;</a>' if r + 1 < len(self.ids) else ""
        nav = f'<nav><a href="../index.html">all {self.noun.lower()}s</a>{prev_link}{next_link}' + (
            '<a href="../prompts.html">prompt view</a>' if self.has_prompts else "") + "</nav>"
        m = self.s.meta
        body = f"""<header>{nav}
<h1>{self.noun} {fid}</h1>
<div class="sub">{esc(m.get('hook_name', ''))} &middot; {esc(m.get('model_name', ''))} &middot; {esc(self.title)}</div>
</header>
{self.explanation_html(fid)}
<div class="cols">
<section>
<h2>Statistics</h2>
{self.stats_table(r)}
<h2>Activation histogram</h2>
<div id="hist" class="plot"></div>
{self.logits_html(r)}
{self.neighbours_html(r)}
</section>
<section>
<h2>Top activations</h2>
<div id="top"></div>
<h2>Activation bands (uniform samples)</h2>
<div id="bands"></div>
</section>
</div>{self.steering_html(fid)}
{data_script("feature-data", data)}"""
        return page(f"{self.noun} {fid} - {self.title}", body, root="..", scripts=("vocab.js", "plotly.min.js", "common.js", "feature.js"))

    def steering_html(self, fid: int) -> str:
        """The default vs steered continuations (analyses/dashboard/steering.py); "" when not built."""
        if self.steering is None or fid not in self.steering:
            return ""
        e, c = self.steering[fid], self.steer_cfg
        if e["value"] is None:
            return f'\n<section class="steering"><h2>Steering example</h2><p class="muted">This {self.noun.lower()} never fired: no strength to steer with.</p></section>'
        size = f"{c.strength:g} &times; its max activation (= {e['value']:.4g})"
        unit = f"{self.noun.lower()} {fid}"
        how = (f"add {size} to {unit}" if c.mode == "add" else f"clamp {unit} at {size}") + (
            f" at every position; {c.max_new_tokens} new tokens at temperature {c.temperature:g}, both runs from seed {c.seed}")

        def text(ids: list[int]) -> str:  # each token as the rest of the dashboard shows it (bytes of split characters)
            return esc("".join(self.tok(i) for i in ids))

        rows = "".join(f'<tr><td><div class="prompt-text">{esc(r["prompt"])}</div></td><td><div class="prompt-text">{text(r["default"])}</div></td>'
                       f'<td><div class="prompt-text">{text(r["steered"])}</div></td></tr>' for r in e["runs"])
        return (f'\n<section class="steering"><h2>Steering example</h2><div class="sub">{how} (precomputed when the '
                f'dashboard was built)</div><table class="steering"><tr><th>prompt</th><th>default</th><th>steered</th></tr>'
                f"{rows}</table></section>")

    def explanation_html(self, fid: int) -> str:
        e = self.explanations.get(fid)
        if not e or not e.get("explanation"):
            return '<div class="explanation none" id="explanation">No explanation yet.</div>'
        score = e.get("score")
        score_txt = f' <span class="sub">score {esc(f"{score:.3g}" if isinstance(score, (int, float)) else score)}</span>' if score is not None else ""
        return f'<div class="explanation" id="explanation">{esc(e["explanation"])}{score_txt}</div>'

    def stats_table(self, r: int) -> str:
        L, n = self.L, self.s.meta.get("n_tokens", 0)
        rows = [
            ("density", f"{100 * L['density'][r]:.4g}% ({L['count'][r]:,} of {n:,} tokens)"),
            ("max activation", f"{L['max'][r]:.4g}"),
            ("mean when firing", f"{L['mean'][r]:.4g}"),
        ]
        return '<table class="stats">' + "".join(f"<tr><td>{esc(a)}</td><td>{esc(b)}</td></tr>" for a, b in rows) + "</table>"

    def logits_html(self, r: int) -> str:
        L = self.L
        if "logit_top_ids" not in L:
            return '<h2>Logit effects</h2><p class="muted">No model given: logit effects were not computed.</p>'

        def table(ids, vals, cls):
            rows = "".join(f'<tr><td>{self.tokname(i)}</td><td class="v {cls}">{v:+.3f}</td></tr>' for i, v in zip(ids, vals))
            return f'<table class="logits">{rows}</table>'

        return ('<h2>Logit effects (direct, through the final norm)</h2><div class="logit-tables">'
                f'<div><div class="sub">promoted</div>{table(L["logit_top_ids"][r], L["logit_top_values"][r], "pos")}</div>'
                f'<div><div class="sub">suppressed</div>{table(L["logit_bottom_ids"][r], L["logit_bottom_values"][r], "neg")}</div>'
                '</div><div id="logit-hist" class="plot"></div>')

    def neighbours_html(self, r: int) -> str:
        L = self.L
        items = []
        for j, c in zip(L["neighbour_ids"][r], L["neighbour_cos"][r]):
            if abs(c) < 1e-6:  # orthogonal (the identity dictionary of residual neurons): no neighbour
                continue
            label = f"{self.noun.lower()} {j}"
            link = f'<a href="{j}.html">{label}</a>' if j in self.pos else f'<span class="muted">{label}</span>'
            items.append(f"<li>{link} <span class='sub'>cosine {c:.3f}</span></li>")
        inner = f'<ol id="neighbours">{"".join(items)}</ol>' if items else '<p class="muted">No neighbour (all decoder cosines are 0).</p>'
        return f"<h2>Nearest {self.noun.lower()}s by decoder cosine</h2>{inner}"

    # -- the index -----------------------------------------------------------------------------
    def index_page(self) -> str:
        L, m = self.L, self.s.meta
        columns = [["id", self.noun, "id"], ["density", "Density", "pct"], ["max", "Max act", "num"],
                   ["top", "Top tokens", "tokens"], ["logits", "Top logits", "tokens"],
                   ["explanation", "Explanation", "text"], ["score", "Score", "num"]]
        rows = []
        for r, fid in enumerate(self.ids):
            e = self.explanations.get(fid, {})
            logits = [self.tok(i) for i in L["logit_top_ids"][r][:5]] if "logit_top_ids" in L else []
            rows.append([fid, L["density"][r], L["max"][r], self.top_tokens(r), logits, e.get("explanation"), e.get("score")])
        prompts = '<a href="prompts.html">prompt view</a>' if self.has_prompts else ""
        body = f"""<header>
<nav>{prompts}</nav>
<h1>{esc(self.title)}: {len(self.ids):,} {self.noun.lower()}s</h1>
<div class="sub">{esc(m.get('hook_name', ''))} &middot; {esc(m.get('model_name', ''))} &middot; statistics over {m.get('n_tokens', 0):,} tokens</div>
</header>
<div id="density-plot" class="plot"></div>
<div class="controls">
<input id="search" type="search" placeholder="search ids, tokens, explanations" aria-label="search">
<label>density from <input id="dmin" class="num" placeholder="1e-5"></label>
<label>to <input id="dmax" class="num" placeholder="1"></label>
<label><input id="hide-dead" type="checkbox" checked> hide dead</label>
<span id="count" class="sub"></span>
</div>
<table id="features" class="index"><thead><tr></tr></thead><tbody></tbody></table>
<button id="more" hidden>show more</button>
{data_script("index-data", {"columns": columns, "rows": rows, "default_sort": "id"})}"""
        return page(self.title, body, root=".", scripts=("plotly.min.js", "common.js", "index.js"))


def _trim(counts: list[int]) -> list[int]:
    while counts and counts[-1] == 0:
        counts = counts[:-1]
    return counts


def prompts_page(prompt_data: list[dict], stats: FeatureStats, title: str) -> str:
    kind = stats.meta.get("kind", "sae")
    maxes = {int(f): float(f"{m:.4g}") for f, m in zip(stats.features.tolist(), stats["max"].tolist())}
    body = f"""<header><nav><a href="index.html">all {'neurons' if kind == 'neurons' else 'features'}</a></nav>
<h1>Prompt view</h1>
<div class="sub">{esc(title)} &middot; precomputed when the dashboard was built (interp dashboard --prompts FILE)</div>
</header>
<div class="controls"><label>prompt <select id="prompt"></select></label>
<label>colour by {'neuron' if kind == 'neurons' else 'feature'} <input id="feature" class="num" placeholder="id"></label></div>
<div id="prompt-text" class="prompt-text"></div>
<div class="cols">
<section><h2>Active on this prompt (click to colour)</h2><ul id="prompt-features" class="flist"></ul></section>
<section><h2>Selected token</h2><div id="token-info"><p class="muted">Click a token.</p></div></section>
</div>
{data_script("prompt-data", {"prompts": prompt_data, "pages": stats.features.tolist(), "maxes": maxes, "kind": kind})}"""
    return page(f"Prompt view - {title}", body, root=".", scripts=("vocab.js", "plotly.min.js", "common.js", "prompts.js"))
