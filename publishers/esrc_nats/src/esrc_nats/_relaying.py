"""The JetStream store's outbox and relay locks.

The outbox order is the stream's own sequence: the server assigns it when it stores a
message (an atomic batch gets consecutive sequences when it commits), so no event ever
appears below a sequence already handed out and "the last position relayed" is a
complete checkpoint. A relay's checkpoint is one key of a replicated KV bucket, moved
forward by compare-and-set. A relay lock is a key of another bucket whose entries expire
after the lock's time to live: the holder renews its key by compare-and-set a few times
per time to live; a holder that dies stops renewing, and its key expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from esrc_core.relay import RelayEvent
from esrc_core.store import INT64_MAX, check_int

from esrc_nats._messages import (
    DELETED,
    HEAD,
    Message,
    Watermark,
    b64,
    direct_get,
    raw_event,
    stream_of,
)

__all__ = ["Link", "NatsOutbox", "NatsRelayLock", "checkpoint_key", "read_checkpoint"]

T = TypeVar("T")

_PAGE = 1000
"""Messages asked for by one batched direct get."""


@dataclass(frozen=True)
class Link:
    """What the outbox and the locks need of their store: ``run`` runs a coroutine on
    the store's event loop and translates its errors (``run(coro, doing)``), ``nc`` is
    the client on that loop, ``events`` the subjects of every stream's events."""

    run: Callable[[Coroutine[Any, Any, Any], str], Any]
    nc: Any
    stream: str
    events: str
    timeout: float
    watermark: Watermark

    def call(self, coro: Coroutine[Any, Any, T], doing: str) -> T:
        """``run`` with its result typed."""
        result: T = self.run(coro, doing)
        return result

    async def read(self, start: int, limit: int) -> list[Message]:
        """Up to ``limit`` events from stream sequence ``start`` on, in sequence order."""
        found: list[Message] = []
        while len(found) < limit:
            page = await direct_get(
                self.nc,
                self.stream,
                self.events,
                start,
                min(limit - len(found), _PAGE),
                watermark=self.watermark,
                timeout=self.timeout,
            )
            found.extend(page)
            if not page or page[-1].headers.get("Nats-Num-Pending") == "0":
                break
            start = page[-1].seq + 1
        return found


def checkpoint_key(name: str) -> str:
    """The KV key of relay ``name``'s checkpoint (and of its lock)."""
    return "r" + b64(name)


async def read_checkpoint(checkpoints: Any, name: str) -> tuple[int, int]:
    """(position, KV revision) of relay ``name``; (0, 0) when it has none."""
    from nats.js.errors import KeyNotFoundError

    try:
        entry = await checkpoints.get(checkpoint_key(name))
    except KeyNotFoundError:
        return 0, 0
    if not entry.value:
        return 0, int(entry.revision or 0)
    return int(json.loads(entry.value)["position"]), int(entry.revision or 0)


async def write_checkpoint(checkpoints: Any, name: str, position: int) -> None:
    """Move relay ``name``'s checkpoint to ``position`` unless it is already there or
    beyond (compare-and-set on the key's revision, so progress never goes back)."""
    from nats.js.errors import KeyWrongLastSequenceError

    value = json.dumps({"position": position}).encode()
    while True:
        current, revision = await read_checkpoint(checkpoints, name)
        if current >= position:
            return
        try:
            if revision:
                await checkpoints.update(checkpoint_key(name), value, last=revision)
            else:
                await checkpoints.create(checkpoint_key(name), value)
            return
        except KeyWrongLastSequenceError:
            await asyncio.sleep(0.005)  # another writer, or a replica's stale answer


def _relay_event(message: Message) -> RelayEvent:
    aggregate_type, aggregate_id = stream_of(message.subject)
    return RelayEvent(
        aggregate_type,
        aggregate_id,
        message.version,
        message.seq,
        raw_event(message.headers, message.data),
    )


def _events(messages: list[Message]) -> list[RelayEvent]:
    """The events among ``messages``: not the tombstones of deleted streams or the head
    markers of truncated ones, nor the events before a tombstone of their stream among
    them (the deletion's purge of its stream had not run when they were read)."""
    deleted = {m.subject for m in messages if DELETED in m.headers}
    return [_relay_event(m) for m in messages if m.subject not in deleted and HEAD not in m.headers]


