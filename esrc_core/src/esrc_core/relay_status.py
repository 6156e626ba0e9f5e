"""A relay process's state as data: :class:`RelayStatus` and its JSON status file.

:class:`~esrc_core.runner.RelayRunner` builds a :class:`RelayStatus` on every change of
state and, while relaying, at most every ``status_interval`` seconds, and hands it to
its ``on_status`` callback; ``esrc relay --status-file PATH`` writes each one to
``PATH`` with :meth:`RelayStatus.write`. Tools and tests read it with
:meth:`RelayStatus.read` instead of parsing log lines, which are for people.

The file is one JSON object, replaced atomically (written to a temporary file in the
same directory, then renamed over ``PATH``), so a reader never sees half of it::

    {"format": 1, "name": "orders", "state": "relaying", "holds_lock": true,
     "took_over": false, "relayed": 1200, "last_position": 3456,
     "consecutive_failures": 0, "failed_attempts": 2, "locks_lost": 0,
     "last_error": "BrokerUnavailableError: ...", "updated_at":
     "2026-12-02T13:10:00.123456+00:00", "pid": 4242, "batches": 31,
     "last_batch_at": "2026-12-02T13:09:59.871002+00:00",
     "errors": {"store": 0, "publisher": 2, "lock": 0, "config": 0, "other": 0},
     "last_error_kind": "publisher"}

The keys after ``pid`` came later within format 1: a reader takes a file without them
(0, ``None`` or no errors).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

__all__ = ["ERROR_KINDS", "STATUS_FORMAT", "ErrorKind", "RelayStatus", "RunnerState"]

RunnerState = Literal["starting", "standby", "relaying", "retrying", "stopped"]
"""What a :class:`~esrc_core.runner.RelayRunner` is doing: ``starting`` (not yet
holding the lock), ``standby`` (another relay holds the lock), ``relaying``,
``retrying`` (waiting after a failure) or ``stopped``."""

ErrorKind = Literal["store", "publisher", "lock", "config", "other"]
"""Where a failure of a :class:`~esrc_core.runner.RelayRunner` came from:

- ``store``: the store could not be reached or failed
  (:class:`~esrc_core.errors.StoreUnavailableError`);
- ``publisher``: the broker could not be reached or refused events
  (:class:`~esrc_core.errors.BrokerUnavailableError`,
  :class:`~esrc_core.errors.PublishError`), or opening the publisher failed;
- ``lock``: another relay kept the relay lock past ``lock_timeout``
  (:class:`~esrc_core.runner.LockNotAcquiredError`; the runner stops);
