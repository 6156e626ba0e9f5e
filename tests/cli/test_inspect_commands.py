"""``esrc streams|events|tail|relays`` run in this process, against each inspectable
backend (see the ``target`` fixture)."""

from __future__ import annotations

import datetime as dt
import io
import re
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from esrc_core.cli import format_data, id_candidates, list_streams, main, tail
from esrc_core.cli.console import ELLIPSIS
from esrc_core.inspection import Inspectable
from esrc_core.locks import HasRelayLock

from esrc_core import Capability, RawEvent, plugins, require
from esrc_testkit import capabilities_of

from .conftest import Target, require_inspection

WAIT = 30.0
"""How long a test waits for something that should happen at once, before failing
instead of hanging. Never a measurement."""

ACCOUNT_UUID = uuid.UUID("0b7c5f1e-2d3a-4c5b-8e6f-7a8b9c0d1e2f")


def run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    """Run ``esrc argv...``; return its status, standard output and standard error."""
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def cells(line: str) -> list[str]:
    """A table line split into its cells (two or more spaces apart)."""
    return re.split(r"\s{2,}", line.strip())


def when(moment: dt.datetime | None) -> str:
    """How the commands show a time: UTC to the second."""
    assert moment is not None
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def inspect(target: Target) -> Inspectable:
    assert isinstance(target.store, Inspectable)
    return target.store


def populate(target: Target) -> None:
    """Four streams of two types and three id types; seven events."""
    store = target.store
    store.add_aggregate(
        "Account",
        42,
        [
            RawEvent("AccountOpened", b'{"owner":"Zo\xc3\xab"}', {"user": "ada"}),
            RawEvent("MoneyDeposited", b'{"amount": "100.00"}'),
        ],
    )
    store.add_aggregate("Account", "007", [RawEvent("AccountOpened", b'{"owner":"Bond"}')])
    store.add_aggregate(
        "Account",
        ACCOUNT_UUID,
        [
            RawEvent("AccountOpened", b"\x08\x96\x01\x00\xff"),
            RawEvent("Noted", b"plain text,\nnot JSON"),
            RawEvent("Emptied", b""),
        ],
    )
    store.add_aggregate("Order", "o-1", [RawEvent("OrderPlaced", b"[1, 2, 3]")])


# --- esrc streams ---------------------------------------------------------------


