"""``esrc streams|events|tail|relays`` as real processes (``python -m esrc_core.cli``)
against stores other processes can see: an SQLite file, and PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import IO

import pytest
from esrc_core.inspection import Inspectable

from esrc_core import RawEvent

from .conftest import Target, require_inspection
from .test_inspect_commands import ACCOUNT_UUID, WAIT, cells, populate


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("COLUMNS", None)  # output to a pipe is never cut; keep it that way
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def esrc(*argv: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m esrc_core.cli argv...`` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "esrc_core.cli", *argv],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=_env(),
        timeout=120,
        check=False,
    )


@contextlib.contextmanager
def _tail(target: Target, *options: str) -> Iterator[subprocess.Popen[str]]:
    """Start ``esrc tail`` on ``target`` as a process with pipes for its output; kill
    it on the way out if it is still running."""
    process = subprocess.Popen(
        [sys.executable, "-m", "esrc_core.cli", *target.argv("tail", *options)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        env=_env(),
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_streams_events_and_relays_in_a_process(sqlite_target: Target) -> None:
    populate(sqlite_target)
    outbox = sqlite_target.store.outbox("projector")  # type: ignore[attr-defined]
    outbox.mark_events_as_published(outbox.unpublished_events(3))

    result = esrc(*sqlite_target.argv("streams"))
    assert (result.returncode, result.stderr) == (0, "")
    lines = result.stdout.splitlines()
    assert [cells(r)[:4] for r in lines[1:-1]] == [
        ["Account", "42", "int", "2"],
        ["Account", "007", "str", "1"],
        ["Account", str(ACCOUNT_UUID), "uuid", "3"],
        ["Order", "o-1", "str", "1"],
    ]
    assert lines[-1] == "4 streams, 7 events"

    result = esrc(*sqlite_target.argv("events", "Account", "42"))
    assert (result.returncode, result.stderr) == (0, "")
    heading, _, *rows = result.stdout.splitlines()
    assert heading == "Account 42 (int id): 2 events"
    assert [cells(r)[3:] for r in rows] == [
        ["AccountOpened", "1", "user=ada", '{"owner": "Zoë"}'],
        ["MoneyDeposited", "1", "-", '{"amount": "100.00"}'],
    ]

    result = esrc(*sqlite_target.argv("relays"))
    assert (result.returncode, result.stderr) == (0, "")
    assert [cells(r)[:3] for r in result.stdout.splitlines()[1:]] == [["projector", "3", "4"]]


class _LineReader:
    """Reads a process's output stream in a thread, so a test can wait for lines."""

    def __init__(self, stream: IO[str]) -> None:
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def next(self) -> str:
        try:
            line = self._lines.get(timeout=WAIT)
        except queue.Empty:
            pytest.fail(f"no line from the process; so far: {self.seen}")
        assert line is not None, f"the process closed its output; it wrote: {self.seen}"
        self.seen.append(line)
        return line

    def rest(self) -> list[str]:
        """Every remaining line, up to the end of the stream."""
        lines = []
        while (line := self._lines.get(timeout=WAIT)) is not None:
            lines.append(line)
        return lines


def _relays(target: Target) -> dict[str, tuple[int, int]]:
    assert isinstance(target.store, Inspectable)
    return {r.name: (r.published, r.pending) for r in target.store.relays()}


