"""The live page of interp serve in a real browser: headless Chromium (Debian's package) driven by
Playwright, as tests/test_dashboard_browser.py drives the static dashboard. Type a prompt, see its
tokens highlighted, click a token and a feature, open the feature's page, run a steer and read both
continuations streamed in; typed HTML is shown as text and runs nothing."""

from __future__ import annotations

import re

import pytest
import serve_helpers as sh
from chromium import Watch, needs_chromium
from playwright.sync_api import expect

EVIL = "The whale <script>alert(1)</script> rose <img src=x onerror=alert(2)> from the sea."
NEW = 8
pytestmark = needs_chromium


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-browser")
    s = sh.Server(sh.make_folders(root), root / "home", "--features", "all")
    yield s
    s.stop()


def test_type_read_click_and_steer(server, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1300, "height": 1100})
    watch = Watch(page)
    page.goto(server.url + "/")
    # waits go through locators: the page's CSP forbids the eval() that wait_for_function needs
    expect(page.locator("#about")).to_contain_text("features")
    page.fill("#prompt", EVIL)
    page.click("#read")
    page.wait_for_selector("#tokens .tok")
    # the typed HTML is text: shown literally, no element made of it, no dialog (Watch)
    assert page.locator("#tokens").inner_text() == EVIL
    assert page.locator("#tokens script, #tokens img, #token-info img").count() == 0
    assert page.locator("script").count() == 2  # the page's own two files
    toks = page.locator("#tokens .tok")
    styles = [toks.nth(i).get_attribute("style") or "" for i in range(toks.count())]
    assert sum("255, 110, 0" in s for s in styles) >= len(styles) // 2  # coloured by each token's strongest feature
    assert "tokens in" in page.locator("#status").inner_text()

    page.locator("#tokens .tok", has_text="script").first.click()  # a token: its top features
    assert "script" in page.locator("#token-info .band-head").inner_text()
    items = page.locator("#token-features li")
    assert items.count() >= 1
    first = items.first.get_attribute("data-feature")
    items.first.locator(".fval").click()  # the row, not its link: colour the prompt by that feature
    expect(page.locator("#feature")).to_have_value(first)
    page.wait_for_selector("#feature-info .sub")  # its logit effects came from /api/features
    assert "promotes" in page.locator("#feature-info").inner_text()
    page.wait_for_selector(f"#prompt-features li.active[data-feature='{first}']")

    page.locator("#token-features li button.add").first.click()  # add it to the steered features
    assert page.input_value("#steer-features") == first
    page.fill("#strength", "40")
    page.fill("#max-new", str(NEW))
    page.fill("#temperature", "0")
    page.click("#steer")
    expect(page.locator("#steer-status")).to_have_text(re.compile("^done"), timeout=60000)
    for pane in ("#default-text", "#steered-text"):
        assert page.locator(f"{pane} .gen").count() == NEW
        assert page.locator(pane).inner_text().startswith(EVIL)
        assert page.locator(f"{pane} script, {pane} img").count() == 0
    assert page.locator("#changes tbody tr").count() == NEW
    assert "after the prompt" in page.locator("#changes tbody tr").first.inner_text()
    assert "KL" in page.locator("#kl").inner_text()
    shot = tmp_path / "serve_live.png"  # kept under the test's tmp dir
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000

    page.locator(f"#prompt-features li[data-feature='{first}'] a").click()  # the feature's dashboard page
    page.wait_for_url(f"**/dashboard/features/{first}.html")
    page.wait_for_selector("#top")
    assert page.locator("h1").inner_text() == f"Feature {first}"
    page.go_back()
    page.wait_for_selector("#prompt")
    assert watch.errors == [] and watch.dialogs == []
    assert watch.requests and all(u.startswith(server.url) for u in watch.requests), watch.requests
    page.close()
