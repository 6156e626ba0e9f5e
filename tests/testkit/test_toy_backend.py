"""A third-party backend (tests/plugins/esrc_toy) found through its entry point and
run through the whole acceptance suite in a few lines."""

from __future__ import annotations

import importlib.metadata
import uuid
from collections.abc import Callable, Iterator

import pytest
from esrc_toy import ToyEventStore, forget

from esrc_core import EventStore, open_event_store, plugins
from esrc_testkit import EventStoreAcceptance, LateCommitAcceptance, capabilities_of


def _stores(scheme: str) -> Iterator[Callable[[], EventStore]]:
    """A factory of ``scheme://`` stores, each under a new name, whose data is
    forgotten when the fixture ends."""
    opened: list[EventStore] = []

    def open_empty() -> EventStore:
        opened.append(open_event_store(f"{scheme}://{uuid.uuid4().hex}"))
        return opened[-1]

    yield open_empty
    for store in opened:
        store.close()
        assert isinstance(store, ToyEventStore)
        forget(store.name)


class TestToyStore(EventStoreAcceptance):
    """``toy://name`` with the capabilities its descriptor declares."""

    capabilities = capabilities_of("toy://")

    @pytest.fixture
    def store_factory(self) -> Iterator[Callable[[], EventStore]]:
        """Each call opens a store under a new name; the data is forgotten afterwards."""
        yield from _stores("toy")

    def reopen(self, store: EventStore) -> EventStore:
        """Open the same URL again."""
        assert isinstance(store, ToyEventStore)
        return open_event_store(store.url)


class TestLateToyStore(LateCommitAcceptance):
    """``toy-late://name``: the toy store whose appends commit late when held passes
    the late-commit tests (toy-lateskip, the same with an outbox that reads by
    position, fails them: test_suite_catches_bugs.py)."""

    capabilities = capabilities_of("toy-late://")

    @pytest.fixture
    def store_factory(self) -> Iterator[Callable[[], EventStore]]:
        """Each call opens a store under a new name; the data is forgotten afterwards."""
        yield from _stores("toy-late")


def test_toy_backend_is_discovered_through_its_entry_point() -> None:
    """esrc-toy declares an ``esrc`` entry point, and ``plugins()`` found its backends
    through it, with their schemes and the distribution's name and version."""
    (entry_point,) = importlib.metadata.entry_points(group="esrc", name="toy")
    assert entry_point.value == "esrc_toy.plugin"
    assert entry_point.dist is not None
    assert entry_point.dist.name == "esrc-toy"
    found = {b.name: b for b in plugins().backends("store") if b.distribution == "esrc-toy"}
    assert set(found) == {
        "toy",
        "toy-noversioncheck",
        "toy-unordered",
        "toy-nonatomic",
        "toy-pagegap",
        "toy-staysopen",
        "toy-offbyone",
        "toy-streamorder",
        "toy-snapshotkey",
        "toy-overmark",
        "toy-keepsnapshot",
        "toy-sharedlock",
        "toy-racycheck",
        "toy-splitunits",
        "toy-leakydelete",
        "toy-eagertruncate",
        "toy-late",
        "toy-lateskip",
    }
    assert found["toy"].schemes == ("toy",)
    assert found["toy"].version == "0.1.0"
    assert not [p for p in plugins().problems if p.distribution == "esrc-toy"]
    assert isinstance(open_event_store("toy://"), ToyEventStore)


def test_toy_descriptor_declares_the_capabilities_the_suite_runs() -> None:
    """``capabilities_of`` reads the descriptor: every gated part of the suite runs."""
    assert capabilities_of("toy://") == {
        "snapshots",
        "outbox",
        "relay-lock",
        "threads",
        "persistent",
    }
