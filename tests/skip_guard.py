"""A pytest plugin (loaded by conftest.py): in CI (CI=true, which .ci/run exports) a skipped test
fails the run unless its id is on ALLOWED_SKIPS; on any machine, browser tests skipped for want of
Chromium end the run with one line saying how to enable them."""

from __future__ import annotations

import os

import pytest

# test id -> why CI may skip it. Keep it short: every entry is a test that CI never runs.
ALLOWED_SKIPS: dict[str, str] = {}
BROWSER_TESTS = "_browser.py"  # test_dashboard_browser.py, test_serve_browser.py
BROWSER_NOTICE = "browser tests skipped: Chromium is not installed; enable them with `apt-get install chromium`"

_skipped: list[str] = []


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def pytest_configure(config) -> None:
    _skipped.clear()


def pytest_runtest_logreport(report) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        _skipped.append(report.nodeid)


def _not_allowed() -> list[str]:
    return [n for n in _skipped if n not in ALLOWED_SKIPS]


def pytest_sessionfinish(session, exitstatus) -> None:
    if in_ci() and _not_allowed() and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter) -> None:
    bad = _not_allowed()
    if in_ci() and bad:
        terminalreporter.write_line(f"CI fails: {len(bad)} test(s) skipped that are not on ALLOWED_SKIPS "
                                    f"(tests/skip_guard.py): {', '.join(bad)}", red=True)


def pytest_unconfigure(config) -> None:
    # after pytest's own summary line, so that it is the run's last line
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and not in_ci() and any(BROWSER_TESTS in n for n in _skipped):
        reporter.write_line(BROWSER_NOTICE, yellow=True)
