"""An event store on a NATS JetStream stream.

One stream holds every event; each aggregate's events are the messages of one subject,
``<prefix>.<type>.<id>`` (the id is base64url-encoded, and so is a type that is not a
plain subject token, behind a ``~``). A stream's version is the number of messages on
its subject; each message carries its version in the ``Esrc-Version`` header.

Concurrency is the server's: an append reads the subject's last message, compares its
version with the expected one, and publishes with ``Nats-Expected-Last-Subject-Sequence``
set to that message's stream sequence, so a writer that appended in between makes the
server refuse the publish (:class:`~esrc_core.errors.OptimisticConcurrencyError`). An
append of several events is one atomic batch (``Nats-Batch-Id``, server 2.12 or later
with ``allow_atomic`` on the stream): all of it is stored, or nothing. On an older
server such an append is refused with :class:`~esrc_core.errors.NotSupportedError`
before anything is published; single events still work.

Snapshots live in a KV bucket, one key per stream. The outbox follows the stream's
sequence; relay checkpoints and relay locks live in KV buckets of their own (see
:mod:`esrc_nats._relaying`). The store is synchronous: nats-py runs on an event loop in
a thread of the store's own.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

from esrc_core.atomic_appends import StreamAppend, check_appends
from esrc_core.errors import (
    AggregateAlreadyExists,
    AggregateNotFound,
    AggregateRequiresEvents,
    BackendConfigError,
    EsrcError,
    EventsTruncatedError,
    InvalidAggregateIdError,
    InvalidEventError,
    NotSupportedError,
    OptimisticConcurrencyError,
    SnapshotVersionError,
    StoreClosedError,
    StoreUnavailableError,
    StreamDeletedError,
)
from esrc_core.events import RawEvent, RawSnapshot, check_events
from esrc_core.ids import AggregateId, check_aggregate_type, check_id, encode_id
from esrc_core.inspection import RecordedEvent, RelayProgress, StreamInfo
from esrc_core.store import INT64_MAX, EventStore, check_int, check_page_size
from esrc_core.urls import mask_url

from esrc_nats._messages import (
    DELETED,
    HEAD,
    Message,
    Watermark,
    direct_get,
    direct_last,
    event_headers,
    raw_event,
    recorded_at,
    stream_of,
    subject,
    unb64,
)
from esrc_nats._relaying import (
    Link,
    NatsOutbox,
    NatsRelayLock,
    checkpoint_key,
    lock_holder,
    read_checkpoint,
)

__all__ = ["NatsEventStore"]

T = TypeVar("T")

_NAME = re.compile(r"[A-Za-z0-9_-]+")
"""A JetStream stream or bucket name, and a subject token of the prefix."""
_MAX_SUBJECT = 3800
"""The longest subject the store publishes: the NATS protocol's control line (a
message's subject, reply subject and sizes) is at most 4,096 bytes by default."""
_CONFIG_REFUSALS = frozenset({10074})
"""Server errors besides the 4xx ones that say the configuration asked for cannot be
made (10074: more than one replica on a server that is not in a cluster)."""
_READ_BATCH = 1000
"""Messages asked for by one batched direct get."""
_WRONG_LAST_SEQUENCE = frozenset({10071, 10164})
"""JetStream's error codes for a publish whose expected last subject sequence is wrong."""
_EXPECTED = "Nats-Expected-Last-Subject-Sequence"
_IN_FLIGHT = 10164
"""The one a clustered stream gives while another message on the subject is still being
replicated (and for a moment after the leader applied it): nothing was stored, and the
same publish is decided once that message is applied, so it is sent again."""
_IN_FLIGHT_PAUSE = 0.005
"""Seconds between publishes refused with :data:`_IN_FLIGHT`."""


@dataclass(frozen=True, slots=True)
class _Head:
    """A subject's last message: the stream's version, its stream sequence, and whether
    it is a tombstone (the stream was deleted)."""

    version: int
    seq: int
    deleted: bool


_OPTIONS = frozenset(
    {"stream", "prefix", "replicas", "storage", "bucket", "timeout", "max_batch", "lock_ttl"}
    | {"create"}
)
"""The options the store takes, in its URL's query string or as keyword arguments."""


def _numbers(
    query: dict[str, str], bad: Callable[[str, str], BackendConfigError]
) -> dict[str, float]:
    """The numeric options of ``query`` (defaults filled in), each checked to be a
    finite number above 0 and within its bound; ``bad(option, why)`` makes the error."""
    numbers: dict[str, float] = {}
    for option, default, whole, most in (
        ("replicas", "1", True, 5),
        ("max_batch", "1000", True, INT64_MAX),
        ("timeout", "5", False, 3600),
        ("lock_ttl", "10", False, 86400),
    ):
        query.setdefault(option, default)
        try:
            number = int(query[option]) if whole else float(query[option])
        except ValueError:
            raise bad(option, "not a number") from None
        if not (math.isfinite(number) and 0 < number <= most):
            raise bad(option, f"must be above 0 and at most {most}")
        numbers[option] = number
    return numbers


