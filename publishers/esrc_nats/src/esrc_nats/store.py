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

Snapshots live in a KV bucket, one key per stream and version. The store is
synchronous: nats-py runs on an event loop in a thread of the store's own.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import threading
import uuid
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

from esrc_core.errors import (
    AggregateAlreadyExists,
    AggregateNotFound,
    AggregateRequiresEvents,
    BackendConfigError,
    EsrcError,
    NotSupportedError,
    OptimisticConcurrencyError,
    SnapshotVersionError,
    StoreClosedError,
    StoreUnavailableError,
)
from esrc_core.events import RawEvent, RawSnapshot, check_events
from esrc_core.ids import AggregateId, check_aggregate_type, check_id, encode_id
from esrc_core.store import INT64_MAX, EventStore, check_int

__all__ = ["NatsEventStore"]

T = TypeVar("T")

_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
_READ_BATCH = 1000
"""Messages asked for by one batched direct get."""
_WRONG_LAST_SEQUENCE = 10071
"""JetStream's error code for a publish whose expected last subject sequence is wrong."""


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def subject_token(aggregate_type: str) -> str:
    """The subject token of an aggregate type: itself when it is letters, digits, ``_``
    and ``-``, else ``~`` and its base64url form."""
    return aggregate_type if _TOKEN.fullmatch(aggregate_type) else "~" + _b64(aggregate_type)


