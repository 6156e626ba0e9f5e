"""``esrc tail``: print events as they are committed, until stopped."""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from esrc_core._signals import stop_on_signals
from esrc_core.capabilities import Capability, offered
from esrc_core.cli._arguments import (
    STORE_ENVIRONMENT,
    output_arguments,
    seconds,
    store_arguments,
    store_url,
)
from esrc_core.cli._command import Command
from esrc_core.cli._json import event_document, write_line
from esrc_core.cli._show import count, format_data, show_id
from esrc_core.cli._stores import InspectableStore, inspectable
from esrc_core.cli.console import Progress, output_width, printable, shorten
from esrc_core.errors import EsrcError, NotSupportedError
from esrc_core.relay import HasOutbox, RelayEvent, WaitingOutbox
from esrc_core.urls import mask_url

__all__ = ["COMMANDS", "TAIL_PREFIX", "tail"]

TAIL_PREFIX = "esrc-tail-"
"""How the relay names a tail reads through begin; a random suffix follows."""


def _tail_line(event: RelayEvent, width: int | None) -> str:
    aggregate_id = show_id(event.aggregate_id)
    if isinstance(event.aggregate_id, str) and (
        not aggregate_id.isprintable() or " " in aggregate_id
    ):
        aggregate_id = repr(aggregate_id)
    line = printable(
        f"#{event.position} {event.aggregate_type} {aggregate_id} v{event.version} "
        f"{event.event.name} {format_data(event.event.data)}"
    )
    return line if width is None else shorten(line, width)


class _PrivateRelay:
    """The relay name a tail reads through: it exists once something was written for
    it, and is forgotten at the end."""

    def __init__(self, store: InspectableStore, url: str) -> None:
        if (has_outbox := offered(store, Capability.OUTBOX, HasOutbox)) is None:
            raise NotSupportedError(f"cannot follow {mask_url(url)}: the store has no outbox")
        self.name = f"{TAIL_PREFIX}{secrets.token_hex(4)}"
        self.outbox = has_outbox.outbox(self.name)
        self._store = store
        self._written = False

    def start_where(self, relay: str) -> None:
        """Start where relay ``relay`` stands."""
        self._written = True
        self._store.copy_relay(relay, self.name)

    def mark(self, batch: Sequence[RelayEvent]) -> None:
        """Move past ``batch``."""
        self._written = True
        self.outbox.mark_events_as_published(batch)

    def start(
        self,
        relay: str | None,
        from_start: bool,
        batch_size: int,
        progress: Progress,
        stop: threading.Event,
    ) -> str:
        """Start where ``relay`` stands, at the first event (``from_start``), or after
        the events committed so far; return where, in words."""
        if relay is not None:
            known = {r.name for r in self._store.relays()}
            self.start_where(relay)
            if relay not in known:
                return f"from the first event (relay {relay!r} has no progress)"
            return f"from where relay {relay!r} stands"
        if from_start:
            return "from the first event"
        skipped = self.skip_to_end(batch_size, progress, stop)
        return f"from the end ({count(skipped, 'earlier event')} skipped)"

    def skip_to_end(self, batch_size: int, progress: Progress, stop: threading.Event) -> int:
        """Move past every event committed so far (until ``stop`` is set); return how
        many there were."""
        skipped = 0
        while not stop.is_set() and (batch := self.outbox.unpublished_events(batch_size)):
            self.mark(batch)
            skipped += len(batch)
            progress.update(f"skipping to the end: {skipped:,} events…")
        return skipped

    def forget(self, err: TextIO) -> None:
        """Close the outbox's own connections, if any, and forget the name; a failure
        to forget it is reported on ``err``, not raised."""
        close = getattr(self.outbox, "close", None)
        if callable(close):
            with contextlib.suppress(EsrcError):
                close()
        if not self._written:
            return
        try:
            self._store.forget_relay(self.name)
        except EsrcError as problem:
            err.write(f"esrc tail: could not forget relay {self.name}: {problem}\n")


