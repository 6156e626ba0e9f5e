"""Capabilities: the one list of what a backend may offer beyond the base protocols,
and the one table that maps each to the protocol that proves it.

A backend declares its capabilities in its :class:`~esrc_core.plugins.Backend`
descriptor; the descriptor rejects a name that is not a :class:`Capability`. Code that
depends on a capability asks :func:`supports` (or :func:`require`) about the object it
holds; nothing else compares names or probes for methods. The testkit runs the tests of
each declared capability, and fails (never skips) when a declared capability's
protocol is not implemented (:func:`unimplemented`).

Some capabilities are behaviour no type can show (``threads``, ``persistent``,
``snapshots``): their entry has no protocol, :func:`supports` cannot answer for them,
and only the testkit's tests prove them.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast

from esrc_core.atomic_appends import AtomicAppends
from esrc_core.errors import NotSupportedError
from esrc_core.inspection import Inspectable
from esrc_core.late_commits import HoldsCommits
from esrc_core.locks import HasRelayLock
from esrc_core.migrations import Migratable
from esrc_core.relay import (
    BatchPublisher,
    EventStoreOutbox,
    HasOutbox,
    ReadAheadOutbox,
    WaitingOutbox,
)
from esrc_core.retention import DeletesStreams
from esrc_core.store import StreamingStore

__all__ = [
    "CAPABILITIES",
    "Capability",
    "CapabilitySpec",
    "Holder",
    "Kind",
    "offered",
    "outbox_of",
    "parse_capabilities",
    "require",
    "supports",
    "unimplemented",
]

P = TypeVar("P")

Kind = Literal["store", "publisher"]
"""The two kinds of backend."""
Holder = Literal["store", "outbox", "publisher"]
"""The object a capability's protocol is found on."""


class Capability(enum.StrEnum):
    """The capabilities a backend can declare. Members are strings, so
    ``"outbox" in backend.capabilities`` and ``Capability.OUTBOX in ...`` both work."""

    SNAPSHOTS = "snapshots"
    """A store that keeps snapshots (``add_snapshot`` / ``latest_snapshot`` work)."""
    OUTBOX = "outbox"
    """A store with named outboxes for the relay (:class:`~esrc_core.relay.HasOutbox`)."""
    WAIT = "wait"
    """A store whose outboxes can block until events may be there instead of polling
    (:class:`~esrc_core.relay.WaitingOutbox`, on the object ``store.outbox(name)``)."""
    READ_AHEAD = "read-ahead"
    """A store whose outboxes read the events after one handed out, before it is marked
    (:class:`~esrc_core.relay.ReadAheadOutbox`, on the object ``store.outbox(name)``):
    :class:`~esrc_core.runner.RelayRunner` with ``read_ahead=True`` then reads the
    next batch while it publishes one."""
    THREADS = "threads"
    """A store safe under concurrent use from many threads."""
    PERSISTENT = "persistent"
    """A store whose data survives closing and reopening it with the same URL, as far
    as the server it talks to keeps what it acknowledged. It is about where the data
    lives (outside the process that wrote it), not about how the server is tuned: a
    server whose durability is configurable (Redis without ``appendfsync``,
    PostgreSQL with ``synchronous_commit=off``) still qualifies, as crash safety is
    the server's configuration. The testkit closes and reopens; it does not crash
    the server."""
    RELAY_LOCK = "relay-lock"
    """A store that locks relay names across processes
    (:class:`~esrc_core.locks.HasRelayLock`)."""
    INSPECT = "inspect"
    """A store with operator views (:class:`~esrc_core.inspection.Inspectable`)."""
    MIGRATE = "migrate"
    """A store whose schema can be created or upgraded ahead of time
    (:class:`~esrc_core.migrations.Migratable`; ``esrc migrate URL``)."""
    STREAMING = "streaming"
    """A store that reads a stream page by page, and its latest snapshot with the
    first page (:class:`~esrc_core.store.StreamingStore`)."""
    HOLD_COMMITS = "hold-commits"
    """A store that can hold an append inside its transaction for tests, so that later
    appends commit before it (:class:`~esrc_core.late_commits.HoldsCommits`): the
    testkit's late-commit tests provoke the classic outbox bug through it. A store
    whose writes take turns cannot offer it."""
    UNITS_OF_WORK = "units-of-work"
    """A store that appends to several streams in one atomic operation, each at its own
    expected version (:class:`~esrc_core.atomic_appends.AtomicAppends`): what
    :class:`~esrc_core.unit_of_work.UnitOfWork` saves through."""
    DELETE_STREAMS = "delete-streams"
    """A store that deletes streams (a tombstone) and truncates them before their
    latest snapshot (:class:`~esrc_core.retention.DeletesStreams`; ``esrc
    delete-stream``, ``esrc truncate-stream``)."""
    BATCH = "batch"
    """A publisher that delivers many events at once
    (:class:`~esrc_core.relay.BatchPublisher`)."""


@dataclass(frozen=True)
class CapabilitySpec:
    """One row of :data:`CAPABILITIES`: which kind of backend may declare the
    capability, which object carries its protocol and the protocol itself (``None`` for
    behaviour no type can show)."""

    kind: Kind
    holder: Holder
    protocol: type[Any] | None


