"""Plain text for a terminal: tables that fit its width, and a progress line on it.

Nothing here knows about events. Cells are made safe to print (control characters
become escapes, so a value cannot break a row or drive the terminal), measured in
terminal columns (wide characters count two), and cut with an ellipsis when a table
must shrink to fit.
"""

from __future__ import annotations

import os
import shutil
import time
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, TextIO

__all__ = [
    "ELLIPSIS",
    "Column",
    "Progress",
    "display_width",
    "output_width",
    "printable",
    "render_table",
    "shorten",
]

ELLIPSIS = "…"
"""What ends a cell that was cut short."""

_GAP = "  "
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str) -> str:
    """``text`` with every character a terminal would not simply show written as an
    escape: ``\\n``, ``\\t``, ``\\x1b``, ``\\u202e`` and so on. Spaces and backslashes
    stay as they are, so text that is already escaped (JSON, a bytes literal) reads
    the same."""
    if text.isprintable():
        return text
    out: list[str] = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif char == " " or char.isprintable():
            out.append(char)
        else:
            out.append(_escape(ord(char)))
    return "".join(out)


def _escape(code: int) -> str:
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _char_width(char: str) -> int:
    if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def display_width(text: str) -> int:
    """How many terminal columns ``text`` (already :func:`printable`) takes: wide East
    Asian characters count two, combining marks none, everything else one."""
    if text.isascii():
        return len(text)
    return sum(_char_width(c) for c in text)


def shorten(text: str, width: int) -> str:
    """``text`` if it fits in ``width`` columns, else its longest prefix that fits with
    :data:`ELLIPSIS` after it. ``width`` below 1 gives ``""``."""
    if display_width(text) <= width:
        return text
    if width < 1:
        return ""
    used = 0
    for index, char in enumerate(text):
        used += _char_width(char)
        if used > width - 1:
            return text[:index] + ELLIPSIS
    raise AssertionError("unreachable: text is wider than width")


def output_width(stream: TextIO) -> int | None:
    """The width to fit lines written to ``stream`` to, or ``None`` for no limit.

    That is the ``COLUMNS`` environment variable when it is set, else the terminal's
    width (:func:`shutil.get_terminal_size`) when ``stream`` is a terminal. Output to a
    file or a pipe is not cut, so nothing is lost to ``grep`` or a log.
    """
    if os.environ.get("COLUMNS", "").strip().isdigit():
        return max(int(os.environ["COLUMNS"]), 1)
    try:
        is_terminal = stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return None
    return shutil.get_terminal_size().columns if is_terminal else None


@dataclass(frozen=True, slots=True)
class Column:
    """A table column: its header, the side its cells are aligned to, and whether its
    cells may be cut short when the table is wider than the space it has."""

    header: str
    align: Literal["left", "right"] = "left"
    shrink: bool = True


def _fit(natural: list[int], floors: list[int], room: int) -> list[int]:
    """Widths no larger than ``natural`` and no smaller than ``floors`` that sum to at
    most ``room`` if they can: the widest columns give up columns first."""
    if sum(natural) <= room:
        return natural

    def capped(cap: int) -> list[int]:
        return [min(n, max(cap, f)) for n, f in zip(natural, floors, strict=True)]

    low, high = 0, max(natural)  # capped(high) is natural, which does not fit
    while low < high:
        middle = (low + high + 1) // 2
        if sum(capped(middle)) <= room:
            low = middle
        else:
            high = middle - 1
    widths = capped(low)
    spare = room - sum(widths)
    for index, width in enumerate(widths):
        if spare <= 0:
            break
        if width < natural[index]:
            widths[index] += 1
            spare -= 1
    return widths


def render_table(
    columns: Sequence[Column | str],
    rows: Iterable[Sequence[object]],
    *,
    width: int | None = None,
    min_cell: int = 8,
) -> list[str]:
    """The lines of a table: a header line, then one line per row, columns two spaces
    apart, without trailing spaces.

    Cells are ``str(cell)`` made :func:`printable`. When ``width`` is given and the
    table is wider, shrinkable columns are cut (widest first, with :data:`ELLIPSIS`)
    down to ``min_cell`` columns or their header's width, whichever is larger; if the
    table still does not fit, its lines are longer than ``width``. Raises
    ``ValueError`` for a row with a different number of cells than ``columns``.
    """
    cols = [c if isinstance(c, Column) else Column(c) for c in columns]
    headers = [printable(c.header) for c in cols]
    cells: list[list[str]] = []
    for number, row in enumerate(rows, start=1):
        if len(row) != len(cols):
            raise ValueError(f"table row {number} has {len(row)} cells for {len(cols)} columns")
        cells.append([printable(str(cell)) for cell in row])
    natural = [
        max([display_width(h), *(display_width(r[i]) for r in cells)])
        for i, h in enumerate(headers)
    ]
    widths = natural
    if width is not None:
        floors = [
            n if not c.shrink else min(n, max(min_cell, display_width(h)))
            for n, c, h in zip(natural, cols, headers, strict=True)
        ]
        widths = _fit(natural, floors, width - len(_GAP) * (len(cols) - 1))
    lines = []
    for row in [headers, *cells]:
        parts = []
        for cell, col, w in zip(row, cols, widths, strict=True):
            cut = shorten(cell, w)
            pad = " " * (w - display_width(cut))
            parts.append(pad + cut if col.align == "right" else cut + pad)
        lines.append(_GAP.join(parts).rstrip())
    return lines


class Progress:
    """A one-line status for a long operation, rewritten in place on a terminal.

    :meth:`update` shows a new text (at most every ``interval`` seconds unless
    ``force``); :meth:`clear` (also on leaving a ``with`` block) erases it. On a stream
    that is not a terminal, or with ``enabled=False`` (``--quiet``), it writes nothing
    at all, so pipes and logs stay clean. One thread drives one ``Progress``.
    """

    def __init__(self, stream: TextIO, *, interval: float = 0.1, enabled: bool = True) -> None:
        try:
            self.enabled = enabled and stream.isatty()
        except (AttributeError, ValueError):
            self.enabled = False
        self._stream = stream
        self._interval = interval
        self._shown = 0
        self._last = float("-inf")

    def update(self, text: str, *, force: bool = False) -> None:
        """Replace the status line with ``text`` (one line, cut to the terminal's width)."""
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < self._interval:
            return
        self._last = now
        line = shorten(printable(text), shutil.get_terminal_size().columns - 1)
        shown = display_width(line)
        self._stream.write("\r" + line + " " * max(self._shown - shown, 0))
        self._stream.flush()
        self._shown = shown

    def clear(self) -> None:
        """Erase the status line, if one is shown."""
        if self.enabled and self._shown:
            self._stream.write("\r" + " " * self._shown + "\r")
            self._stream.flush()
            self._shown = 0

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.clear()