def tail(
    url: str,
    *,
    relay: str | None = None,
    from_start: bool = False,
    poll: float = 0.5,
    batch_size: int = 500,
    options: Mapping[str, Any] | None = None,
    as_json: bool = False,
    quiet: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
    stop: threading.Event | None = None,
) -> int:
    """``esrc tail``: print events as they are committed, in outbox order, one line
    each (``#position type id vVERSION name data``; with ``as_json``, a JSON object
    per line: ``aggregate_type``, ``aggregate_id``, ``id_type``, ``version``,
    ``position``, ``recorded_at`` (``null``), ``name``, ``metadata``, ``data``), until
    ``stop`` is set, Ctrl-C or
    SIGTERM arrives (in the main thread: the batch in hand is finished first; a second
    signal acts as it would without ``tail``, so a second Ctrl-C interrupts it), or
    whoever reads ``out`` closes it (a broken pipe). Returns 0 then.

    It reads through a relay name of its own, ``esrc-tail-<random>``, that starts where
    relay ``relay`` stands (when given; never changing that relay's progress), at the
    first event (``from_start``), or else after the events committed so far. The
    private name is forgotten on the way out; a tail killed outright leaves it behind
    (``esrc relays`` lists it). When the outbox offers the ``wait`` capability
    (:class:`~esrc_core.relay.WaitingOutbox`) it waits with ``wait_for_events``, up to
    ``poll`` seconds at a time, else it polls every ``poll`` seconds. The lines on
    ``err`` saying where it starts and how many events it showed are left out when
    ``quiet``. Raises
    :class:`~esrc_core.errors.NotSupportedError` for a store without inspection
    or without an outbox.
    """
    if relay is not None and from_start:
        raise ValueError("tail: give relay or from_start, not both")
    if poll <= 0 or batch_size < 1:
        raise ValueError(f"tail: poll ({poll}) and batch_size ({batch_size}) must be positive")
    out, err = out or sys.stdout, err or sys.stderr
    stop = stop or threading.Event()
    shown = 0
    with inspectable(url, options) as store:
        private = _PrivateRelay(store, url)
        try:
            progress_line = Progress(err, enabled=not quiet)
            with stop_on_signals(lambda _: stop.set()), progress_line as progress:
                start = private.start(relay, from_start, batch_size, progress, stop)
                progress.clear()
                if not quiet:
                    err.write(
                        f"esrc tail: following {mask_url(url)} {start} as relay "
                        f"{private.name}; Ctrl-C stops\n"
                    )
                    err.flush()
                waiting = offered(private.outbox, Capability.WAIT, WaitingOutbox)
                wait = waiting.wait_for_events if waiting is not None else stop.wait
                width = output_width(out)
                while not stop.is_set():
                    batch = private.outbox.unpublished_events(batch_size)
                    if not batch:
                        wait(poll)
                        continue
                    for event in batch:
                        if as_json:
                            write_line(out, _tail_document(event))
                        else:
                            out.write(_tail_line(event, width) + "\n")
                    out.flush()
                    shown += len(batch)
                    private.mark(batch)
        except KeyboardInterrupt:
            pass
        except BrokenPipeError:  # whoever read the output is gone: `esrc tail | head`
            _discard_output(out)
        finally:
            private.forget(err)
    if not quiet:
        err.write(f"esrc tail: stopped after {count(shown, 'event')}\n")
    return 0


def _tail_document(event: RelayEvent) -> dict[str, Any]:
    return event_document(
        event.event,
        version=event.version,
        position=event.position,
        stream=(event.aggregate_type, event.aggregate_id),
    )


def _discard_output(out: TextIO) -> None:
    """Point standard output, if ``out`` is it, at the null device, so that flushing it
    at exit does not fail a second time on the closed pipe."""
    if out is sys.stdout:
        with contextlib.suppress(OSError, ValueError):
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, out.fileno())
            os.close(null)


def _tail(args: argparse.Namespace) -> int:
    return tail(
        store_url(args),
        relay=args.relay,
        from_start=args.from_start,
        poll=args.poll_interval,
        options=dict(args.store_option),
        as_json=args.json,
        quiet=args.quiet,
    )


def _tail_arguments(parser: argparse.ArgumentParser) -> None:
    store_arguments(parser)
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--relay", metavar="NAME", help="start where relay NAME stands")
    start.add_argument("--from-start", action="store_true", help="start at the first event")
    parser.add_argument(
        "--poll-interval",
        "--poll",
        type=seconds,
        default=0.5,
        metavar="S",
        help="seconds to wait for new events before looking again (default 0.5)",
    )
    output_arguments(parser, json_help="print each event as a line of JSON (JSON lines)")


COMMANDS = (
    Command(
        "tail",
        "print events as they are committed, until Ctrl-C",
        _tail_arguments,
        _tail,
        STORE_ENVIRONMENT,
        "Print events as they are committed, in the order a relay publishes them, one\n"
        "line each, until Ctrl-C. Starts after the events committed so far, at the first\n"
        "event (--from-start), or where a relay stands (--relay NAME).",
    ),
)
"""``esrc tail``."""
