"""Stores the web console's view tests run on, and reading its pages.

:func:`open_console_store` opens an empty store on memory, a SQLite file, PostgreSQL
or MariaDB (tables under a unique prefix, dropped by :func:`close_console_store`);
:class:`Page` finds the elements the console's contract names in a page's HTML.
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest
from esrc_sqlalchemy.testing import drop_store_tables

from esrc_core import EventStore, open_event_store

__all__ = ["BACKENDS", "Page", "close_console_store", "open_console_store"]

BACKENDS = ("memory", "sqlite", "postgresql", "mariadb")
"""The backends every view test runs on."""


def open_console_store(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, unique: str
) -> tuple[EventStore, str, str | None]:
    """An empty store on ``backend``: (store, URL, table prefix or ``None``)."""
    if backend == "memory":
        url = f"memory://console-{unique}"
        return open_event_store(url), url, None
    prefix = f"console_{unique}_"
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'console.db'}"
    else:
        fixture = "postgresql_url" if backend == "postgresql" else "mysql_url"
        url = str(request.getfixturevalue(fixture))
    return open_event_store(url, table_prefix=prefix), url, prefix


def close_console_store(store: EventStore, url: str, prefix: str | None) -> None:
    """Close ``store`` and drop its tables."""
    store.close()
    if prefix is not None:
        drop_store_tables(url, prefix)


class Page(HTMLParser):
    """A page's elements: each start tag with its attributes, and the text inside each
    element (by ``tag``, ``tag#id`` and ``tag.class``)."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.texts: dict[str, list[str]] = {}
        self._open: list[tuple[str, list[str]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        self.tags.append((tag, found))
        if tag in {"br", "input", "meta", "line", "polyline", "img"}:
            return
        keys = [tag, *([f"{tag}#{found['id']}"] if "id" in found else [])]
        keys += [f"{tag}.{c}" for c in found.get("class", "").split()]
        self._open.append((tag, keys))
        for key in keys:
            self.texts.setdefault(key, []).append("")

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            name, _ = self._open.pop()
            if name == tag:
                break

    def handle_data(self, data: str) -> None:
        for _, keys in self._open:
            for key in keys:
                self.texts[key][-1] += data

    def text(self, key: str) -> list[str]:
        """The text of every ``key`` element (``"h1"``, ``"td.name"``,
        ``"p#stream-count"``), stripped."""
        return [t.strip() for t in self.texts.get(key, [])]

    def attrs(self, tag: str, **match: str) -> list[dict[str, str]]:
        """The attributes of every ``tag`` whose attributes include ``match``
        (``class_`` for ``class``)."""
        wanted = {k.rstrip("_"): v for k, v in match.items()}
        return [
            a
            for t, a in self.tags
            if t == tag
            and all(v in a.get(k, "").split() or a.get(k) == v for k, v in wanted.items())
        ]
