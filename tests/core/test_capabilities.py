"""The capability list: validated when a backend is declared, one table of protocols,
one helper every call site asks."""

from __future__ import annotations

from typing import Any

import pytest
from esrc_core.capabilities import CAPABILITIES, parse_capabilities, unimplemented
from esrc_memory.publisher import MemoryPublisher
from esrc_memory.store import MemoryEventStore

from esrc_core import (
    Backend,
    BatchPublisher,
    Capability,
    HasOutbox,
    HasRelayLock,
    NotSupportedError,
    Publisher,
    RelayEvent,
    WaitingOutbox,
    offered,
    require,
    supports,
)


def _backend(kind: Any = "store", **options: Any) -> Backend:
    return Backend(name="demo", kind=kind, schemes=("demo",), factory=dict, **options)


def test_backend_with_an_unknown_capability_is_refused() -> None:
    """A typo is an error that lists the known names, not a capability nobody checks."""
    with pytest.raises(ValueError, match=r"backend 'demo': unknown capability 'snapshotz'") as err:
        _backend(capabilities={"snapshotz"})
    for name in ("snapshots", "outbox", "wait", "relay-lock", "inspect", "migrate"):
        assert name in str(err.value)


def test_backend_with_a_capability_of_the_other_kind_is_refused() -> None:
    """'batch' is a publisher capability; a store cannot declare it (nor a publisher
    'outbox')."""
    with pytest.raises(ValueError, match="'batch' is for publisher backends"):
        _backend(capabilities={"batch"})
    with pytest.raises(ValueError, match="'outbox' is for store backends"):
        _backend("publisher", capabilities={Capability.OUTBOX})


def test_backend_keeps_capabilities_as_members_that_still_compare_as_names() -> None:
    """Declared names become Capability members; both spellings find them."""
    backend = _backend(capabilities=frozenset({"outbox", Capability.SNAPSHOTS}))
    assert backend.capabilities == {Capability.OUTBOX, Capability.SNAPSHOTS}
    assert all(type(c) is Capability for c in backend.capabilities)
    assert "outbox" in backend.capabilities


def test_a_str_is_not_a_set_of_capabilities() -> None:
    """capabilities="outbox" would read as six one-letter names; it is refused."""
    with pytest.raises(TypeError, match="collection of names"):
        parse_capabilities("outbox")


def test_every_capability_has_one_row() -> None:
    """The table covers the enumeration exactly."""
    assert set(CAPABILITIES) == set(Capability)


def test_supports_offered_and_require_answer_from_the_protocol() -> None:
    """The memory store has an outbox and relay locks; its outbox cannot wait; its
    publisher publishes batches."""
    store = MemoryEventStore()
    assert supports(store, Capability.OUTBOX)
    assert supports(store, "relay-lock")
    assert offered(store, Capability.RELAY_LOCK, HasRelayLock) is store
    assert require(store, Capability.OUTBOX, "relay r", HasOutbox) is store
    outbox = store.outbox("r")
    assert offered(outbox, Capability.WAIT, WaitingOutbox) is None
    assert supports(MemoryPublisher("p"), Capability.BATCH)


def test_require_names_what_was_being_done_and_what_is_missing() -> None:
    """An object without the protocol raises NotSupportedError with the doing text."""

    class OnlyPublish:
        def publish(self, event: RelayEvent) -> None:
            del event

        def close(self) -> None:
            pass

    plain: Publisher = OnlyPublish()
    with pytest.raises(NotSupportedError, match=r"relay r: OnlyPublish does not offer the 'batch'"):
        require(plain, Capability.BATCH, "relay r", BatchPublisher)


def test_behaviour_capabilities_have_no_protocol_to_ask() -> None:
    """'threads' is behaviour: supports() refuses to guess."""
    with pytest.raises(ValueError, match="behaviour, not a protocol"):
        supports(MemoryEventStore(), Capability.THREADS)


def test_the_protocol_passed_must_be_the_capabilitys() -> None:
    """Asking for 'outbox' typed as HasRelayLock is a programming error."""
    with pytest.raises(TypeError, match="proven by HasOutbox, not HasRelayLock"):
        offered(MemoryEventStore(), Capability.OUTBOX, HasRelayLock)


def test_unimplemented_lists_declared_capabilities_without_their_protocol() -> None:
    """Declaring 'inspect' and 'wait' for objects without them lists both; holders not
    given and behaviour capabilities are not checked."""
    store = MemoryEventStore()
    missing = unimplemented(
        {"inspect", "wait", "threads", "batch"}, {"store": object(), "outbox": store.outbox("x")}
    )
    assert missing == [(Capability.WAIT, "WaitingOutbox"), (Capability.INSPECT, "Inspectable")]