class NatsEventStore(EventStore):
    """An :class:`~esrc_core.store.EventStore` on JetStream (see the module's docstring).

    ``NatsEventStore(url)`` with ``nats://host:port[,host:port...]?stream=ESRC&prefix=esrc``
    and the options: ``replicas`` (of the stream and buckets it creates; default 3 when
    the URL names several servers, else 1), ``storage`` (``file``, the default, or
    ``memory``: where the servers keep the stream and buckets the store creates; memory
    does not survive a server's restart), ``bucket`` (the snapshot bucket, default
    ``<stream>_snapshots``), ``timeout`` (seconds, default 5), ``max_batch`` (the most
    events one append may hold, default 1000, the server's default
    ``jetstream.limits.batch.max_msgs``: raise both together) and ``lock_ttl`` (seconds
    a dead relay's lock stays taken, default 10). The stream and the buckets
    (``<stream>_snapshots``, ``<stream>_relays``, ``<stream>_locks``) are created when
    missing (unless ``create=false``, as the inspection commands open it: then a missing
    one is a :class:`~esrc_core.errors.BackendConfigError`); a stream that exists with
    another subject, another replica count than the
    one asked for, or without direct gets raises
    :class:`~esrc_core.errors.BackendConfigError`.
    """

    def __init__(self, url: str, **options: Any) -> None:
        self.url = url
        shown = mask_url(url)
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        query.update({key: str(value) for key, value in options.items()})
        unknown = set(query) - _OPTIONS
        if unknown:
            raise BackendConfigError(
                f"open {shown!r}: unknown options {sorted(unknown)}; known: {sorted(_OPTIONS)}"
            )

        def bad(option: str, why: str) -> BackendConfigError:
            return BackendConfigError(f"open {shown!r}: {option}={query[option]!r}: {why}")

        for option, value in query.items():
            if not value.strip():
                raise bad(option, "an empty value")
        self._servers = [f"nats://{host}" for host in (parts.netloc or "127.0.0.1:4222").split(",")]
        self.stream = query.get("stream", "ESRC")
        self.prefix = query.get("prefix", "esrc")
        self.bucket = query.get("bucket", f"{self.stream}_snapshots")
        for option, value in (("stream", self.stream), ("bucket", self.bucket)):
            if not _NAME.fullmatch(value):
                raise BackendConfigError(
                    f"open {shown!r}: {option} {value!r} is not a JetStream name (letters, "
                    "digits, '_' and '-')"
                )
        if not all(_NAME.fullmatch(token) for token in self.prefix.split(".")):
            raise bad("prefix", "not subject tokens of letters, digits, '_' and '-' joined by '.'")
        create = query.get("create", "true").lower()
        if create not in {"true", "false", "1", "0", "yes", "no"}:
            raise bad("create", "true (the default) or false")
        self._create = create in {"true", "1", "yes"}
        self.storage = query.get("storage", "file")
        if self.storage not in {"file", "memory"}:
            raise bad("storage", "'file' (the default) or 'memory'")
        self._replicas_asked = "replicas" in query
        self._lock_ttl_asked = "lock_ttl" in query
        query.setdefault("replicas", "3" if len(self._servers) > 1 else "1")
        numbers = _numbers(query, bad)
        self.replicas = int(numbers["replicas"])
        self.max_batch = int(numbers["max_batch"])
        self.timeout = numbers["timeout"]
        self.lock_ttl = numbers["lock_ttl"]
        self._closed = False
        self._seen = Watermark()
        self._outboxes: dict[str, NatsOutbox] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        try:
            self._run(self._open(), f"open {shown!r}")
        except BaseException:
            self._stop_loop()
            raise

    def __repr__(self) -> str:
        return f"NatsEventStore({mask_url(self.url)!r})"

    @property
    def atomic_batches(self) -> bool:
        """Whether appends of several events are published as one atomic batch (the
        server is 2.12 or later and the stream allows atomic publish); when false,
        such appends raise :class:`~esrc_core.errors.NotSupportedError`."""
        return self._batches

    # -- the loop --------------------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, T], doing: str) -> T:
        if self._closed:
            coro.close()
            raise StoreClosedError(f"{doing}: the store {self!r} is closed")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout=self.timeout * 4)
        except EsrcError:
            raise
        except (OSError, TimeoutError) as error:
            future.cancel()
            raise StoreUnavailableError(f"{doing}: NATS did not answer: {error}") from error
        except Exception as error:
            import nats.errors

            if isinstance(error, nats.errors.Error):
                raise StoreUnavailableError(f"{doing}: {type(error).__name__}: {error}") from error
            raise

    def _stop_loop(self) -> None:
        """Cancel what nats-py still runs on the loop, then stop and close it."""

        async def cancel_tasks() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(cancel_tasks(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()

    async def _open(self) -> None:
        import nats
        from nats.js.api import KeyValueConfig, StorageType, StreamConfig
        from nats.js.errors import APIError, BucketNotFoundError, NotFoundError

        async def ignore(err: Exception) -> None:
            """Errors reach the caller through the calls that fail."""

        self._nc = await nats.connect(
            self._servers,
            connect_timeout=max(1, round(self.timeout)),
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.2,
            error_cb=ignore,
        )
        version = tuple(
            int(n) for n in re.findall(r"\d+", str(self._nc.connected_server_version))[:2]
        )
        self._batches = version >= (2, 12)
        self._batch_reads = version >= (2, 11)
        self._js = self._nc.jetstream(timeout=self.timeout)
        self._leader_reads = self.replicas > 1
        shown = mask_url(self.url)

        async def create(what: str, made: Coroutine[Any, Any, T]) -> T:
            if not self._create:
                made.close()
                raise BackendConfigError(
                    f"open {shown!r}: {what} does not exist, and create=false makes nothing"
                )
            try:
                return await made
            except APIError as error:
                if (error.code is not None and 400 <= error.code < 500) or (
                    error.err_code in _CONFIG_REFUSALS
                ):
                    raise BackendConfigError(
                        f"open {shown!r}: the server refused to create {what}: "
                        f"{error.description} (error {error.err_code})"
                    ) from None
                raise

        try:
            info = await self._js.stream_info(self.stream)
        except NotFoundError:
            config = StreamConfig(
                name=self.stream,
                subjects=[f"{self.prefix}.>"],
                num_replicas=self.replicas,
                storage=StorageType(self.storage),
                allow_direct=True,
            )
            if self._batches:
                config.allow_atomic = True
            await create(f"stream {self.stream!r}", self._js.add_stream(config))
        else:
            self._check_stream(info.config)
            self._batches = self._batches and bool(info.config.allow_atomic)
            self._leader_reads = (info.config.num_replicas or 1) > 1

        async def bucket(name: str, **config: Any) -> Any:
            try:
                return await self._js.key_value(name)
            except BucketNotFoundError:
                return await create(
                    f"bucket {name!r}",
                    self._js.create_key_value(
                        KeyValueConfig(
                            bucket=name,
                            replicas=self.replicas,
                            history=1,
                            storage=StorageType(self.storage),
                            **config,
                        )
                    ),
                )

        self._buckets = (self.bucket, f"{self.stream}_relays", f"{self.stream}_locks")
        self._kv = await bucket(self.bucket)
        self._relays = await bucket(self._buckets[1])
        self._locks = await bucket(self._buckets[2], ttl=self.lock_ttl)
        ttl = (await self._locks.status()).ttl
        if ttl and abs(ttl - self.lock_ttl) > 0.001:
            if self._lock_ttl_asked:
                raise BackendConfigError(
                    f"open {shown!r}: the lock bucket {self._buckets[2]} exists with a "
                    f"time to live of {ttl} s, not lock_ttl={self.lock_ttl}"
                )
            self.lock_ttl = ttl
        self._link = Link(
            self._run, self._nc, self.stream, f"{self.prefix}.>", self.timeout, self._seen
        )

    def _check_stream(self, config: Any) -> None:
        """Raise :class:`~esrc_core.errors.BackendConfigError` when the existing stream
        cannot hold this store's events as the store reads them."""
        doing = f"open {mask_url(self.url)!r}: stream {self.stream!r} exists"
        subjects = list(config.subjects or [])
        if f"{self.prefix}.>" not in subjects:
            raise BackendConfigError(
                f"{doing} with subjects {subjects}, not {self.prefix + '.>'!r}: choose "
                "another stream name or the prefix it was made with"
            )
        if not config.allow_direct:
            raise BackendConfigError(
                f"{doing} without allow_direct: the store reads by direct gets"
            )
        if self._replicas_asked and config.num_replicas != self.replicas:
            raise BackendConfigError(
                f"{doing} with {config.num_replicas} replicas, not replicas={self.replicas}"
            )
        retention = getattr(config.retention, "value", config.retention)
        discards = getattr(config.discard, "value", config.discard) in {None, "old"}
        limits = {
            "retention": retention not in {None, "limits"},
            "max_age": (config.max_age or 0) > 0,
            "max_msgs_per_subject": (config.max_msgs_per_subject or 0) > 0,
            "max_msgs": discards and (config.max_msgs or 0) > 0,
            "max_bytes": discards and (config.max_bytes or 0) > 0,
        }
        deleting = [name for name, found in limits.items() if found]
        if deleting:
            raise BackendConfigError(
                f"{doing} with limits that delete stored messages ({', '.join(deleting)}): "
                "an event store keeps every event"
            )

    # -- subjects and messages -------------------------------------------------------

    def subject(self, aggregate_type: str, aggregate_id: AggregateId) -> str:
        """The subject of a stream's events."""
        return subject(self.prefix, aggregate_type, aggregate_id)

    def _check(self, aggregate_type: str, aggregate_id: AggregateId, doing: str) -> str:
        if self._closed:
            raise StoreClosedError(f"{doing}: the store {self!r} is closed")
        check_aggregate_type(aggregate_type, doing=doing)
        found = self.subject(aggregate_type, check_id(aggregate_id, doing=doing))
        if len(found) > _MAX_SUBJECT:
            raise InvalidAggregateIdError(
                f"{doing}: the type and id make a subject of {len(found)} bytes, over the "
                f"{_MAX_SUBJECT} the NATS protocol lets the store publish"
            )
        return found

    async def _last_message(self, subject_: str) -> Message | None:
        """The subject's last message, ``None`` when it has none. On a replicated stream
        it is asked of the stream's leader: a direct get may be answered by a follower
        that has not applied an acknowledged write yet (nats-server 2.15 answers even
        when asked for a ``min_last_seq`` it has not reached)."""
        if self._leader_reads:
            from nats.js.errors import NotFoundError

            try:
                raw = await self._from_leader(
                    self._js.get_last_msg, self.stream, subject_, direct=False
                )
            except NotFoundError:
                return None
            found = Message(int(raw.seq or 0), subject_, dict(raw.headers or {}), raw.data or b"")
            self._seen.see(found.seq)
            return found
        return await direct_last(
            self._nc, self.stream, subject_, watermark=self._seen, timeout=self.timeout
        )

    async def _last(self, subject_: str) -> _Head:
        """The subject's head: the version and stream sequence of its last message and
        whether that is a tombstone; version and sequence 0 for no message."""
        msg = await self._last_message(subject_)
        if msg is None:
            return _Head(0, 0, deleted=False)
        headers = msg.headers or {}
        return _Head(int(headers["Esrc-Version"]), int(msg.seq or 0), deleted=DELETED in headers)

    async def _stored(self, subject_: str, append: str) -> bool | None:
        """Whether the subject's last message is the last of append ``append``; ``None``
        when that cannot be read either."""
        try:
            msg = await self._last_message(subject_)
        except Exception:
            return None
        return msg is not None and msg.headers.get("Esrc-Append") == append

    @staticmethod
    def _messages_of(
        subject_: str, events: Sequence[RawEvent], head: _Head
    ) -> list[tuple[str, bytes, dict[str, str]]]:
        """The messages that append ``events`` to the subject after ``head``, the first
        one expecting the head's sequence."""
        out = []
        for index, event in enumerate(events, 1):
            headers = event_headers(event, head.version + index)
            if index == 1:
                headers[_EXPECTED] = str(head.seq)
            out.append((subject_, event.data, headers))
        return out

    async def _send(
        self, messages: Sequence[tuple[str, bytes, dict[str, str]]], append: str
    ) -> None:
        """Publish ``messages``, one alone or several as one atomic batch; the last
        carries ``append`` in ``Esrc-Append`` (and a single one as its
        ``Nats-Msg-Id``). Raises what nats-py raises."""
        from nats.js.errors import APIError

        if len(messages) == 1:
            subject_, data, headers = messages[0]
            headers = {**headers, "Nats-Msg-Id": append, "Esrc-Append": append}
            ack = await self._js.publish(subject_, data, headers=headers)
            self._seen.see(int(ack.seq))
            return
        batch = uuid.uuid4().hex
        for index, (subject_, data, fields) in enumerate(messages, 1):
            headers = {**fields, "Nats-Batch-Id": batch, "Nats-Batch-Sequence": str(index)}
            if index < len(messages):
                await self._nc.publish(subject_, data, headers=headers)
                continue
            headers["Nats-Batch-Commit"] = "1"
            headers["Esrc-Append"] = append
            reply = await self._nc.request(subject_, data, headers=headers, timeout=self.timeout)
            answer = json.loads(reply.data or b"{}")
            if "error" in answer:
                raise APIError.from_error(answer["error"])
            self._seen.see(int(answer.get("seq", 0)))

    async def _publish(
        self,
        messages: Sequence[tuple[str, bytes, dict[str, str]]],
        doing: str,
        conflict: Callable[[], Awaitable[EsrcError]],
    ) -> None:
        """Publish ``messages`` (see :meth:`_send`) until JetStream answers. A refused
        expected sequence raises what ``conflict()`` makes of it. When an answer is lost
        (a timeout, the connection or the stream leader away), the last message's
        subject tells whether the append was stored; if not, it is sent again (a single
        message under the same ``Nats-Msg-Id``, so the server drops it if the first one
        lands late; a batch is guarded by its expected sequences). Gives up after twice
        the timeout with :class:`~esrc_core.errors.StoreUnavailableError` saying the
        outcome is unknown."""
        import nats.errors
        from nats.js.errors import APIError

        append = uuid.uuid4().hex
        last_subject = messages[-1][0]
        deadline = time.monotonic() + self.timeout * 2
        retried = False
        while True:
            try:
                await self._send(messages, append)
                return
            except APIError as error:
                if error.err_code in _WRONG_LAST_SEQUENCE:
                    if retried:  # the refusal may be of this append's first attempt
                        stored = await self._stored(last_subject, append)
                        if stored:
                            return
                        if stored is None:
                            raise StoreUnavailableError(
                                f"{doing}: JetStream refused a retry and the stream cannot "
                                "be read; the first attempt may have been stored: read "
                                "the stream to know"
                            ) from error
                    if error.err_code == _IN_FLIGHT:
                        # nothing was stored: send it again until the server decides
                        if time.monotonic() > deadline:
                            raise StoreUnavailableError(
                                f"{doing}: another write to the stream was still being "
                                f"replicated after {self.timeout * 2} s (has the cluster lost "
                                "its quorum?); this append was not stored"
                            ) from error
                        retried = True
                        await asyncio.sleep(_IN_FLIGHT_PAUSE)
                        continue
                    raise await conflict() from error
                if error.code != 503 or time.monotonic() > deadline:
                    raise StoreUnavailableError(
                        f"{doing}: JetStream refused the append: {error}"
                    ) from error
            except (nats.errors.Error, OSError, TimeoutError) as error:
                if await self._stored(last_subject, append):
                    return
                if time.monotonic() > deadline:
                    raise StoreUnavailableError(
                        f"{doing}: JetStream did not acknowledge the append "
                        f"({type(error).__name__}: {error}); it may have been stored: read "
                        "the stream to know"
                    ) from error
            retried = True
            await asyncio.sleep(0.1)

    def _refuse(self, events: Sequence[RawEvent], doing: str) -> None:
        """Refuse, before publishing anything, an append the server would not take."""
        if len(events) > self.max_batch:
            raise NotSupportedError(
                f"{doing}: {len(events)} events in one append exceed max_batch="
                f"{self.max_batch} (the server's jetstream.limits.batch.max_msgs); "
                "nothing was published"
            )
        if len(events) > 1 and not self._batches:
            raise NotSupportedError(
                f"{doing}: {len(events)} events in one append need atomic batch publish "
                f"(nats-server 2.12 or later, stream {self.stream!r} with allow_atomic); "
                "nothing was published"
            )
        limit = self._nc.max_payload
        for index, event in enumerate(events):
            headers = event_headers(event, 1)
            size = len(event.data) + sum(len(k) + len(v) + 4 for k, v in headers.items()) + 300
            if size > limit:
                raise InvalidEventError(
                    f"{doing}: event {index} ({event.name!r}) is about {size} bytes with its "
                    f"headers, over the server's max_payload of {limit} bytes; nothing was "
                    "published"
                )

    async def _refused(
        self, subject_: str, doing: str, *, creates: bool, version: int
    ) -> EsrcError:
        """The error of an append to the subject that the server refused (or that its
        head refuses): the stream was deleted, exists already, is missing or moved on."""
        head = await self._last(subject_)
        if head.deleted:
            return StreamDeletedError(f"{doing}: the stream was deleted")
        if creates:
            return AggregateAlreadyExists(f"{doing}: the aggregate already exists")
        if head.version == 0:
            return OptimisticConcurrencyError(f"{doing}: the aggregate does not exist")
        return OptimisticConcurrencyError(
            f"{doing}: another writer appended first (the stream is at version {head.version})"
        )

    # -- EventStore ------------------------------------------------------------------

    def add_aggregate(
        self, aggregate_type: str, aggregate_id: AggregateId, events: Sequence[RawEvent]
    ) -> None:
        """See :meth:`esrc_core.store.EventStore.add_aggregate`."""
        doing = f"add {aggregate_type} {aggregate_id!r}"
        subject_ = self._check(aggregate_type, aggregate_id, doing)
        check_events(events, doing=doing)
        if not events:
            raise AggregateRequiresEvents(f"{doing}: an aggregate needs at least one event")
        self._refuse(events, doing)
        messages = self._messages_of(subject_, events, _Head(0, 0, deleted=False))

        async def add() -> None:
            await self._publish(
                messages, doing, lambda: self._refused(subject_, doing, creates=True, version=0)
            )

        self._run(add(), doing)

    def append_events(
        self,
        aggregate_type: str,
        aggregate_id: AggregateId,
        from_version: int,
        events: Sequence[RawEvent],
    ) -> None:
        """See :meth:`esrc_core.store.EventStore.append_events`."""
        doing = f"append to {aggregate_type} {aggregate_id!r} at version {from_version}"
        subject_ = self._check(aggregate_type, aggregate_id, doing)
        check_events(events, doing=doing)
        if not events:
            raise AggregateRequiresEvents(f"{doing}: no events to append")
        check_int(from_version, "from_version", doing=doing, maximum=INT64_MAX - len(events))
        self._refuse(events, doing)

        async def append() -> None:
            head = await self._last(subject_)
            if head.deleted or head.version == 0 or head.version != from_version:
                raise await self._refused(subject_, doing, creates=False, version=from_version)
            await self._publish(
                self._messages_of(subject_, events, head),
                doing,
                lambda: self._refused(subject_, doing, creates=False, version=from_version),
            )

        self._run(append(), doing)

    def append_streams(self, appends: Sequence[StreamAppend]) -> None:
        """See :meth:`esrc_core.atomic_appends.AtomicAppends.append_streams`: one
        atomic batch over the streams' subjects, each part's first message expecting its
        subject's last sequence."""
        doing = "append to several streams"
        parts = check_appends(appends, doing=doing)
        if not parts:
            return
        if self._closed:
            raise StoreClosedError(f"{doing}: the store {self!r} is closed")
        subjects = [self.subject(p.aggregate_type, p.aggregate_id) for p in parts]
        self._refuse([event for part in parts for event in part.events], doing)

        async def failure(index: int, head: _Head) -> EsrcError | None:
            part = parts[index]
            where = f"{doing}: part {index} ({part.describe()})"
            if head.deleted:
                return StreamDeletedError(f"{where}: the stream was deleted")
            if part.creates and head.version:
                return AggregateAlreadyExists(f"{where}: the aggregate already exists")
            if head.version != part.expected_version:
                return OptimisticConcurrencyError(
                    f"{where}: the stream is at version {head.version}"
                )
            return None

        async def conflict() -> EsrcError:
            for index, subject_ in enumerate(subjects):
                found = await failure(index, await self._last(subject_))
                if found is not None:
                    return found
            return OptimisticConcurrencyError(f"{doing}: another writer appended first")

        async def append() -> None:
            heads = await asyncio.gather(*(self._last(s) for s in subjects))
            messages = []
            for index, (part, subject_, head) in enumerate(
                zip(parts, subjects, heads, strict=True)
            ):
                found = await failure(index, head)
                if found is not None:
                    raise found
                messages.extend(self._messages_of(subject_, part.events, head))
            await self._publish(messages, doing, conflict)

        self._run(append(), doing)

    async def _messages(self, subject_: str, doing: str) -> list[Message]:
        """Every message of the subject up to its last one when called, by batched
        direct gets of up to 1,000 messages (nats-server 2.11 or later) or one direct
        get each on older servers, but for a head marker left by truncation; raises
        AggregateNotFound when there is none or the stream was deleted."""

        head = await self._last(subject_)
        if head.version == 0 or head.deleted:
            raise AggregateNotFound(f"{doing}: the aggregate does not exist")
        found: list[Message] = []
        seq = 0
        while seq < head.seq:
            page: list[Message] = []
            if self._batch_reads:
                page = await direct_get(
                    self._nc,
                    self.stream,
                    subject_,
                    seq + 1,
                    _READ_BATCH,
                    watermark=self._seen,
                    timeout=self.timeout,
                )
            if not page:  # an older server, or a follower without the next message yet
                page = await self._next_message(subject_, seq + 1)
            if not page:
                break
            for message in page:
                if message.seq > head.seq:
                    return found
                if DELETED in message.headers:  # deleted while this read ran
                    raise AggregateNotFound(f"{doing}: the aggregate does not exist")
                if HEAD not in message.headers:
                    found.append(message)
            seq = page[-1].seq
        return found

    async def _after(self, subject_: str, from_version: int, doing: str) -> list[Message]:
        """The subject's messages after ``from_version``; raises EventsTruncatedError
        when retention removed some of them."""
        found = await self._messages(subject_, doing)
        first = found[0].version if found else (await self._last(subject_)).version + 1
        if first > max(from_version, 0) + 1:
            if (await self._last(subject_)).deleted:  # purged by a deletion meanwhile
                raise AggregateNotFound(f"{doing}: the aggregate does not exist")
            truncated_to = first - 1
            raise EventsTruncatedError(
                f"{doing}: the events up to version {truncated_to} were removed by retention "
                "(read from the latest snapshot's version on)",
                truncated_to=truncated_to,
            )
        return [m for m in found if m.version > from_version]

    def events(
        self, aggregate_type: str, aggregate_id: AggregateId, from_version: int = 0
    ) -> list[RawEvent]:
        """See :meth:`esrc_core.store.EventStore.events`. Reads the subject's messages
        up to its last message when called: by batched direct gets of up to 1,000
        messages on nats-server 2.11 or later, one direct get each on older ones."""
        doing = f"read {aggregate_type} {aggregate_id!r} after version {from_version}"
        subject_ = self._check(aggregate_type, aggregate_id, doing)
        check_int(from_version, "from_version", doing=doing, minimum=-(2**63))

        async def read() -> list[RawEvent]:
            return [
                raw_event(m.headers, m.data)
                for m in await self._after(subject_, from_version, doing)
            ]

        return self._run(read(), doing)

    def iter_events(
        self,
        aggregate_type: str,
        aggregate_id: AggregateId,
        from_version: int = 0,
        *,
        page_size: int | None = None,
    ) -> Iterator[RawEvent]:
        """See :meth:`esrc_core.store.StreamingStore.iter_events`: batched direct gets
        of ``page_size`` messages (default 1,000), up to the subject's last message
        when called."""
        doing = f"read {aggregate_type} {aggregate_id!r} after version {from_version}"
        subject_ = self._check(aggregate_type, aggregate_id, doing)
        check_int(from_version, "from_version", doing=doing, minimum=-(2**63))
        size = min(check_page_size(page_size, doing=doing), _READ_BATCH)
        head, first = self._run(self._first_page(subject_, from_version, size, doing), doing)
        return self._pages(subject_, from_version, size, head, first, doing=doing)

    async def _first_page(
        self, subject_: str, from_version: int, size: int, doing: str
    ) -> tuple[_Head, list[Message]]:
        head = await self._last(subject_)
        if head.version == 0 or head.deleted:
            raise AggregateNotFound(f"{doing}: the aggregate does not exist")
        page = await self._page(subject_, 1, size, head)
        events = [m for m in page if HEAD not in m.headers]
        first = events[0].version if events else head.version + 1
        if first > max(from_version, 0) + 1:
            raise EventsTruncatedError(
                f"{doing}: the events up to version {first - 1} were removed by retention "
                "(read from the latest snapshot's version on)",
                truncated_to=first - 1,
            )
        return head, page

    async def _page(self, subject_: str, start: int, size: int, head: _Head) -> list[Message]:
        """Up to ``size`` messages of the subject from stream sequence ``start`` to
        ``head``'s."""
        if start > head.seq:
            return []
        page = await direct_get(
            self._nc, self.stream, subject_, start, size, watermark=self._seen, timeout=self.timeout
        )
        if not page:  # a follower without the next message yet
            page = await self._next_message(subject_, start)
        return [m for m in page if m.seq <= head.seq]

    async def _from_leader(self, get: Callable[..., Awaitable[T]], *args: Any, **kw: Any) -> T:
        """``await get(*args, **kw)``, asked again while JetStream answers 503 (no stream
        leader during an election), for up to the store's timeout."""
        from nats.js.errors import ServiceUnavailableError

        deadline = time.monotonic() + self.timeout
        while True:
            try:
                return await get(*args, **kw)
            except ServiceUnavailableError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)

    async def _next_message(self, subject_: str, start: int) -> list[Message]:
        """The subject's first message from stream sequence ``start`` on, as a page of
        one (none when there is none): asked of the leader on a replicated stream, by a
        direct get otherwise."""
        from nats.js.errors import NotFoundError

        try:
            msg = await self._from_leader(
                self._js.get_msg,
                self.stream,
                seq=start,
                subject=subject_,
                direct=not self._leader_reads,
                next=True,
            )
        except NotFoundError:
            return []
        found = Message(int(msg.seq or 0), subject_, dict(msg.headers or {}), msg.data or b"")
        self._seen.see(found.seq)
        return [found]

    def _pages(
        self,
        subject_: str,
        from_version: int,
        size: int,
        head: _Head,
        page: list[Message],
        *,
        doing: str,
    ) -> Iterator[RawEvent]:
        while page:
            for message in page:
                if HEAD not in message.headers and message.version > from_version:
                    yield raw_event(message.headers, message.data)
            if page[-1].seq >= head.seq:
                return
            page = self._run(self._page(subject_, page[-1].seq + 1, size, head), doing)

    def load_stream(
        self,
        aggregate_type: str,
        aggregate_id: AggregateId,
        *,
        snapshot: bool = True,
        page_size: int | None = None,
    ) -> tuple[RawSnapshot | None, Iterator[RawEvent]]:
        """See :meth:`esrc_core.store.StreamingStore.load_stream`: the snapshot key,
        then :meth:`iter_events` after its version (two round trips)."""
        doing = f"load {aggregate_type} {aggregate_id!r}"
        subject_ = self._check(aggregate_type, aggregate_id, doing)
        found = self._run(self._latest(self._snapshot_key(subject_)), doing) if snapshot else None
        version = found.version if found is not None else 0
        return found, self.iter_events(aggregate_type, aggregate_id, version, page_size=page_size)

    def contains_aggregate(self, aggregate_type: str, aggregate_id: AggregateId) -> bool:
        """See :meth:`esrc_core.store.EventStore.contains_aggregate`."""
        doing = f"look for {aggregate_type} {aggregate_id!r}"
        subject_ = self._check(aggregate_type, aggregate_id, doing)
        head = self._run(self._last(subject_), doing)
        return head.version > 0 and not head.deleted

    def _snapshot_key(self, subject_: str) -> str:
        return subject_.split(".", 1)[1].replace("~", "_")

    def add_snapshot(
        self, aggregate_type: str, aggregate_id: AggregateId, snapshot: RawSnapshot
    ) -> None:
        """See :meth:`esrc_core.store.EventStore.add_snapshot`. Keeps the snapshot with
        the highest version (a lower one added later does not replace it)."""
        doing = f"add a snapshot of {aggregate_type} {aggregate_id!r} at version {snapshot.version}"
        subject_ = self._check(aggregate_type, aggregate_id, doing)

        async def add() -> None:
            from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

            head = await self._last(subject_)
            if head.version == 0 or head.deleted:
                raise AggregateNotFound(f"{doing}: the aggregate does not exist")
            if not 1 <= snapshot.version <= head.version:
                raise SnapshotVersionError(f"{doing}: the stream is at version {head.version}")
            key = self._snapshot_key(subject_)
            value = json.dumps(
                {
                    "version": snapshot.version,
                    "schema_version": snapshot.schema_version,
                    "data": base64.b64encode(snapshot.data).decode(),
                }
            ).encode()
            while True:  # compare and set on the key's revision: concurrent adds keep the highest
                try:
                    entry = await self._kv.get(key)
                except KeyNotFoundError:
                    entry = None
                try:
                    if entry is None:
                        await self._kv.create(key, value)
                        return
                    if entry.value and json.loads(entry.value)["version"] > snapshot.version:
                        return
                    await self._kv.update(key, value, last=entry.revision)
                    return
                except KeyWrongLastSequenceError:
                    continue

        self._run(add(), doing)

    async def _latest(self, key: str) -> RawSnapshot | None:
        from nats.js.errors import KeyNotFoundError

        try:
            entry = await self._kv.get(key)
        except KeyNotFoundError:
            return None
        if not entry.value:
            return None
        found = json.loads(entry.value)
        return RawSnapshot(
            found["version"], base64.b64decode(found["data"]), found["schema_version"]
        )

    def latest_snapshot(self, aggregate_type: str, aggregate_id: AggregateId) -> RawSnapshot | None:
        """See :meth:`esrc_core.store.EventStore.latest_snapshot`."""
        doing = f"read the latest snapshot of {aggregate_type} {aggregate_id!r}"
        subject_ = self._check(aggregate_type, aggregate_id, doing)
        return self._run(self._latest(self._snapshot_key(subject_)), doing)

    # -- deletion and retention ----------------------------------------------------------

    async def _mark(self, subject_: str, kind: str, version: int, seq: int, doing: str) -> bool:
        """Append a marker message of ``kind`` (a tombstone or a head marker) carrying
        ``version`` after stream sequence ``seq`` of the subject; ``False`` when an
        append came first."""
        marker = {kind: "1", "Esrc-Version": str(version), _EXPECTED: str(seq)}

        async def moved() -> EsrcError:
            return OptimisticConcurrencyError(f"{doing}: an append came first")

        try:
            await self._publish([(subject_, b"", marker)], doing, moved)
        except OptimisticConcurrencyError:
            return False
        return True

    def delete_stream(self, aggregate_type: str, aggregate_id: AggregateId) -> None:
        """See :meth:`esrc_core.retention.DeletesStreams.delete_stream`: a tombstone
        message (header ``Esrc-Deleted``) is appended after the subject's last message,
        expecting its sequence (an append in flight lands before it, or fails), then the
        subject is purged but for the tombstone and the snapshot key is purged. A relay
        reading between the two steps may still be handed the deleted events."""
        doing = f"delete {aggregate_type} {aggregate_id!r}"
        subject_ = self._check(aggregate_type, aggregate_id, doing)

        async def delete() -> None:
            while True:
                head = await self._last(subject_)
                if head.version == 0:
                    raise AggregateNotFound(f"{doing}: the aggregate does not exist")
                if head.deleted:
                    break
                if await self._mark(subject_, DELETED, head.version, head.seq, doing):
                    break
                # else delete what was appended meanwhile too
            await self._js.purge_stream(self.stream, subject=subject_, keep=1)
            await self._kv.purge(self._snapshot_key(subject_))

        self._run(delete(), doing)

    def truncate_stream(self, aggregate_type: str, aggregate_id: AggregateId) -> int:
        """See :meth:`esrc_core.retention.DeletesStreams.truncate_stream`: purges the
        subject's messages up to the latest snapshot's version and every relay
        checkpoint. When every event goes, a head marker message (header ``Esrc-Head``)
        takes the last one's place: it keeps the stream's version and the sequence
        appends expect; readers and relays skip it."""
        doing = f"truncate {aggregate_type} {aggregate_id!r}"
        subject_ = self._check(aggregate_type, aggregate_id, doing)

        async def truncate() -> int:
            from nats.js.errors import NoKeysError

            messages = await self._messages(subject_, doing)
            snapshot = await self._latest(self._snapshot_key(subject_))
            if snapshot is None:
                return 0
            try:
                names = [unb64(key[1:]) for key in await self._relays.keys()]
            except NoKeysError:
                names = []
            passed = min(
                [(await read_checkpoint(self._relays, name))[0] for name in names],
                default=INT64_MAX,
            )
            cut = 0
            for message in messages:
                if message.version > snapshot.version or message.seq > passed:
                    break
                cut += 1
            if cut and cut == len(messages):
                # Every event goes: a head marker keeps the stream's version and the
                # sequence appends expect (an append in flight makes this one fail).
                last = messages[-1]
                if not await self._mark(subject_, HEAD, last.version, last.seq, doing):
                    return await truncate()
                await self._js.purge_stream(self.stream, subject=subject_, keep=1)
            elif cut:
                await self._js.purge_stream(
                    self.stream, subject=subject_, seq=messages[cut - 1].seq + 1
                )
            return cut

        return self._run(truncate(), doing)

    # -- the outbox and relay locks ----------------------------------------------------

    def outbox(self, name: str = "default") -> NatsOutbox:
        """See :meth:`esrc_core.relay.HasOutbox.outbox`: the events after relay
        ``name``'s checkpoint in stream sequence order (the order the server stored
        them in; an atomic batch's events are consecutive)."""
        if self._closed:
            raise StoreClosedError(
                f"open the outbox of relay {name!r}: the store {self!r} is closed"
            )
        if name not in self._outboxes:
            self._outboxes[name] = NatsOutbox(name, self._link, self._relays)
        return self._outboxes[name]

    def relay_lock(self, name: str) -> NatsRelayLock:
        """See :meth:`esrc_core.locks.HasRelayLock.relay_lock`: a key of the
        ``<stream>_locks`` bucket, renewed while held and expiring ``lock_ttl``
        seconds after its holder stopped renewing it (a crashed relay)."""
        return NatsRelayLock(name, self._link, self._locks, self.lock_ttl)

    def relay_lock_holders(self, names: Sequence[str]) -> dict[str, str | None]:
        """See :meth:`esrc_core.locks.InspectsRelayLocks.relay_lock_holders`."""

        async def holders() -> dict[str, str | None]:
            return {name: await lock_holder(self._locks, name) for name in names}

        return self._run(holders(), "read who holds the relay locks")

    # -- inspection ----------------------------------------------------------------------

    def streams(
        self, aggregate_type: str | None = None, *, limit: int | None = None
    ) -> list[StreamInfo]:
        """See :meth:`esrc_core.inspection.Inspectable.streams`: the stream's subjects
        and their message counts (one request), then each listed stream's last
        message for its time."""
        doing = "list the streams"
        if aggregate_type is not None:
            check_aggregate_type(aggregate_type, doing=doing)
        filter_subject = (
            f"{self.prefix}.>"
            if aggregate_type is None
            else subject(self.prefix, aggregate_type, 0).rsplit(".", 1)[0] + ".*"
        )

        async def list_streams() -> list[StreamInfo]:
            info = await self._js.stream_info(self.stream, subjects_filter=filter_subject)
            keyed = [
                (*stream_of(name), count, name)
                for name, count in (info.state.subjects or {}).items()
            ]
            keyed.sort(key=lambda row: (row[0], encode_id(row[1])))
            found = []
            for kind, aggregate_id, _count, name in keyed:
                last = await self._last_message(name)
                headers = dict(last.headers or {}) if last is not None else {}
                if not headers or DELETED in headers:
                    continue
                version = int(headers["Esrc-Version"])
                found.append(StreamInfo(kind, aggregate_id, version, recorded_at(headers)))
                if limit is not None and len(found) >= limit:
                    break
            return found

        return self._run(list_streams(), doing)

    def recorded_events(
        self, aggregate_type: str, aggregate_id: AggregateId, from_version: int = 0
    ) -> list[RecordedEvent]:
        """See :meth:`esrc_core.inspection.Inspectable.recorded_events`: positions are
        stream sequences, times the server's."""
        doing = f"read {aggregate_type} {aggregate_id!r} after version {from_version}"
        subject_ = self._check(aggregate_type, aggregate_id, doing)

        async def read() -> list[RecordedEvent]:
            return [
                RecordedEvent(
                    aggregate_type,
                    aggregate_id,
                    m.version,
                    m.seq,
                    raw_event(m.headers, m.data),
                    recorded_at(m.headers),
                )
                for m in await self._after(subject_, from_version, doing)
            ]

        return self._run(read(), doing)

    def relays(self) -> list[RelayProgress]:
        """See :meth:`esrc_core.inspection.Inspectable.relays`: ``published`` and
        ``pending`` count the stream's messages up to and after each checkpoint."""

        async def progress() -> list[RelayProgress]:
            from nats.js.errors import NoKeysError

            try:
                keys = await self._relays.keys()
            except NoKeysError:
                return []
            state = (await self._js.stream_info(self.stream)).state
            found = []
            for key in keys:
                name = unb64(key[1:])
                position, _ = await read_checkpoint(self._relays, name)
                pending = max(0, int(state.last_seq) - max(position, int(state.first_seq) - 1))
                oldest = None
                if pending:
                    page = await direct_get(
                        self._nc,
                        self.stream,
                        f"{self.prefix}.>",
                        position + 1,
                        1,
                        watermark=self._seen,
                        timeout=self.timeout,
                    )
                    oldest = recorded_at(page[0].headers) if page else None
                published = max(0, min(position, int(state.last_seq)) - int(state.first_seq) + 1)
                found.append(RelayProgress(name, published, pending, oldest))
            return sorted(found, key=lambda relay: relay.name)

        return self._run(progress(), "read the relays' progress")

    def copy_relay(self, source: str, target: str) -> None:
        """See :meth:`esrc_core.inspection.Inspectable.copy_relay`."""

        async def copy() -> None:
            position, _ = await read_checkpoint(self._relays, source)
            if position:
                value = json.dumps({"position": position}).encode()
                await self._relays.put(checkpoint_key(target), value)
            else:
                await self._relays.purge(checkpoint_key(target))

        self._run(copy(), f"copy relay {source!r} to {target!r}")
        self._outboxes.pop(target, None)  # its progress moved, maybe back

    def forget_relay(self, name: str) -> None:
        """See :meth:`esrc_core.inspection.Inspectable.forget_relay`."""
        self._run(self._relays.purge(checkpoint_key(name)), f"forget relay {name!r}")
        self._outboxes.pop(name, None)

    def purge(self) -> None:
        """Remove every event, snapshot, relay checkpoint and relay lock of this store:
        the stream and its buckets stay, with their configuration, empty. For tests and
        demos that start afresh; there is no undo."""

        async def purge() -> None:
            for name in (self.stream, *(f"KV_{bucket}" for bucket in self._buckets)):
                await self._js.purge_stream(name)

        self._run(purge(), f"purge stream {self.stream!r} and its buckets")

    def close(self) -> None:
        """See :meth:`esrc_core.store.EventStore.close`."""
        if self._closed:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._nc.close(), self._loop).result(self.timeout)
        self._closed = True
        self._stop_loop()