- ``config``: one of :data:`~esrc_core.errors.CONFIGURATION_ERRORS` (the runner stops);
- ``other``: anything else, retried (a driver error esrc does not translate, or a bug).
"""

ERROR_KINDS: tuple[ErrorKind, ...] = get_args(ErrorKind)
"""Every :data:`ErrorKind`, in a fixed order."""

STATUS_FORMAT = 1
"""The version of the status file's layout, its ``format`` key. A reader refuses other
versions; fields are only added within one version."""

_STATES: frozenset[str] = frozenset(get_args(RunnerState))


@dataclass(frozen=True, kw_only=True)
class RelayStatus:
    """A snapshot of one relay runner's state.

    - ``name``: the relay name.
    - ``state``: a :data:`RunnerState`.
    - ``holds_lock``: whether the runner holds the store's relay lock for ``name``
      (always ``False`` on a store without relay locks, which runs unlocked).
    - ``took_over``: whether the lock it holds was taken after waiting on standby
      for another relay of the same name to stop.
    - ``relayed``: events published and marked since the runner started.
    - ``last_position``: the store position of the last event marked published, or
      ``None`` before the first.
    - ``consecutive_failures``: failed attempts since the last success (0 while all
      is well).
    - ``failed_attempts``: failed attempts since the runner started.
    - ``locks_lost``: how often the runner found it had lost the relay lock (its
      database session ended) and stopped publishing to take it again.
    - ``last_error``: the latest failure in one line (type and message), or ``None``
      if none happened; it stays after a recovery (see ``consecutive_failures``) and,
      when the runner stopped on an error, is that error.
    - ``updated_at``: when the snapshot was taken (UTC).
    - ``pid``: the process id of the runner's process.
    - ``batches``: batches published and marked since the runner started (a batch a
      failure cut short counts once for the events published before it).
    - ``last_batch_at``: when the last of them was marked (UTC), or ``None``.
    - ``errors``: failures since the runner started by :data:`ErrorKind`, every kind
      present (0 for none): the failed attempts, and the failure the runner stopped on.
    - ``last_error_kind``: the :data:`ErrorKind` of ``last_error``, or ``None``.

    :attr:`healthy` says whether all is well, as ``esrc relay``'s ``/healthz`` does.
    """

    name: str
    state: RunnerState
    holds_lock: bool
    took_over: bool
    relayed: int
    last_position: int | None
    consecutive_failures: int
    failed_attempts: int
    locks_lost: int
    last_error: str | None
    updated_at: dt.datetime
    pid: int
    batches: int = 0
    last_batch_at: dt.datetime | None = None
    errors: Mapping[ErrorKind, int] = field(
        default_factory=lambda: dict.fromkeys(ERROR_KINDS, 0), hash=False
    )
    last_error_kind: ErrorKind | None = None

    @property
    def healthy(self) -> bool:
        """Whether the relay runs and its last attempt to reach its store and its
        publisher succeeded: not ``stopped``, and no failure since the last success
        (``consecutive_failures`` is 0). Relaying and standing by are healthy; a
        runner waiting to retry after a failure, or trying again, is not."""
        return self.state != "stopped" and self.consecutive_failures == 0

    def to_json(self) -> dict[str, Any]:
        """The status as the JSON object of the status file (``format`` first)."""
        return {
            "format": STATUS_FORMAT,
            "name": self.name,
            "state": self.state,
            "holds_lock": self.holds_lock,
            "took_over": self.took_over,
            "relayed": self.relayed,
            "last_position": self.last_position,
            "consecutive_failures": self.consecutive_failures,
            "failed_attempts": self.failed_attempts,
            "locks_lost": self.locks_lost,
            "last_error": self.last_error,
            "updated_at": self.updated_at.isoformat(),
            "pid": self.pid,
            "batches": self.batches,
            "last_batch_at": None if self.last_batch_at is None else self.last_batch_at.isoformat(),
            "errors": {kind: self.errors.get(kind, 0) for kind in ERROR_KINDS},
            "last_error_kind": self.last_error_kind,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RelayStatus:
        """The status that :meth:`to_json` gave ``data``; raises ``ValueError`` for
        another ``format`` or a missing or malformed field."""
        if data.get("format") != STATUS_FORMAT:
            raise ValueError(
                f"relay status format {data.get('format')!r} is not {STATUS_FORMAT}: "
                "written by another esrc version"
            )
        try:
            state = data["state"]
            if state not in _STATES:
                raise ValueError(f"unknown relay state {state!r}")
            kind = data.get("last_error_kind")
            if kind is not None and kind not in ERROR_KINDS:
                raise ValueError(f"unknown error kind {kind!r}")
            errors = data.get("errors") or {}
            last_batch_at = data.get("last_batch_at")
            return cls(
                name=str(data["name"]),
                state=state,
                holds_lock=bool(data["holds_lock"]),
                took_over=bool(data["took_over"]),
                relayed=int(data["relayed"]),
                last_position=None if data["last_position"] is None else int(data["last_position"]),
                consecutive_failures=int(data["consecutive_failures"]),
                failed_attempts=int(data["failed_attempts"]),
                locks_lost=int(data["locks_lost"]),
                last_error=None if data["last_error"] is None else str(data["last_error"]),
                updated_at=dt.datetime.fromisoformat(data["updated_at"]),
                pid=int(data["pid"]),
                batches=int(data.get("batches", 0)),
                last_batch_at=None
                if last_batch_at is None
                else dt.datetime.fromisoformat(last_batch_at),
                errors={k: int(errors.get(k, 0)) for k in ERROR_KINDS},
                last_error_kind=kind,
            )
        except (KeyError, TypeError, AttributeError) as err:
            raise ValueError(f"malformed relay status {dict(data)!r}: {err!r}") from None

    def write(self, path: str | os.PathLike[str]) -> None:
        """Replace the file ``path`` with this status, atomically: readers see the
        previous status or this one, never a mix."""
        target = Path(path)
        temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(self.to_json()) + "\n", encoding="utf-8")
        os.replace(temporary, target)

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> RelayStatus:
        """The status in the file ``path`` (see :meth:`write`). Raises
        ``FileNotFoundError`` before the first write, ``ValueError`` for a file that is
        not a status."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not a relay status: {err}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: not a relay status: expected a JSON object")
        return cls.from_json(data)
