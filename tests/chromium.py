"""What the browser tests share: where Chromium is, how it is launched, the skip rule, and a
watcher for everything a page must not do. The `browser` fixture itself is in conftest.py."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from skip_guard import in_ci

CHROMIUM = os.environ.get("INTERP_CHROMIUM", "/usr/bin/chromium")  # another path: tests/test_ci_guards.py
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]

# CI installs Chromium (.ci/run), so there a missing browser is a failure, not a skip.
needs_chromium = pytest.mark.skipif(shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists() and not in_ci(),
                                    reason=f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")


class Watch:
    """Everything a page does that it should not: console errors, page errors, dialogs, requests."""

    def __init__(self, page):
        self.errors, self.dialogs, self.requests = [], [], []
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        page.on("request", lambda r: self.requests.append(r.url))

    def check(self):
        assert self.errors == []
        assert self.dialogs == []  # no alert() from the corpus ever ran
        assert self.requests and all(u.startswith("file://") for u in self.requests), self.requests
