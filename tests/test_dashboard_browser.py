"""The dashboard in a real browser: headless Chromium (Debian's package) driven by Playwright.

Built from a corpus full of HTML (<script>alert(1)</script>, quotes, comments, an onerror image),
opened from disk: the index lists the features, a click leads to a feature page whose tokens are
highlighted and whose plots rendered, the HTML shows as text, no script from the corpus runs, the
console stays clean and no request leaves file://. Screenshots go to artifacts/."""

from __future__ import annotations

from pathlib import Path

import pytest
import synthetic_dashboard as sd
from chromium import Watch, needs_chromium

from analyses.dashboard import make_dashboard
from analyses.features import FeatureStatsConfig

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
EXPLANATION = "fires on '<' of tags like <script>alert(3)</script> & \"quotes\""

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("dash")
    model = sd.tiny_model()
    cache = sd.make_cache(model, tmp / "acts")
    index, stats = make_dashboard(
        sd.dictionary(model), cache, tmp / "out", model=model,
        cfg=FeatureStatsConfig(n_top=8, n_bands=4, per_band=3, n_bins=16),
        prompts=[sd.EVIL, "The cat sat on the mat."],
        explanations={0: {"explanation": EXPLANATION, "score": 0.75}},
        title="synthetic <b>SAE</b>",
    )
    return index


def test_index_to_feature_page_renders_safely(dashboard, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    watch = Watch(page)
    page.goto(dashboard.as_uri())
    page.wait_for_selector("#features tbody tr")
    n_rows = page.locator("#features tbody tr").count()
    assert n_rows == 16  # every feature of the synthetic dictionary fires somewhere
    assert page.locator("h1").inner_text() == "synthetic <b>SAE</b>: 16 features"  # escaped, shown literally
    assert page.locator("#density-plot .main-svg").count() > 0

    page.fill("#search", "alert")  # the explanation and top tokens are searchable
    page.wait_for_function("document.querySelectorAll('#features tbody tr').length < 16")
    ids = [int(t) for t in page.locator("#features tbody tr td:first-child").all_inner_texts()]
    assert 3 in ids  # the detector of " alert"... of "alert"
    assert page.locator("#features tbody tr", has_text=EXPLANATION).count() == 1
    page.screenshot(path=str(ARTIFACTS / "dashboard_index.png"), full_page=True)

    page.locator("#features tbody tr td:first-child a", has_text="0").first.click()
    page.wait_for_url("**/features/0.html")
    page.wait_for_selector("#top .tok")
    # the explanation shows its HTML as text, and no element came out of it
    assert page.locator("#explanation").inner_text().startswith(EXPLANATION)
    assert page.locator("#explanation script, #explanation b").count() == 0
    # tokens: highlighted by activation, the peak marked, the corpus's HTML shown literally
    peaks = page.locator("#top .tok.peak")
    assert peaks.count() >= 1
    assert peaks.first.inner_text() == "<"
    assert "255, 110, 0" in peaks.first.get_attribute("style")  # the highlight colour, strongest at the peak
    top_text = page.locator("#top").inner_text()
    assert "<script>alert(1)</script>" in top_text or '<script>alert("hi")</script>' in top_text
    assert page.locator("#top script, #top b, #top img").count() == 0
    assert page.locator("script").count() == 5  # the page's own: four files and one JSON block
    # the value on hover
    peaks.first.hover()
    tip = page.locator("#tip")
    tip.wait_for(state="visible")
    assert 'token "<"' in tip.inner_text() and "activation" in tip.inner_text()
    # plots rendered by the local plotly.min.js
    assert page.locator("#hist .main-svg").count() > 0
    assert page.locator("#hist .bars path").count() > 0
    assert page.locator("#logit-hist .bars path").count() > 0
    assert page.locator(".band-head").count() >= 1
    assert page.locator("table.logits tr").count() == 20
    page.screenshot(path=str(ARTIFACTS / "dashboard_feature.png"), full_page=True)

    page.locator("#neighbours a").first.click()  # neighbours link to their pages
    page.wait_for_selector("#top")
    assert "/features/" in page.url
    watch.check()
    page.close()


def test_prompt_view_shows_features_per_token(dashboard, browser):
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    watch = Watch(page)
    page.goto((dashboard.parent / "prompts.html").as_uri())
    page.wait_for_selector("#prompt-text .tok")
    assert "<script>alert(1)</script>" in page.locator("#prompt-text").inner_text()
    assert page.locator("#prompt-text script, #prompt-text img").count() == 0
    page.locator("#prompt-text .tok", has_text="script").first.click()
    links = page.locator("#token-info a").all_inner_texts()
    assert "feature 1" in links and "feature 0" not in links  # the "script" detector fires, the "<" one not
    page.screenshot(path=str(ARTIFACTS / "dashboard_prompts.png"), full_page=True)
    page.select_option("#prompt", index=1)
    assert page.locator("#prompt-text").inner_text().startswith("The cat")
    watch.check()
    page.close()
