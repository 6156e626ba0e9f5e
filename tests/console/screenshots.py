"""Regenerate the web console's screenshots in ``docs/images/`` (the README and
docs/console.md show them): ``uv run nox -s screenshots``, or
``python -m tests.console.screenshots [--out DIR]`` from the repository's root.

The financing demo runs on SQLite in a temporary directory; the console serves its
store; headless Chromium (``/usr/bin/chromium``) takes a 1280x800 picture of the
streams page, an investor's stream, one of its events with the causation chain, and
the relays page once two new events wait for the relays and the charts have drawn a
few samples.
"""

from __future__ import annotations

import argparse
import tempfile
import urllib.parse
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

from esrc_console.testing import serve
from esrc_core.ids import encode_id
from financing.commands import Commands
from playwright.sync_api import Page

from esrc_console import create_app
from esrc_core import Inspectable, open_event_store
from tests.console.browser import DEMO_TABLE_PREFIX, chromium, demo_store

__all__ = ["main", "take_screenshots"]

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "docs" / "images"
REFRESH_SECONDS = 0.5


def _settle(page: Page, samples: int) -> None:
    """Wait until both charts have drawn at least ``samples`` samples."""
    page.wait_for_function(
        "n => ['lag-chart', 'rate-chart'].every(c => Number(document.querySelector("
        "'svg#' + c)?.getAttribute('data-samples')) >= n)",
        arg=samples,
        timeout=30_000,
    )


def take_screenshots(out: Path) -> list[Path]:
    """Write console-streams.png, console-stream.png, console-event.png and
    console-relays.png into ``out``; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="esrc-screenshots-") as scratch:
        work = Path(scratch)
        demo = demo_store(work / "demo")
        store = open_event_store(demo.url, table_prefix=DEMO_TABLE_PREFIX)
        writer = open_event_store(demo.url, table_prefix=DEMO_TABLE_PREFIX)
        try:
            assert isinstance(store, Inspectable)
            investor = demo.result.investors["Ada"]
            events = store.recorded_events("Investor", investor)
            committed = next(e for e in events if e.event.name == "FundsCommitted")
            app = create_app(store, refresh_seconds=REFRESH_SECONDS)
            with serve(app) as served, chromium(work / "profile") as browser:
                base = served.rstrip("/")
                page = browser.new_page()
                page.set_default_timeout(30_000)

                def shoot(path: str, name: str) -> None:
                    page.goto(base + path)
                    target = out / name
                    page.screenshot(path=target)
                    written.append(target)

                shoot("/streams", "console-streams.png")
                ada = urllib.parse.quote(encode_id(investor), safe="")
                shoot(f"/streams/Investor/{ada}", "console-stream.png")
                shoot(f"/events/{committed.position}", "console-event.png")

                page.goto(base + "/relays")
                _settle(page, 3)
                commands = Commands(writer)
                commands.deposit(demo.result.investors["Ben"], Decimal("100.00"))
                commands.deposit(demo.result.investors["Cleo"], Decimal("250.00"))
                _settle(page, 12)
                target = out / "console-relays.png"
                page.screenshot(path=target)
                written.append(target)
        finally:
            writer.close()
            store.close()
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Take the screenshots and print where they went, with their sizes."""
    parser = argparse.ArgumentParser(prog="python -m tests.console.screenshots")
    parser.add_argument("--out", type=Path, default=IMAGES, help="default: docs/images")
    options = parser.parse_args(argv)
    for path in take_screenshots(options.out):
        print(f"{path} ({path.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