class NatsEventStore(EventStore):
    """An :class:`~esrc_core.store.EventStore` on JetStream (see the module's docstring).

    ``NatsEventStore(url)`` with ``nats://host:port?stream=ESRC&prefix=esrc&replicas=1``
    (the defaults shown; ``bucket`` names the snapshot bucket, default
    ``<stream>_snapshots``; ``timeout`` in seconds, default 5; ``max_batch`` the most
    events one append may hold, default 1000, the server's default
    ``jetstream.limits.batch.max_msgs``: raise both together). The stream and bucket
    are created when missing.
    """

    def __init__(self, url: str, **options: Any) -> None:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        query.update({key: str(value) for key, value in options.items()})
        known = {"stream", "prefix", "replicas", "bucket", "timeout", "max_batch"}
        unknown = set(query) - known
        if unknown:
            raise BackendConfigError(
                f"open {url!r}: unknown options {sorted(unknown)}; known: {sorted(known)}"
            )
        self.url = url
        self.stream = query.get("stream", "ESRC")
        self.prefix = query.get("prefix", "esrc")
        self.bucket = query.get("bucket", f"{self.stream}_snapshots")
        self.replicas = int(query.get("replicas", "1"))
        self.timeout = float(query.get("timeout", "5"))
        self.max_batch = int(query.get("max_batch", "1000"))
        self._servers = [f"nats://{host}" for host in (parts.netloc or "127.0.0.1:4222").split(",")]
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        try:
            self._run(self._open(), f"open {url!r}")
        except BaseException:
            self._stop_loop()
            raise

    def __repr__(self) -> str:
        return f"NatsEventStore({self.url!r})"

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
        from nats.js.api import StreamConfig
        from nats.js.errors import BucketNotFoundError, NotFoundError

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
        try:
            info = await self._js.stream_info(self.stream)
            self._batches = self._batches and bool(info.config.allow_atomic)
        except NotFoundError:
            config = StreamConfig(
                name=self.stream,
                subjects=[f"{self.prefix}.>"],
                num_replicas=self.replicas,
                allow_direct=True,
            )
            if self._batches:
                config.allow_atomic = True
            await self._js.add_stream(config)
        try:
            self._kv = await self._js.key_value(self.bucket)
        except BucketNotFoundError:
            from nats.js.api import KeyValueConfig

            self._kv = await self._js.create_key_value(
                KeyValueConfig(bucket=self.bucket, replicas=self.replicas, history=1)
            )

    # -- subjects and messages -------------------------------------------------------

    def subject(self, aggregate_type: str, aggregate_id: AggregateId) -> str:
        """The subject of a stream's events."""
        return f"{self.prefix}.{subject_token(aggregate_type)}.{_b64(encode_id(aggregate_id))}"

    def _check(self, aggregate_type: str, aggregate_id: AggregateId, doing: str) -> str:
        if self._closed:
            raise StoreClosedError(f"{doing}: the store {self!r} is closed")
        check_aggregate_type(aggregate_type, doing=doing)
        return self.subject(aggregate_type, check_id(aggregate_id, doing=doing))

    async def _last(self, subject: str) -> tuple[int, int]:
        """(version, stream sequence) of the subject's last message; (0, 0) for none."""
        from nats.js.errors import NotFoundError

        try:
            msg = await self._js.get_last_msg(self.stream, subject, direct=True)
        except NotFoundError:
            return 0, 0
        headers = msg.headers or {}
        return int(headers["Esrc-Version"]), int(msg.seq or 0)

    @staticmethod
    def _headers(event: RawEvent, version: int) -> dict[str, str]:
        return {
            "Esrc-Name": json.dumps(event.name),
            "Esrc-Metadata": json.dumps(dict(event.metadata), sort_keys=True),
            "Esrc-Schema-Version": str(event.schema_version),
            "Esrc-Version": str(version),
        }

    async def _publish(
        self, subject: str, events: Sequence[RawEvent], version: int, last_seq: int, doing: str
    ) -> None:
        from nats.js.errors import APIError

        try:
            if len(events) == 1:
                headers = self._headers(events[0], version + 1)
                headers["Nats-Expected-Last-Subject-Sequence"] = str(last_seq)
                await self._js.publish(subject, events[0].data, headers=headers)
                return
            batch = uuid.uuid4().hex
            for index, event in enumerate(events, 1):
                headers = self._headers(event, version + index)
                headers["Nats-Batch-Id"] = batch
                headers["Nats-Batch-Sequence"] = str(index)
                if index == 1:
                    headers["Nats-Expected-Last-Subject-Sequence"] = str(last_seq)
                if index == len(events):
                    headers["Nats-Batch-Commit"] = "1"
                    reply = await self._nc.request(
                        subject, event.data, headers=headers, timeout=self.timeout
                    )
                    answer = json.loads(reply.data or b"{}")
                    if "error" in answer:
                        raise APIError.from_error(answer["error"])
                else:
                    await self._nc.publish(subject, event.data, headers=headers)
        except APIError as error:
            if error.err_code == _WRONG_LAST_SEQUENCE:
                raise OptimisticConcurrencyError(
                    f"{doing}: another writer appended first (the stream is no longer at "
                    f"version {version}; {error.description})"
                ) from error
            raise StoreUnavailableError(
                f"{doing}: JetStream refused the append: {error}"
            ) from error

    async def _get_batch(
        self, subject: str, start: int, count: int
    ) -> list[tuple[int, dict[str, str], bytes]]:
        """Up to ``count`` messages of ``subject`` from stream sequence ``start`` on, by
        one batched direct get (server 2.11 or later): the server sends them to an inbox
        and ends with a ``204`` status."""
        inbox = self._nc.new_inbox()
        queue: asyncio.Queue[Any] = asyncio.Queue()

        async def collect(msg: Any) -> None:
            await queue.put(msg)

        subscription = await self._nc.subscribe(inbox, cb=collect)
        try:
            request = {"seq": start, "next_by_subj": subject, "batch": count}
            await self._nc.publish(
                f"$JS.API.DIRECT.GET.{self.stream}", json.dumps(request).encode(), reply=inbox
            )
            page: list[tuple[int, dict[str, str], bytes]] = []
            while True:
                msg = await asyncio.wait_for(queue.get(), self.timeout)
                headers = dict(msg.headers or {})
                status = headers.get("Status")
                if status in {"204", "404"}:
                    return page
                if status:
                    raise StoreUnavailableError(
                        f"direct get of {subject} from {start}: status {status} "
                        f"{headers.get('Description', '')}"
                    )
                page.append((int(headers["Nats-Sequence"]), headers, msg.data or b""))
        finally:
            await subscription.unsubscribe()

    def _refuse_batch(self, events: Sequence[RawEvent], doing: str) -> None:
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

    # -- EventStore ------------------------------------------------------------------

    def add_aggregate(
        self, aggregate_type: str, aggregate_id: AggregateId, events: Sequence[RawEvent]
    ) -> None:
        """See :meth:`esrc_core.store.EventStore.add_aggregate`."""
        doing = f"add {aggregate_type} {aggregate_id!r}"
        subject = self._check(aggregate_type, aggregate_id, doing)
        check_events(events, doing=doing)
        if not events:
            raise AggregateRequiresEvents(f"{doing}: an aggregate needs at least one event")
        self._refuse_batch(events, doing)

        async def add() -> None:
            try:
                await self._publish(subject, events, 0, 0, doing)
            except OptimisticConcurrencyError as error:
                raise AggregateAlreadyExists(f"{doing}: the aggregate already exists") from error

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
        subject = self._check(aggregate_type, aggregate_id, doing)
        check_events(events, doing=doing)
        if not events:
            raise AggregateRequiresEvents(f"{doing}: no events to append")
        check_int(from_version, "from_version", doing=doing, maximum=INT64_MAX - len(events))
        self._refuse_batch(events, doing)

        async def append() -> None:
            version, last_seq = await self._last(subject)
            if version == 0:
                raise OptimisticConcurrencyError(f"{doing}: the aggregate does not exist")
            if version != from_version:
                raise OptimisticConcurrencyError(f"{doing}: stream is at version {version}")
            await self._publish(subject, events, version, last_seq, doing)

        self._run(append(), doing)

    def events(
        self, aggregate_type: str, aggregate_id: AggregateId, from_version: int = 0
    ) -> list[RawEvent]:
        """See :meth:`esrc_core.store.EventStore.events`. Reads the subject's messages
        up to its last message when called: by batched direct gets of up to 1,000
        messages on nats-server 2.11 or later, one direct get each on older ones."""
        doing = f"read {aggregate_type} {aggregate_id!r} after version {from_version}"
        subject = self._check(aggregate_type, aggregate_id, doing)
        check_int(from_version, "from_version", doing=doing, minimum=-(2**63))

        async def read() -> list[RawEvent]:
            from nats.js.errors import NotFoundError

            version, last_seq = await self._last(subject)
            if version == 0:
                raise AggregateNotFound(f"{doing}: the aggregate does not exist")
            found: list[RawEvent] = []
            seq = 0
            while seq < last_seq:
                if self._batch_reads:
                    page = await self._get_batch(subject, seq + 1, _READ_BATCH)
                else:
                    try:
                        msg = await self._js.get_msg(
                            self.stream, seq=seq + 1, subject=subject, direct=True, next=True
                        )
                    except NotFoundError:
                        break
                    page = [(int(msg.seq or 0), msg.headers or {}, msg.data or b"")]
                if not page:
                    break
                for seq, headers, data in page:
                    if seq > last_seq:
                        break
                    if int(headers["Esrc-Version"]) > from_version:
                        found.append(
                            RawEvent(
                                json.loads(headers["Esrc-Name"]),
                                data,
                                json.loads(headers["Esrc-Metadata"]),
                                int(headers["Esrc-Schema-Version"]),
                            )
                        )
            return found

        return self._run(read(), doing)

    def contains_aggregate(self, aggregate_type: str, aggregate_id: AggregateId) -> bool:
        """See :meth:`esrc_core.store.EventStore.contains_aggregate`."""
        doing = f"look for {aggregate_type} {aggregate_id!r}"
        subject = self._check(aggregate_type, aggregate_id, doing)
        return self._run(self._last(subject), doing)[0] > 0

    def _snapshot_key(self, subject: str) -> str:
        return subject.split(".", 1)[1].replace("~", "_")

    def add_snapshot(
        self, aggregate_type: str, aggregate_id: AggregateId, snapshot: RawSnapshot
    ) -> None:
        """See :meth:`esrc_core.store.EventStore.add_snapshot`. Keeps the snapshot with
        the highest version (a lower one added later does not replace it)."""
        doing = f"add a snapshot of {aggregate_type} {aggregate_id!r} at version {snapshot.version}"
        subject = self._check(aggregate_type, aggregate_id, doing)

        async def add() -> None:
            from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

            version, _ = await self._last(subject)
            if version == 0:
                raise AggregateNotFound(f"{doing}: the aggregate does not exist")
            if not 1 <= snapshot.version <= version:
                raise SnapshotVersionError(f"{doing}: the stream is at version {version}")
            key = self._snapshot_key(subject)
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
        subject = self._check(aggregate_type, aggregate_id, doing)
        return self._run(self._latest(self._snapshot_key(subject)), doing)

    def close(self) -> None:
        """See :meth:`esrc_core.store.EventStore.close`."""
        if self._closed:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._nc.close(), self._loop).result(self.timeout)
        self._closed = True
        self._stop_loop()
