"""How esrc logs: JSON lines with the records' values as keys, ``log_to_stderr`` in
both formats, and every logger name esrc uses documented."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from esrc_core.logs import JsonFormatter, log_to_stderr

from esrc_core import logs

ROOT = Path(__file__).resolve().parents[2]


def _record(**extra: object) -> logging.LogRecord:
    record = logging.getLogger("esrc.runner").makeRecord(
        "esrc.runner",
        logging.WARNING,
        __file__,
        1,
        "relay %s: attempt %d failed",
        ("orders", 3),
        None,
        extra=extra,
    )
    record.created = 1_800_000_000.25
    return record


def test_a_json_line_has_the_message_and_each_extra_field_as_a_key() -> None:
    line = JsonFormatter().format(
        _record(relay="orders", attempt=3, delay=0.4, error_kind="store", when=Path("/x"))
    )
    assert "\n" not in line
    assert json.loads(line) == {
        "time": "2027-01-15T08:00:00.250000+00:00",
        "level": "WARNING",
        "logger": "esrc.runner",
        "message": "relay orders: attempt 3 failed",
        "relay": "orders",
        "attempt": 3,
        "delay": 0.4,
        "error_kind": "store",
        "when": "/x",
    }


def test_a_json_line_keeps_its_own_keys_and_carries_the_traceback() -> None:
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        record = _record(level="shadowed", relay="orders")
        record.exc_info = sys.exc_info()
    data = json.loads(JsonFormatter().format(record))
    assert data["level"] == "WARNING"
    assert data["relay"] == "orders"
    assert data["exception"].startswith("Traceback (most recent call last):")
    assert data["exception"].endswith("ValueError: bad\nthing")


@pytest.fixture
def root_handlers() -> Iterator[None]:
    """Take away the handlers ``log_to_stderr`` adds to the root logger."""
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    yield
    for handler in root.handlers[:]:
        if handler not in before:
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.mark.usefixtures("root_handlers")
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_log_to_stderr_writes_esrc_records_in_the_format_asked(
    capsys: pytest.CaptureFixture[str], log_format: logs.LogFormat
) -> None:
    log_to_stderr("INFO", log_format=log_format)
    logging.getLogger("esrc.runner").info("relay %s: starting", "orders", extra={"relay": "orders"})
    logging.getLogger("some.driver").info("chatter from another library")
    [line] = capsys.readouterr().err.splitlines()
    if log_format == "text":
        assert re.fullmatch(r"\S+ \S+ INFO esrc\.runner: relay orders: starting", line), line
    else:
        data = json.loads(line)
        assert (data["logger"], data["message"], data["relay"]) == (
            "esrc.runner",
            "relay orders: starting",
            "orders",
        )


def test_an_unknown_format_or_level_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown log format 'xml'"):
        log_to_stderr("INFO", log_format="xml")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown log level 'LOUD'"):
        log_to_stderr("LOUD")


def _logger_names() -> set[str]:
    """Every logger name esrc's distributions log to (``log = logging.getLogger(...)``)."""
    names: set[str] = set()
    for tree in ("esrc_core/src", "esrc_memory/src", "esrc_sqlalchemy/src", "publishers"):
        for path in (ROOT / tree).rglob("*.py"):
            if ".venv" in path.parts:
                continue
            text = path.read_text(encoding="utf-8")
            names.update(re.findall(r"= logging\.getLogger\(\"(esrc(?:\.[a-z_]+)*)\"\)", text))
    return names


def test_every_logger_name_is_documented() -> None:
    """The logger names are part of what operators configure: each one esrc uses is
    in the ``esrc_core.logs`` docstring and in the table of docs/relay.md."""
    names = _logger_names()
    assert {"esrc.runner", "esrc.relay", "esrc.metrics"} <= names, names
    docs = (ROOT / "docs/relay.md").read_text(encoding="utf-8")
    assert logs.__doc__ is not None
    for name in sorted(names):
        assert f"``{name}``" in logs.__doc__, f"{name} is not in the esrc_core.logs docstring"
        assert f"| `{name}` |" in docs, f"{name} is not in the loggers table of docs/relay.md"


def test_the_relay_and_the_repository_pass_their_values_as_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A relayed batch's record carries ``relay``, ``events`` and ``position``; a
    repository's skipped snapshot carries ``aggregate_type``, ``aggregate_id`` and
    ``version`` (what a JSON log line shows as keys of its own)."""
    from dataclasses import dataclass

    from esrc_core import EventRaiserAggregate, EventRegistry, Relay, Repository
    from esrc_memory import MemoryEventStore, MemoryPublisher

    registry = EventRegistry()

    @registry.register
    @dataclass(frozen=True)
    class Noted:
        note_id: int

    class Note(EventRaiserAggregate):
        def __init__(self, note_id: int) -> None:
            super().__init__()
            self.raise_event(Noted(note_id))

        def on_event(self, event: object) -> None:
            if isinstance(event, Noted):
                self.id = event.note_id

    store = MemoryEventStore()
    repository = Repository(store, Note, registry, snapshot_every=1)
    with caplog.at_level(logging.DEBUG, logger="esrc"):
        repository.add(Note(7))
        Relay(store.outbox("fields"), MemoryPublisher()).run_once()
    [skipped] = [r for r in caplog.records if r.name == "esrc.repository"]
    fields = vars(skipped)
    assert (fields["aggregate_type"], fields["aggregate_id"], fields["version"]) == ("Note", 7, 1)
    [relayed] = [r for r in caplog.records if r.name == "esrc.relay"]
    fields = vars(relayed)
    assert (fields["relay"], fields["events"], fields["position"]) == ("fields", 1, 1)


@pytest.mark.usefixtures("root_handlers")
def test_log_to_stderr_called_again_replaces_its_handler(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A second relay in one process (or ``main(["relay", ...])`` run twice) logs
    each record once, in the format asked last."""
    log_to_stderr("INFO")
    log_to_stderr("INFO", log_format="json")
    logging.getLogger("esrc.runner").info("relay %s: starting", "orders")
    [line] = capsys.readouterr().err.splitlines()
    assert json.loads(line)["message"] == "relay orders: starting"
