"""What the web console's browser tests and its README screenshots share: the system's
Chromium driven through Playwright's Python API, and a store holding the financing
demo's events.

Chromium is Debian's ``chromium`` package at :data:`CHROMIUM` (``.ci/run`` installs it
when it is missing); Playwright never downloads a browser of its own here. Each launch
gets a fresh profile directory, so no state carries over between runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from financing.demo import DemoConfig, DemoResult, run_demo
from playwright.sync_api import BrowserContext, sync_playwright

__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "DEMO_TABLE_PREFIX",
    "VIEWPORT",
    "DemoStore",
    "chromium",
    "demo_store",
]

CHROMIUM = Path("/usr/bin/chromium")
"""Debian's Chromium, the browser the tests drive."""

CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
"""Headless, as root, on a machine without a GPU, and without talking to anything but
the console under test."""

VIEWPORT = {"width": 1280, "height": 800}
"""The window size of every page (and so of every screenshot)."""

DEMO_TABLE_PREFIX = "financing_"
"""The table prefix of the demo's SQLite store (the demo's default name)."""


@contextlib.contextmanager
def chromium(profile: Path) -> Iterator[BrowserContext]:
    """A headless Chromium (:data:`CHROMIUM`) with a fresh profile in ``profile`` (an
    empty directory), closed on exit. Raises ``FileNotFoundError`` when the browser is
    not installed."""
    if not CHROMIUM.is_file():
        raise FileNotFoundError(f"no Chromium at {CHROMIUM}: apt-get install chromium")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=list(CHROMIUM_ARGS),
            viewport={"width": VIEWPORT["width"], "height": VIEWPORT["height"]},
        )
        try:
            yield context
        finally:
            context.close()


class DemoStore:
    """The financing demo run once on SQLite in a directory: its store URL (tables
    prefixed :data:`DEMO_TABLE_PREFIX`) and what the run did (the investors' and
    invoices' ids)."""

    def __init__(self, url: str, result: DemoResult) -> None:
        self.url = url
        self.result = result


def demo_store(workdir: Path) -> DemoStore:
    """Run the financing demo with its SQLite files in ``workdir`` (recreated) and the
    in-process publisher, quietly; return where its store is."""
    result = run_demo(DemoConfig(workdir=workdir), out=lambda _line: None)
    return DemoStore(f"sqlite:///{workdir / 'events.db'}", result)
