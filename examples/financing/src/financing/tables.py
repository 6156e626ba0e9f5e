"""Plain text tables for the terminal."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["render_table"]


def render_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    right: Sequence[int] = (),
    title: str | None = None,
) -> str:
    """``rows`` under ``headers`` as aligned text, one line per row, columns separated
    by two spaces and the header underlined with dashes.

    Cells are turned into text with ``str`` (``None`` shows as empty); the columns whose
    indexes are in ``right`` are right-aligned (numbers). A ``title`` goes on a line of
    its own above the table. Lines carry no trailing spaces.
    """
    text_rows = [["" if cell is None else str(cell) for cell in row] for row in rows]
    for index, row in enumerate(text_rows):
        if len(row) != len(headers):
            raise ValueError(f"row {index} has {len(row)} cells for {len(headers)} headers")
    widths = [len(h) for h in headers]
    for row in text_rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        padded = (
            cell.rjust(width) if column in right else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(cells, widths, strict=True))
        )
        return "  ".join(padded).rstrip()

    lines = [title] if title else []
    lines.append(line(list(headers)))
    lines.append("  ".join("-" * w for w in widths))
    lines.extend(line(row) for row in text_rows)
    return "\n".join(lines)