CAPABILITIES: Mapping[Capability, CapabilitySpec] = {
    Capability.SNAPSHOTS: CapabilitySpec("store", "store", None),
    Capability.OUTBOX: CapabilitySpec("store", "store", HasOutbox),
    Capability.WAIT: CapabilitySpec("store", "outbox", WaitingOutbox),
    Capability.READ_AHEAD: CapabilitySpec("store", "outbox", ReadAheadOutbox),
    Capability.THREADS: CapabilitySpec("store", "store", None),
    Capability.PERSISTENT: CapabilitySpec("store", "store", None),
    Capability.RELAY_LOCK: CapabilitySpec("store", "store", HasRelayLock),
    Capability.INSPECT: CapabilitySpec("store", "store", Inspectable),
    Capability.MIGRATE: CapabilitySpec("store", "store", Migratable),
    Capability.STREAMING: CapabilitySpec("store", "store", StreamingStore),
    Capability.HOLD_COMMITS: CapabilitySpec("store", "store", HoldsCommits),
    Capability.UNITS_OF_WORK: CapabilitySpec("store", "store", AtomicAppends),
    Capability.DELETE_STREAMS: CapabilitySpec("store", "store", DeletesStreams),
    Capability.BATCH: CapabilitySpec("publisher", "publisher", BatchPublisher),
}
"""Each capability's row; the only place a capability meets its protocol."""


def _known(kind: Kind | None = None) -> str:
    return ", ".join(c.value for c, spec in CAPABILITIES.items() if kind in (None, spec.kind))


def parse_capabilities(names: Iterable[str], kind: Kind | None = None) -> frozenset[Capability]:
    """``names`` as :class:`Capability` members; raises ``ValueError`` naming the known
    capabilities (of ``kind``, when given) for a name that is not one, or one that
    backends of ``kind`` cannot declare."""
    if isinstance(names, str):
        raise TypeError(f"capabilities must be a collection of names, not the str {names!r}")
    found: set[Capability] = set()
    for name in names:
        try:
            capability = Capability(name)
        except ValueError:
            raise ValueError(
                f"unknown capability {name!r}; known capabilities: {_known(kind)}"
            ) from None
        if kind is not None and CAPABILITIES[capability].kind != kind:
            raise ValueError(
                f"capability '{capability}' is for {CAPABILITIES[capability].kind} backends, not "
                f"{kind} backends; {kind} capabilities: {_known(kind)}"
            )
        found.add(capability)
    return frozenset(found)


def _protocol(capability: Capability | str) -> type[Any]:
    spec = CAPABILITIES[Capability(capability)]
    if spec.protocol is None:
        raise ValueError(
            f"the {str(capability)!r} capability is behaviour, not a protocol: no object "
            "can show it; only the testkit's tests prove it"
        )
    return spec.protocol


def supports(obj: object, capability: Capability | str) -> bool:
    """Whether ``obj`` implements ``capability``'s protocol.

    ``obj`` is the object the capability lives on (:attr:`CapabilitySpec.holder`): a
    store, an outbox (for ``wait``) or a publisher. Raises ``ValueError`` for an
    unknown name and for a capability without a protocol.
    """
    return isinstance(obj, _protocol(capability))


def offered(obj: object, capability: Capability | str, protocol: type[P]) -> P | None:
    """``obj`` typed as ``protocol`` when it :func:`supports` ``capability`` (whose
    protocol ``protocol`` must be), else ``None``: for code that uses a capability when
    it is there and does without otherwise."""
    _check_protocol(capability, protocol)
    return cast(P, obj) if supports(obj, capability) else None


def _check_protocol(capability: Capability | str, protocol: type[Any]) -> type[Any]:
    expected = _protocol(capability)
    if protocol is not expected:
        raise TypeError(
            f"the {str(capability)!r} capability is proven by {expected.__name__}, "
            f"not {protocol.__name__}"
        )
    return expected


def require(obj: object, capability: Capability | str, doing: str, protocol: type[P]) -> P:
    """``obj`` typed as ``protocol`` (the protocol of ``capability``) when it
    :func:`supports` ``capability``; otherwise raise
    :class:`~esrc_core.errors.NotSupportedError` saying what was being done
    (``doing``) and what is missing."""
    expected = _check_protocol(capability, protocol)
    if not isinstance(obj, expected):
        raise NotSupportedError(
            f"{doing}: {type(obj).__name__} does not offer the {str(capability)!r} "
            f"capability (it does not implement {expected.__name__})"
        )
    return cast(P, obj)


def outbox_of(store: object, name: str = "default") -> EventStoreOutbox:
    """The outbox of relay ``name`` of ``store`` (the ``outbox`` capability), typed:
    ``outbox_of(open_event_store(url), "projections")`` type-checks where
    ``open_event_store(url).outbox(...)`` cannot, since :class:`~esrc_core.store.EventStore`
    promises no outbox. Raises :class:`~esrc_core.errors.NotSupportedError`, naming
    the store's class and the relay, when the store keeps no outboxes."""
    has_outbox = require(store, Capability.OUTBOX, f"open outbox {name!r}", HasOutbox)
    return has_outbox.outbox(name)


def unimplemented(
    declared: Iterable[str], objects: Mapping[Holder, object]
) -> list[tuple[Capability, str]]:
    """The declared capabilities whose protocol the given objects do not implement.

    ``objects`` maps holders (``"store"``, ``"outbox"``, ``"publisher"``) to the object
    to check; capabilities of holders not given, and those without a protocol, are not
    checked. Each entry is the capability and the name of the missing protocol.
    """
    missing = []
    declared_set = parse_capabilities(declared)
    for capability in (c for c in Capability if c in declared_set):
        spec = CAPABILITIES[capability]
        if spec.protocol is None or spec.holder not in objects:
            continue
        if not isinstance(objects[spec.holder], spec.protocol):
            missing.append((capability, spec.protocol.__name__))
    return missing