def test_streams_lists_each_stream_with_its_id_type_version_and_last_event_time(
    target: Target, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(target)
    status, out, err = run(capsys, target.argv("streams"))
    assert status == 0, err
    header, *rows, total = out.splitlines()
    assert cells(header) == ["type", "id", "id type", "version", "last event (UTC)"]
    last = {s.aggregate_id: when(s.last_recorded_at) for s in inspect(target).streams()}
    assert [cells(r) for r in rows] == [
        ["Account", "42", "int", "2", last[42]],
        ["Account", "007", "str", "1", last["007"]],
        ["Account", str(ACCOUNT_UUID), "uuid", "3", last[ACCOUNT_UUID]],
        ["Order", "o-1", "str", "1", last["o-1"]],
    ]
    assert total == "4 streams, 7 events"


def test_streams_last_event_time_is_when_the_last_event_was_recorded(
    target: Target, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(target)
    recorded = inspect(target).recorded_events("Order", "o-1")
    _, out, _ = run(capsys, target.argv("streams", "--type", "Order"))
    assert cells(out.splitlines()[1])[-1] == when(recorded[-1].recorded_at)


def test_streams_filters_by_type_and_stops_at_the_limit(
    target: Target, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(target)
    _, out, _ = run(capsys, target.argv("streams", "--type", "Account", "--limit", "2"))
    _, *rows, total = out.splitlines()
    assert [cells(r)[:2] for r in rows] == [["Account", "42"], ["Account", "007"]]
    assert total == "2 streams, 3 events (the first 2 only)"
    _, out, _ = run(capsys, target.argv("streams", "--type", "Order"))
    assert [cells(r)[:3] for r in out.splitlines()[1:-1]] == [["Order", "o-1", "str"]]
    assert out.splitlines()[-1] == "1 stream, 1 event"


def test_streams_of_an_empty_store_or_type_say_there_are_none(
    target: Target, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(capsys, target.argv("streams"))
    assert status == 0
    assert out.startswith("no streams in ")
    _, out, _ = run(capsys, target.argv("streams", "--type", "Nothing"))
    assert out.startswith("no streams of type 'Nothing' in ")


# --- esrc events ----------------------------------------------------------------


def test_events_shows_versions_positions_times_metadata_and_json_data(
    target: Target, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(target)
    recorded = inspect(target).recorded_events("Account", 42)
    status, out, err = run(capsys, target.argv("events", "Account", "42"))
    assert status == 0, err
    heading, header, *rows = out.splitlines()
    assert heading == "Account 42 (int id): 2 events"
    assert cells(header) == [
        "version",
        "position",
        "recorded (UTC)",
        "name",
        "schema",
        "metadata",
        "data",
    ]
    assert [cells(r) for r in rows] == [
        [
            "1",
            str(recorded[0].position),
            when(recorded[0].recorded_at),
            "AccountOpened",
            "1",
            "user=ada",
            '{"owner": "Zoë"}',
        ],
        [
            "2",
            str(recorded[1].position),
            when(recorded[1].recorded_at),
            "MoneyDeposited",
            "1",
            "-",
            '{"amount": "100.00"}',
        ],
    ]


def test_events_shows_data_that_is_not_json_as_escaped_bytes_or_hex(
    target: Target, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(target)
    _, out, _ = run(capsys, target.argv("events", "Account", str(ACCOUNT_UUID)))
    heading, _, *rows = out.splitlines()
    assert heading == f"Account {ACCOUNT_UUID} (uuid id): 3 events"
    assert [cells(r)[-1] for r in rows] == [
        "0x08960100ff",
        "b'plain text,\\nnot JSON'",
        "(empty)",
    ]


def test_events_from_a_version_shows_only_later_events(
    target: Target, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(target)
    _, out, _ = run(capsys, target.argv("events", "Account", str(ACCOUNT_UUID), "--from", "1"))
    heading, _, *rows = out.splitlines()
    assert heading == f"Account {ACCOUNT_UUID} (uuid id): 2 events after version 1"
    assert [cells(r)[0] for r in rows] == ["2", "3"]
    status, out, _ = run(capsys, target.argv("events", "Account", "42", "--from", "2"))
    assert status == 0
    assert out == "Account 42 (int id): no events after version 2\n"


@pytest.mark.parametrize(
    ("text", "heading"),
    [
        ("42", "Account 42 (int id)"),
        ("007", "Account 007 (str id)"),
        (str(ACCOUNT_UUID).upper(), f"Account {ACCOUNT_UUID} (uuid id)"),
        (ACCOUNT_UUID.hex, f"Account {ACCOUNT_UUID} (uuid id)"),
    ],
)
def test_events_guesses_the_type_of_the_id(
    target: Target, capsys: pytest.CaptureFixture[str], text: str, heading: str
) -> None:
    populate(target)
    status, out, err = run(capsys, target.argv("events", "Account", text))
    assert status == 0, err
    assert out.splitlines()[0].startswith(heading + ":")
    assert err == ""


def test_events_falls_back_to_the_other_id_types_before_giving_up(
    target: Target, capsys: pytest.CaptureFixture[str]
) -> None:
    target.store.add_aggregate("Invoice", "12", [RawEvent("Issued", b"{}")])
    target.store.add_aggregate("Invoice", str(ACCOUNT_UUID), [RawEvent("Issued", b"{}")])
    _, out, _ = run(capsys, target.argv("events", "Invoice", "12"))
    assert out.splitlines()[0] == "Invoice 12 (str id): 1 event"
    _, out, _ = run(capsys, target.argv("events", "Invoice", str(ACCOUNT_UUID)))
    assert out.splitlines()[0] == f"Invoice {ACCOUNT_UUID} (str id): 1 event"


def test_events_picks_the_first_guess_and_names_the_other_stream(
    target: Target, capsys: pytest.CaptureFixture[str]
) -> None:
    target.store.add_aggregate("Invoice", 12, [RawEvent("Issued", b'{"n": 1}')])
    target.store.add_aggregate("Invoice", "12", [RawEvent("Issued", b'{"n": 2}')])
    _, out, err = run(capsys, target.argv("events", "Invoice", "12"))
    assert out.splitlines()[0] == "Invoice 12 (int id): 1 event"
    assert cells(out.splitlines()[2])[-1] == '{"n": 1}'
    assert err == (
        "esrc events: note: Invoice also has a stream with str id '12'; choose one with --id-type\n"
    )
    _, out, err = run(capsys, target.argv("events", "Invoice", "12", "--id-type", "str"))
    assert out.splitlines()[0] == "Invoice 12 (str id): 1 event"
    assert cells(out.splitlines()[2])[-1] == '{"n": 2}'
    assert err == ""


def test_events_with_an_id_type_looks_only_under_that_type(
    target: Target, capsys: pytest.CaptureFixture[str]
) -> None:
    target.store.add_aggregate("Invoice", "12", [RawEvent("Issued", b"{}")])
    status, out, err = run(capsys, target.argv("events", "Invoice", "12", "--id-type", "int"))
    assert status == 1
    assert out == ""
    assert err.splitlines() == [
        f"esrc events: read Invoice '12' in {target.url}: no such stream (tried it as int id '12')"
    ]


def test_events_of_a_missing_stream_say_which_id_types_were_tried(
    target: Target, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(target)
    status, out, err = run(capsys, target.argv("events", "Account", "43"))
    assert (status, out) == (1, "")
    assert err.splitlines() == [
        f"esrc events: read Account '43' in {target.url}: no such stream "
        "(tried it as int id '43' or str id '43')"
    ]
    _, _, err = run(capsys, target.argv("events", "Account", str(uuid.UUID(int=1))))
    assert err.rstrip().endswith(
        "(tried it as uuid id '00000000-0000-0000-0000-000000000001' or "
        "str id '00000000-0000-0000-0000-000000000001')"
    )


@pytest.mark.parametrize(
    ("text", "id_type", "message"),
    [("abc", "int", "'abc' is not an int id"), ("42", "uuid", "'42' is not a uuid id")],
)
def test_an_id_that_is_not_of_the_given_type_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], text: str, id_type: str, message: str
) -> None:
    assert main(["events", "memory://", "Account", text, "--id-type", id_type]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == f"esrc events: error: {message}"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["tail", "memory://", "--relay", "x", "--from-start"], "not allowed with argument"),
        (["tail", "memory://", "--poll", "0"], "expected seconds between 0 and 86400"),
        (["streams", "memory://", "--limit", "0"], "expected a number >= 1, got 0"),
        (["events", "memory://", "A", "1", "--from", "-1"], "expected a number >= 0, got -1"),
        (["relays", "memory://", "-o", "novalue"], "expected key=value, got 'novalue'"),
    ],
)
def test_bad_arguments_are_usage_errors(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err.splitlines()[-1]


def test_id_candidates_keep_text_that_int_would_rewrite_as_text() -> None:
    assert id_candidates("42") == [42, "42"]
    assert id_candidates("007") == ["007"]
    assert id_candidates("-5") == [-5, "-5"]
    assert id_candidates("1_000") == ["1_000"]
    assert id_candidates(str(ACCOUNT_UUID)) == [ACCOUNT_UUID, str(ACCOUNT_UUID)]
    assert id_candidates("007", "int") == [7]
    with pytest.raises(ValueError, match="must not be empty"):
        id_candidates("")


@pytest.mark.parametrize(
    ("data", "want"),
    [
        (b'{"a":1,"b":[true,null]}', '{"a": 1, "b": [true, null]}'),
        (b'"just a string"', '"just a string"'),
        (b"\xff\xfe\x00\x01", "0xfffe0001"),
        (b"caf\xc3\xa9 au lait", "b'caf\\xc3\\xa9 au lait'"),
        (b"", "(empty)"),
    ],
)
def test_format_data(data: bytes, want: str) -> None:
    assert format_data(data) == want


def test_format_data_cuts_long_data_and_says_how_long_it_was() -> None:
    assert format_data(bytes(range(256)) * 8, limit=40) == "0x" + bytes(range(10)).hex() + (
        "… (2,048 bytes)"
    )
    long_json = format_data(b'{"text": "' + b"x" * 5000 + b'"}', limit=100)
    assert len(long_json) == 100
    assert long_json.endswith(ELLIPSIS)


def test_events_fit_the_terminal_width(
    target: Target, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    target.store.add_aggregate(
        "Document", "d-1", [RawEvent("Written", b'{"text": "' + b"lorem ipsum " * 50 + b'"}')]
    )
    monkeypatch.setenv("COLUMNS", "100")
    _, out, _ = run(capsys, target.argv("events", "Document", "d-1"))
    lines = out.splitlines()
    assert all(len(line) <= 100 for line in lines), lines
    assert len(lines[2]) == 100
    assert cells(lines[2])[-1].startswith('{"text": "lorem ipsum')
    assert lines[2].endswith(ELLIPSIS)
    monkeypatch.delenv("COLUMNS")
    _, out, _ = run(capsys, target.argv("events", "Document", "d-1"))
    assert "lorem ipsum " * 50 in out, "output that is not a terminal is not cut"


# --- esrc relays ----------------------------------------------------------------


def relayed(target: Target, name: str, count: int) -> Any:
    """Relay ``name``'s outbox, after marking its first ``count`` events published."""
    outbox = target.store.outbox(name)  # type: ignore[attr-defined]
    outbox.mark_events_as_published(outbox.unpublished_events(count))
    return outbox


def test_relays_show_published_pending_and_the_oldest_pending_event(
    target: Target, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(target)
    outbox = relayed(target, "projector", 2)
    relayed(target, "archive", 100)
    oldest = outbox.unpublished_events(1)[0]
    oldest_at = next(
        e.recorded_at
        for e in inspect(target).recorded_events(oldest.aggregate_type, oldest.aggregate_id)
        if e.version == oldest.version
    )
    status, out, err = run(capsys, target.argv("relays"))
    assert status == 0, err
    header, *rows = out.splitlines()
    assert cells(header) == ["relay", "published", "pending", "oldest pending (UTC)", "lag (s)"]
    archive, projector = (cells(r) for r in rows)
    assert archive == ["archive", "7", "0", "-", "-"]
    assert projector[:4] == ["projector", "2", "5", when(oldest_at)]
    assert float(projector[4]) >= 0


def test_relays_of_a_store_without_progress_say_so(
    target: Target, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(capsys, target.argv("relays"))
    assert status == 0
    assert out.startswith("no relay has marked progress in ")


def test_relays_forget_deletes_the_progress_of_each_name_given(
    target: Target, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(target)
    for name in ("esrc-tail-0a1b2c", "projector"):
        relayed(target, name, 3)
    status, out, err = run(capsys, [*target.argv("relays"), "--forget", "esrc-tail-0a1b2c"])
    assert status == 0, err
    assert out == "forgot relay 'esrc-tail-0a1b2c' (3 published, 4 pending)\n"
    assert _relay_names(target) == {"projector": 3}


def test_relays_forget_refuses_an_unknown_name_and_forgets_the_others(
    target: Target, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(target)
    relayed(target, "projector", 1)
    argv = [*target.argv("relays"), "--forget", "projektor", "--forget", "projector"]
    status, out, _ = run(capsys, argv)
    assert status == 1
    lines = out.splitlines()
    assert lines[0].startswith("relay 'projektor' has no progress in ")
    assert lines[1] == "forgot relay 'projector' (1 published, 6 pending)"
    assert _relay_names(target) == {}


def test_relays_forget_refuses_a_relay_that_is_running(
    target: Target, capsys: pytest.CaptureFixture[str]
) -> None:
    if Capability.RELAY_LOCK not in capabilities_of(target.url):
        pytest.skip(f"{target.url}'s backend does not declare relay locks")
    store = require(target.store, Capability.RELAY_LOCK, "forget a running relay", HasRelayLock)
    populate(target)
    relayed(target, "projector", 2)
    running = store.relay_lock("projector")
    assert running.acquire(WAIT)
    try:
        status, out, _ = run(capsys, [*target.argv("relays"), "--forget", "projector"])
    finally:
        running.release()
    assert status == 1
    assert out == "relay 'projector' is running (its lock is held); not forgotten\n"
    assert _relay_names(target) == {"projector": 2}


# --- esrc tail (in this process: stopped with an event instead of Ctrl-C) ------


class _Lines(io.StringIO):
    """A text stream others can wait on until it holds a given number of lines."""

    def __init__(self) -> None:
        super().__init__()
        self._changed = threading.Condition()

    def write(self, text: str) -> int:
        with self._changed:
            written = super().write(text)
            self._changed.notify_all()
        return written

    def wait_for_lines(self, count: int) -> list[str]:
        with self._changed:
            ok = self._changed.wait_for(lambda: self.getvalue().count("\n") >= count, WAIT)
        lines = self.getvalue().splitlines()
        assert ok, f"waited for {count} lines, got {lines}"
        return lines


class _Tail:
    """``tail`` running in a thread, with its output and a way to stop it."""

    def __init__(self, target: Target, **options: object) -> None:
        self.out, self.err, self.stop = _Lines(), _Lines(), threading.Event()
        self.status: list[int] = []
        self.thread = threading.Thread(
            target=lambda: self.status.append(
                tail(
                    target.url,
                    poll=0.02,
                    options=target.store_options,
                    out=self.out,
                    err=self.err,
                    stop=self.stop,
                    **options,  # type: ignore[arg-type]
                )
            )
        )
        self.thread.start()
        [self.started] = self.err.wait_for_lines(1)

    def finish(self) -> int:
        self.stop.set()
        self.thread.join(WAIT)
        assert not self.thread.is_alive(), "tail did not stop"
        [status] = self.status
        return status

    @property
    def relay(self) -> str:
        found = re.search(r"as relay (esrc-tail-[0-9a-f]+);", self.started)
        assert found, self.started
        return found[1]


def _relay_names(target: Target) -> dict[str, int]:
    return {r.name: r.published for r in inspect(target).relays()}


def test_tail_prints_only_events_committed_after_it_started(target: Target) -> None:
    populate(target)
    follower = _Tail(target)
    assert "from the end (7 earlier events skipped)" in follower.started
    assert follower.relay in _relay_names(target)
    target.store.append_events("Order", "o-1", 1, [RawEvent("OrderPaid", b'{"paid":true}')])
    target.store.add_aggregate("Order", 7, [RawEvent("OrderPlaced", b"\x00\x01")])
    lines = follower.out.wait_for_lines(2)
    assert follower.finish() == 0
    positions = [e.position for e in inspect(target).recorded_events("Order", "o-1")]
    assert lines[0] == f'#{positions[1]} Order o-1 v2 OrderPaid {{"paid": true}}'
    assert re.fullmatch(r"#\d+ Order 7 v1 OrderPlaced 0x0001", lines[1])
    assert follower.relay not in _relay_names(target), "the private relay is forgotten"
    assert follower.err.getvalue().splitlines()[-1] == "esrc tail: stopped after 2 events"


def test_tail_from_a_relay_starts_where_it_stands_and_leaves_its_progress(
    target: Target,
) -> None:
    populate(target)
    outbox = target.store.outbox("projector")  # type: ignore[attr-defined]
    outbox.mark_events_as_published(outbox.unpublished_events(5))
    before = _relay_names(target)
    follower = _Tail(target, relay="projector")
    assert "from where relay 'projector' stands" in follower.started
    lines = follower.out.wait_for_lines(2)
    target.store.add_aggregate("Order", "o-2", [RawEvent("OrderPlaced", b"{}")])
    lines = follower.out.wait_for_lines(3)
    assert follower.finish() == 0
    assert [line.split()[1:4] for line in lines] == [
        ["Account", str(ACCOUNT_UUID), "v3"],
        ["Order", "o-1", "v1"],
        ["Order", "o-2", "v1"],
    ]
    assert _relay_names(target) == before, "only the private relay moved, and it is gone"


def test_tail_from_the_start_prints_every_event_in_outbox_order(target: Target) -> None:
    populate(target)
    follower = _Tail(target, from_start=True)
    lines = follower.out.wait_for_lines(7)
    assert follower.finish() == 0
    order = [e.position for e in target.store.outbox("x").unpublished_events(100)]  # type: ignore[attr-defined]
    assert [int(line.split()[0][1:]) for line in lines] == order
    assert _relay_names(target) == {}


def test_tail_stops_quietly_when_its_reader_goes_away(target: Target) -> None:
    class ClosedPipe(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    populate(target)
    errors = io.StringIO()
    status = tail(
        target.url, from_start=True, options=target.store_options, out=ClosedPipe(), err=errors
    )
    assert status == 0
    assert errors.getvalue().splitlines()[-1] == "esrc tail: stopped after 0 events"
    assert _relay_names(target) == {}, "the private relay is forgotten"


# --- errors -----------------------------------------------------------------------


@pytest.mark.parametrize("command", ["streams", "events", "tail", "relays"])
@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("nope://admin:s3cret@host/db", "no installed store backend handles"),
        ("not a url", "expected a URL of the form scheme://"),
        ("toy://", "cannot inspect toy://: the toy backend (esrc-toy) does not offer"),
    ],
)
def test_a_store_that_cannot_be_inspected_is_one_line_on_stderr_and_status_2(
    capsys: pytest.CaptureFixture[str], command: str, url: str, message: str
) -> None:
    """A URL no backend claims, or a backend without the ``inspect`` capability, is a
    configuration error: no retry helps."""
    plugins().backends()  # load plugins first: their own load warnings are not the CLI's
    capsys.readouterr()
    argv = [command, "--store", url, *(["Account", "42"] if command == "events" else [])]
    status, out, err = run(capsys, argv)
    assert (status, out) == (2, "")
    [line] = err.splitlines()
    assert line.startswith(f"esrc {command}: ")
    assert message in line
    assert "s3cret" not in err


def test_an_option_the_backend_does_not_take_is_one_line_on_stderr_and_status_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, out, err = run(capsys, ["streams", "memory://", "-o", "colour=blue"])
    assert (status, out) == (2, "")
    assert err.splitlines() == [
        "esrc streams: open memory:// with the memory backend: "
        "the memory store takes no options, got ['colour']"
    ]


@pytest.mark.parametrize("command", ["streams", "events", "tail", "relays"])
def test_an_unreachable_server_is_one_line_on_stderr(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """The operation was tried and failed: status 1."""
    url = "postgresql+psycopg://admin:s3cret@127.0.0.1:1/nothing"
    require_inspection(url)
    argv = [command, "--store", url, *(["Account", "42"] if command == "events" else [])]
    status, out, err = run(capsys, argv)
    assert (status, out) == (1, "")
    [line] = err.splitlines()
    assert line.startswith(f"esrc {command}: ")
    assert "127.0.0.1:1" in line
    assert "s3cret" not in err
    assert "cannot inspect" not in line, "the SQL store offers inspection"


def test_progress_is_shown_on_a_terminal_and_cleared(target: Target) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    populate(target)
    out, err = io.StringIO(), Terminal()
    assert list_streams(target.url, options=target.store_options, out=out, err=err) == 0
    assert err.getvalue().startswith("\rreading streams of ")
    assert err.getvalue().endswith("\r")
    assert out.getvalue().endswith("4 streams, 7 events\n")


@pytest.mark.parametrize("command", [["streams"], ["events", "Order", "1"], ["relays"], ["tail"]])
def test_inspecting_a_sqlite_file_that_does_not_exist_says_so_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    missing = tmp_path / "typo.db"
    status, out, err = run(capsys, [command[0], f"sqlite:///{missing}", *command[1:]])
    assert status == 2  # a URL naming nothing is a configuration error: no retry helps
    assert out == ""
    assert f"there is no SQLite database at {missing}" in err, err
    assert list(tmp_path.iterdir()) == []
