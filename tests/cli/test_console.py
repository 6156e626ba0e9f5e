"""Plain-text tables and the progress line (esrc_core.cli.console)."""

from __future__ import annotations

import io

import pytest
from esrc_core.cli.console import (
    ELLIPSIS,
    Column,
    Progress,
    display_width,
    output_width,
    printable,
    render_table,
    shorten,
)


class _Terminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("plain text", "plain text"),
        ("Zoë 東京", "Zoë 東京"),
        ("two\nlines\tand\r", "two\\nlines\\tand\\r"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("b'already\\nescaped'", "b'already\\nescaped'"),
        ("\u202eevil", "\\u202eevil"),
        ("\U000e0001tag", "\\U000e0001tag"),
    ],
)
def test_printable_escapes_what_a_terminal_would_not_just_show(text: str, want: str) -> None:
    assert printable(text) == want


def test_display_width_counts_wide_characters_twice_and_combining_marks_not_at_all() -> None:
    assert display_width("abc") == 3
    assert display_width("東京") == 4
    assert display_width("e\u0301") == 1


@pytest.mark.parametrize(
    ("text", "width", "want"),
    [
        ("short", 10, "short"),
        ("exactly", 7, "exactly"),
        ("too long for it", 8, "too lon" + ELLIPSIS),
        ("東京都庁", 5, "東京" + ELLIPSIS),
        ("東京都庁", 6, "東京" + ELLIPSIS),
        ("anything", 1, ELLIPSIS),
        ("anything", 0, ""),
    ],
)
def test_shorten_cuts_to_the_width_with_an_ellipsis(text: str, width: int, want: str) -> None:
    got = shorten(text, width)
    assert got == want
    assert display_width(got) <= max(width, 0)


def test_render_table_aligns_columns_two_spaces_apart_without_trailing_spaces() -> None:
    lines = render_table(
        [Column("name"), Column("count", "right"), "note"],
        [("a", 1, ""), ("longer", 1234, "x")],
    )
    assert lines == [
        "name    count  note",
        "a           1",
        "longer   1234  x",
    ]


def test_render_table_keeps_a_row_on_one_line_whatever_its_cells_hold() -> None:
    lines = render_table(["key", "value"], [("k", "line one\nline two\x1b[2J")])
    assert len(lines) == 2
    assert lines[1] == "k    line one\\nline two\\x1b[2J"


def test_render_table_cuts_the_widest_shrinkable_columns_to_fit() -> None:
    rows = [("1", "a" * 40, "b" * 20, "2026-11-26 04:28:22")]
    columns = [
        Column("n", "right", shrink=False),
        Column("wide"),
        Column("middle"),
        Column("time", shrink=False),
    ]
    lines = render_table(columns, rows, width=70)
    assert all(display_width(line) <= 70 for line in lines), lines
    cells = lines[1].split("  ")
    assert cells[0] == "1"
    assert cells[-1] == "2026-11-26 04:28:22", "a column that may not shrink keeps its text"
    assert cells[1].endswith(ELLIPSIS)
    assert cells[2] == "b" * 20, "the narrower column is left whole while the wide one gives"
    assert display_width(lines[1]) == 70, "the table uses all the width it has"
    narrow = render_table(columns, rows, width=60)[1].split("  ")
    assert narrow[1] == "a" * 16 + ELLIPSIS
    assert narrow[2] == "b" * 16 + ELLIPSIS, "with less room both give up the same"


def test_render_table_without_a_width_cuts_nothing() -> None:
    lines = render_table(["data"], [("x" * 500,)])
    assert lines[1] == "x" * 500


def test_render_table_never_cuts_below_the_header_or_the_minimum() -> None:
    lines = render_table(["a long header", "b"], [("x" * 30, "y" * 30)], width=10)
    header, row = lines
    assert header.startswith("a long header")
    assert row.split("  ")[0] == "x" * 12 + ELLIPSIS
    assert row.split("  ")[1] == "y" * 7 + ELLIPSIS


def test_render_table_rejects_a_row_of_the_wrong_length() -> None:
    with pytest.raises(ValueError, match="row 2 has 1 cells for 2 columns"):
        render_table(["a", "b"], [("1", "2"), ("3",)])


def test_output_width_follows_columns_and_does_not_limit_a_pipe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    assert output_width(io.StringIO()) is None
    monkeypatch.setenv("COLUMNS", "72")
    assert output_width(io.StringIO()) == 72
    assert output_width(_Terminal()) == 72


def test_progress_on_a_terminal_rewrites_one_line_and_clears_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    stream = _Terminal()
    with Progress(stream) as progress:
        progress.update("read 50,000 events…", force=True)
        progress.update("read 100,000 events…", force=True)
        progress.update("done", force=True)
    written = stream.getvalue()
    assert written.split("\r")[1:] == [
        "read 50,000 events…",
        "read 100,000 events…",
        "done" + " " * 16,
        " " * 4,
        "",
    ]
    assert "\n" not in written


def test_progress_writes_nothing_when_the_stream_is_not_a_terminal() -> None:
    stream = io.StringIO()
    with Progress(stream) as progress:
        progress.update("read 50,000 events…", force=True)
    assert stream.getvalue() == ""
