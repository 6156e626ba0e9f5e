"""Acceptance tests of relay locks (capability ``"relay-lock"``)."""

from __future__ import annotations

import threading
import time

import pytest
from esrc_core.capabilities import Capability
from esrc_core.locks import HasRelayLock, RelayLock
from esrc_core.store import EventStore

from esrc_testkit.capabilities import requires
from esrc_testkit.fixtures import StoreSuite

__all__ = ["RelayLockAcceptance"]


class RelayLockAcceptance(StoreSuite):
    """Tests of :class:`esrc_core.locks.HasRelayLock`: one holder per relay name.

    Two lock objects stand for two relay processes. That a dead holder's lock is
    released is backend-specific (it needs a process or session to die) and is left
    to the backend's own tests.
    """

    def lock(self, store: EventStore, name: str) -> RelayLock:
        """A new lock on relay ``name``; fails the test if the store has none."""
        if not isinstance(store, HasRelayLock):
            pytest.fail(
                f"{type(self).__qualname__} declares 'relay-lock' but "
                f"{type(store).__qualname__} has no relay_lock(name) method"
            )
        return store.relay_lock(name)

    @requires(Capability.RELAY_LOCK)
    def test_only_one_holder_per_relay_name(self, store: EventStore) -> None:
        """While one lock holds a name, another cannot take it; other names are free."""
        first, second = self.lock(store, "orders"), self.lock(store, "orders")
        other = self.lock(store, "billing")
        try:
            assert first.acquire() is True, "first acquire of a free name failed"
            assert first.held() is True
            assert first.acquire() is True, "re-acquiring a lock already held must succeed"
            assert second.acquire() is False, "a second holder took a name already held"
            assert second.held() is False
            assert other.acquire() is True, "a different relay name must be independent"
        finally:
            for lock in (first, second, other):
                lock.release()

    @requires(Capability.RELAY_LOCK)
    def test_release_lets_the_next_holder_in(self, store: EventStore) -> None:
        """After release the lock is not held and another holder can take it;
        releasing twice is harmless."""
        first, second = self.lock(store, "orders"), self.lock(store, "orders")
        try:
            assert first.acquire() is True
            first.release()
            first.release()
            assert first.held() is False
            assert second.acquire() is True, "the name stayed locked after release"
            assert first.acquire() is False, "the released holder took it back from the new one"
        finally:
            first.release()
            second.release()

    @requires(Capability.RELAY_LOCK)
    def test_acquire_waits_up_to_its_timeout(self, store: EventStore) -> None:
        """``acquire(timeout)`` waits for a holder that releases within the timeout,
        and gives up (False) when none does."""
        first, second = self.lock(store, "orders"), self.lock(store, "orders")
        try:
            assert first.acquire() is True
            started = time.monotonic()
            assert second.acquire(timeout=0.3) is False
            assert time.monotonic() - started >= 0.25, "acquire gave up before its timeout"

            releaser = threading.Timer(0.3, first.release)
            releaser.start()
            try:
                assert second.acquire(timeout=10.0) is True, "waiting acquire never got the lock"
            finally:
                releaser.join()
            assert second.held() is True
        finally:
            first.release()
            second.release()
