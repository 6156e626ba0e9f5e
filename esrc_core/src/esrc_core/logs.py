"""How esrc logs: its logger names, the fields its records carry, and
:func:`log_to_stderr`, which ``esrc relay`` uses, as text or as JSON lines.

esrc logs through the standard :mod:`logging` module, under these names (all below
``esrc``, so ``logging.getLogger("esrc")`` configures them together):

========================  ============================================================
``esrc.runner``           a relay runner (``esrc relay``): start, lock taken or lost,
                          standby, failed attempts and recoveries, progress, stop
``esrc.relay``            each batch published (``DEBUG``)
``esrc.metrics``          ``esrc relay --metrics-port``: where metrics are served
``esrc.repository``       snapshots skipped or failing
``esrc.plugins``          a plugin that failed to load or clashes with another
``esrc.sqlalchemy``       the SQL store's PostgreSQL notifications
``esrc.publisher``        the broker publishers (closing failures)
========================  ============================================================

Records of ``esrc.runner`` pass their values as fields (``extra=``), with these
stable names, besides the sentence in the message: ``relay`` (the relay name, on
every record), ``state``, ``events`` (events relayed so far), ``position`` (the last
position marked), ``rate`` (events per second), ``lag_events``, ``lag_seconds``,
``attempt``, ``delay`` (seconds until the next attempt), ``error`` (one line, type
first), ``error_kind`` (an :data:`~esrc_core.relay_status.ErrorKind`), ``signal``,
``seconds``. ``esrc.metrics`` records carry ``relay``, ``host`` and ``port``;
``esrc.relay`` records ``relay``, ``events`` (in the batch) and ``position`` (its last);
``esrc.repository`` records ``aggregate_type``, ``aggregate_id`` (text or a number),
and ``version`` or ``attempt``; ``esrc.plugins`` records ``plugin``, ``distribution``
and ``error``; ``esrc.sqlalchemy`` records ``channel`` and, on failures, ``error``. A
field is present only on the records it belongs to. In text lines they appear only in the
message; :class:`JsonFormatter` writes each as a key of its own.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Literal

__all__ = ["LOG_FORMATS", "JsonFormatter", "LogFormat", "log_to_stderr"]

LogFormat = Literal["text", "json"]
"""How :func:`log_to_stderr` writes records: a text line, or a JSON object per line."""

LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
"""Every :data:`LogFormat`."""

_HANDLER_NAME = "esrc.stderr"
"""The name of the root handler :func:`log_to_stderr` adds, so that a second call
replaces it."""

_TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_RECORD_ATTRIBUTES = frozenset(
    {*vars(logging.LogRecord("", 0, "", 0, "", (), None)), "message", "asctime", "taskName"}
)
"""What every log record holds; the other attributes of a record are its ``extra=``
fields."""


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object on one line: ``time`` (ISO 8601, UTC, to
    the microsecond), ``level``, ``logger``, ``message`` (with its arguments filled
    in), then each ``extra=`` field of the record under its own name, and
    ``exception`` (the traceback as text) when the record has one. A field value JSON
    cannot hold is written as its ``str()``; a field named like one of the four first
    keys is left out rather than overwrite it."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        line: dict[str, object] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and key not in line:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def log_to_stderr(level: int | str = logging.INFO, *, log_format: LogFormat = "text") -> None:
    """Log to stderr one line per record, as ``esrc relay`` does: esrc's own loggers
    from ``level`` up; other libraries' (broker and database clients) only at
    ``DEBUG`` or for ``CRITICAL`` records, since the runner already reports each
    failure, with its cause, in one line.

    ``log_format`` ``"text"`` (the default) writes time, level, logger and message;
    ``"json"`` writes each record as a JSON object (:class:`JsonFormatter`), for log
    collectors. Called again, it replaces the handler it added before instead of adding
    a second one. Raises ``ValueError`` for an unknown level or format."""
    numeric = logging.getLevelName(level) if isinstance(level, str) else level
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    if log_format not in LOG_FORMATS:
        raise ValueError(f"unknown log format {log_format!r}: expected one of {LOG_FORMATS}")
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(_TEXT))

    def only_esrc(record: logging.LogRecord) -> bool:
        return (
            numeric <= logging.DEBUG
            or record.levelno >= logging.CRITICAL
            or record.name == "esrc"
            or record.name.startswith("esrc.")
        )

    handler.addFilter(only_esrc)
    handler.name = _HANDLER_NAME
    root = logging.getLogger()
    for earlier in [h for h in root.handlers if h.name == _HANDLER_NAME]:
        root.removeHandler(earlier)  # called again (a second relay in one process)
        earlier.close()
    root.addHandler(handler)
    root.setLevel(numeric)
