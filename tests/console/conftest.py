"""Fixtures of the web console's tests: a real browser, the financing demo's store, and
where screenshots go.

The browser is Debian's Chromium (``/usr/bin/chromium``, see ``tests/console/browser.py``):
a test that needs it skips with the reason when it is not installed, and fails under
``CI=true``. Screenshots go to the directory in ``ESRC_TEST_ARTEFACTS`` (created when
missing), else to a pytest temporary directory; the run's summary names it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from esrc_testkit.servers import in_ci
from playwright.sync_api import BrowserContext, Page

from tests.console.browser import CHROMIUM, DemoStore, chromium, demo_store

_ARTEFACT_DIRS: list[Path] = []


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    """A headless Chromium with a fresh profile, for the tests of one module."""
    if not CHROMIUM.is_file():
        message = (
            f"the browser tests need Chromium at {CHROMIUM}: "
            "apt-get install --no-install-recommends chromium (.ci/run does)"
        )
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as context:
        yield context


@pytest.fixture
def page(browser: BrowserContext) -> Iterator[Page]:
    """A new tab of :func:`browser`, closed after the test."""
    tab = browser.new_page()
    tab.set_default_timeout(15_000)
    try:
        yield tab
    finally:
        tab.close()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoStore:
    """The financing demo's store on SQLite, written once for the tests of a module."""
    return demo_store(tmp_path_factory.mktemp("financing-demo"))


@pytest.fixture(scope="session")
def artefacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory of the screenshots: ``ESRC_TEST_ARTEFACTS`` or a temporary one."""
    chosen = os.environ.get("ESRC_TEST_ARTEFACTS", "").strip()
    directory = Path(chosen) if chosen else tmp_path_factory.mktemp("console-screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    _ARTEFACT_DIRS.append(directory)
    return directory


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Name the directory the web console's screenshots went to."""
    for directory in _ARTEFACT_DIRS:
        terminalreporter.write_line(f"web console screenshots: {directory}")