class NatsOutbox:
    """Relay ``name``'s outbox on a JetStream store: the events after its checkpoint,
    in stream sequence order (see the module's docstring). Made by
    :meth:`esrc_nats.store.NatsEventStore.outbox`; offers reading ahead and waiting."""

    def __init__(self, name: str, link: Link, checkpoints: Any) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a relay name must be a non-empty str, got {name!r}")
        self._name = name
        self._link = link
        self._checkpoints = checkpoints
        self._handed_out = 0
        self._marked = 0
        self._signal = threading.Event()
        self._watching = False

    @property
    def name(self) -> str:
        """See :attr:`esrc_core.relay.EventStoreOutbox.name`."""
        return self._name

    def _read(self, after: int, limit: int, doing: str) -> list[RelayEvent]:
        check_int(limit, "limit", doing=doing, minimum=1, maximum=INT64_MAX)

        async def read() -> list[RelayEvent]:
            start = after
            if start < 0:  # the checkpoint, never below what this outbox marked
                start = max((await read_checkpoint(self._checkpoints, self._name))[0], self._marked)
            while True:  # past pages of tombstones alone
                messages = await self._link.read(start + 1, limit)
                events = _events(messages)
                if events or not messages:
                    return events
                start = messages[-1].seq

        events = self._link.call(read(), doing)
        if events:
            self._handed_out = max(self._handed_out, events[-1].position)
        return events

    def unpublished_events(self, limit: int) -> list[RelayEvent]:
        """See :meth:`esrc_core.relay.EventStoreOutbox.unpublished_events`: the events
        after the checkpoint, by stream sequence."""
        return self._read(-1, limit, f"read the outbox of relay {self._name!r}")

    def unpublished_events_after(self, event: RelayEvent, limit: int) -> list[RelayEvent]:
        """See :meth:`esrc_core.relay.ReadAheadOutbox.unpublished_events_after`."""
        doing = f"read the outbox of relay {self._name!r} after position {event.position}"
        if not 1 <= event.position <= self._handed_out:
            raise ValueError(f"{doing}: this outbox never handed that event out")
        return self._read(event.position, limit, doing)

    def mark_events_as_published(self, events: Sequence[RelayEvent]) -> None:
        """See :meth:`esrc_core.relay.EventStoreOutbox.mark_events_as_published`."""
        if not events:
            return
        position = events[-1].position
        self._link.call(
            write_checkpoint(self._checkpoints, self._name, position),
            f"mark relay {self._name!r} published up to position {position}",
        )
        # A replica's answer to the next checkpoint read may lag: remember it here.
        self._marked = max(self._marked, position)

    def wait_for_events(self, timeout: float) -> bool:
        """See :meth:`esrc_core.relay.WaitingOutbox.wait_for_events`: a subscription
        to the events' subjects wakes it when a message is published."""
        doing = f"wait for events for relay {self._name!r}"
        if not self._watching:

            async def watch() -> None:
                async def wake(_msg: Any) -> None:
                    self._signal.set()

                await self._link.nc.subscribe(self._link.events, cb=wake)

            self._link.call(watch(), doing)
            self._watching = True
        self._signal.clear()
        if self._read(-1, 1, doing):
            return True
        return self._signal.wait(timeout)


class NatsRelayLock:
    """Relay ``name``'s lock on a JetStream store: a key of a bucket whose entries
    expire after ``ttl`` seconds (see the module's docstring). Made by
    :meth:`esrc_nats.store.NatsEventStore.relay_lock`.

    :meth:`held` is ``False`` once a renewal was refused (another holder took the key
    after it expired) or when no renewal was acknowledged for ``ttl`` seconds (the
    key may have expired on the server meanwhile).
    """

    def __init__(self, name: str, link: Link, locks: Any, ttl: float) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a relay name must be a non-empty str, got {name!r}")
        self._name = name
        self._link = link
        self._locks = locks
        self.ttl = ttl
        self._key = checkpoint_key(name)
        self.holder = f"{socket.gethostname()} pid {os.getpid()} lock {uuid.uuid4().hex[:8]}"
        """How this lock's holder is described to others (the console's relays page)."""
        self._value = json.dumps({"holder": self.holder}).encode()
        self._revision = 0
        self._renewed = 0.0
        self._lost = False
        self._renewing: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        """See :attr:`esrc_core.locks.RelayLock.name`."""
        return self._name

    def held(self) -> bool:
        """See :meth:`esrc_core.locks.RelayLock.held`."""
        return self._revision > 0 and not self._lost and time.monotonic() - self._renewed < self.ttl

    def acquire(self, timeout: float = 0.0) -> bool:
        """See :meth:`esrc_core.locks.RelayLock.acquire`."""
        if self.held():
            return True
        doing = f"take the lock of relay {self._name!r}"
        deadline = time.monotonic() + timeout
        while True:
            if self._link.call(self._take(), doing):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(0.05, left))

    async def _take(self) -> bool:
        from nats.js.errors import KeyWrongLastSequenceError

        await self._stop_renewing()
        sent = time.monotonic()
        try:
            self._revision = await self._locks.create(self._key, self._value)
        except KeyWrongLastSequenceError:
            self._revision = 0
            return False
        self._renewed, self._lost = sent, False
        self._renewing = asyncio.get_running_loop().create_task(self._renew())
        return True

    async def _renew(self) -> None:
        from nats.js.errors import KeyWrongLastSequenceError

        while True:
            await asyncio.sleep(self.ttl / 4)
            sent = time.monotonic()
            try:
                self._revision = await self._locks.update(
                    self._key, self._value, last=self._revision
                )
                self._renewed = sent
            except KeyWrongLastSequenceError:
                self._lost = True
                return
            except Exception:
                continue

    async def _stop_renewing(self) -> None:
        task, self._renewing = self._renewing, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def release(self) -> None:
        """See :meth:`esrc_core.locks.RelayLock.release`."""
        if not self._revision and self._renewing is None:
            return

        async def give_up() -> None:
            from nats.js.errors import KeyWrongLastSequenceError

            await self._stop_renewing()
            revision, self._revision = self._revision, 0
            if revision and not self._lost:
                # it may have expired, and another holder have it now
                with contextlib.suppress(KeyWrongLastSequenceError):
                    await self._locks.delete(self._key, last=revision)

        self._link.call(give_up(), f"release the lock of relay {self._name!r}")


async def lock_holder(locks: Any, name: str) -> str | None:
    """Who holds relay ``name``'s lock (its holder's description), ``None`` if free."""
    from nats.js.errors import KeyNotFoundError

    try:
        entry = await locks.get(checkpoint_key(name))
    except KeyNotFoundError:
        return None
    if not entry.value:
        return None
    return str(json.loads(entry.value)["holder"])