@pytest.mark.parametrize(
    ("where", "stop_with"),
    [
        pytest.param("sqlite", signal.SIGINT, marks=pytest.mark.sqlite, id="sqlite-SIGINT"),
        pytest.param("sqlite", signal.SIGTERM, marks=pytest.mark.sqlite, id="sqlite-SIGTERM"),
        pytest.param(
            "postgresql", signal.SIGINT, marks=pytest.mark.postgresql, id="postgresql-SIGINT"
        ),
    ],
)
def test_tail_follows_new_events_until_stopped_and_leaves_no_trace(
    request: pytest.FixtureRequest, where: str, stop_with: signal.Signals
) -> None:
    target: Target = request.getfixturevalue(f"{where}_target")
    populate(target)
    outbox = target.store.outbox("projector")  # type: ignore[attr-defined]
    outbox.mark_events_as_published(outbox.unpublished_events(5))
    watched = _relays(target)["projector"][0]

    with _tail(target, "--relay", "projector", "--poll", "0.05") as process:
        out, err = _LineReader(process.stdout), _LineReader(process.stderr)  # type: ignore[arg-type]
        started = err.next()
        found = re.search(r"from where relay 'projector' stands as relay (esrc-tail-\w+);", started)
        assert found, started
        private = found[1]
        backlog = [out.next(), out.next()]
        assert [line.split()[1:5] for line in backlog] == [
            ["Account", str(ACCOUNT_UUID), "v3", "Emptied"],
            ["Order", "o-1", "v1", "OrderPlaced"],
        ]
        target.store.append_events("Order", "o-1", 1, [RawEvent("OrderPaid", b'{"paid":true}')])
        target.store.add_aggregate("Order", 9, [RawEvent("OrderPlaced", b"\xde\xad")])
        appended = [out.next(), out.next()]
        assert [line.split(" ", 1)[1] for line in appended] == [
            'Order o-1 v2 OrderPaid {"paid": true}',
            "Order 9 v1 OrderPlaced 0xdead",
        ]
        assert private in _relays(target), "the tail reads through its own relay name"
        process.send_signal(stop_with)
        status = process.wait(timeout=WAIT)
    rest = err.rest()
    assert status == 0, rest
    assert rest == ["esrc tail: stopped after 4 events"]
    assert out.rest() == []
    relays = _relays(target)
    assert private not in relays, "the private relay name is forgotten on the way out"
    assert relays["projector"][0] == watched, "the watched relay's progress did not move"


def test_tail_from_the_end_prints_only_what_comes_after(sqlite_target: Target) -> None:
    populate(sqlite_target)
    with _tail(sqlite_target, "--poll", "0.05") as process:
        out, err = _LineReader(process.stdout), _LineReader(process.stderr)  # type: ignore[arg-type]
        assert "from the end (7 earlier events skipped)" in err.next()
        sqlite_target.store.add_aggregate("Order", "o-2", [RawEvent("OrderPlaced", b"{}")])
        assert out.next().split(" ", 1)[1] == "Order o-2 v1 OrderPlaced {}"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=WAIT) == 0
    assert err.rest() == ["esrc tail: stopped after 1 event"]
    assert _relays(sqlite_target) == {}


def test_tail_whose_reader_goes_away_exits_0_and_forgets_its_relay(
    sqlite_target: Target,
) -> None:
    populate(sqlite_target)
    with _tail(sqlite_target, "--poll", "0.05") as process:
        err = _LineReader(process.stderr)  # type: ignore[arg-type]
        assert "Ctrl-C stops" in err.next()
        process.stdout.close()  # type: ignore[union-attr]  # as `esrc tail | head -0` would
        sqlite_target.store.add_aggregate("Order", "o-2", [RawEvent("OrderPlaced", b"{}")])
        assert process.wait(timeout=WAIT) == 0
    assert err.rest() == ["esrc tail: stopped after 0 events"]
    assert _relays(sqlite_target) == {}


def test_an_unreachable_server_in_a_process_is_one_line_without_a_traceback() -> None:
    url = "postgresql+psycopg://admin:s3cret@127.0.0.1:1/nothing"
    require_inspection(url)
    result = esrc("relays", url)
    assert (result.returncode, result.stdout) == (1, "")
    [line] = result.stderr.splitlines()
    assert line.startswith("esrc relays: ")
    assert "postgresql+psycopg://admin:***@127.0.0.1:1/nothing" in line
    assert "s3cret" not in result.stderr


def test_a_missing_stream_in_a_process_is_one_line(sqlite_target: Target) -> None:
    populate(sqlite_target)
    result = esrc(*sqlite_target.argv("events", "Account", "43"))
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.splitlines() == [
        f"esrc events: read Account '43' in {sqlite_target.url}: no such stream "
        "(tried it as int id '43' or str id '43')"
    ]


def test_a_usage_error_in_a_process_exits_2(sqlite_target: Target) -> None:
    result = esrc(*sqlite_target.argv("events", "Account", "abc", "--id-type", "uuid"))
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == "esrc events: error: 'abc' is not a uuid id"
