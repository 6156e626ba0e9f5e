"""The ``esrc relay`` process against real servers: two relays of one name (one
publishes, the other waits and takes over when the first dies), and a clean stop on
SIGTERM (the batch in flight finished, the lock released, exit status 0)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from .conftest import RELAY_SETTINGS, Broker, Database
from .harness import RelayProcess, Writers, check_delivery, outbox_order, wait_until


def _arguments(database: Database, broker: Broker, name: str) -> list[str]:
    return [*database.arguments(), *broker.arguments(), "--name", name, *RELAY_SETTINGS]


@pytest.mark.parametrize("broker", ["rabbitmq"], indirect=True)
@pytest.mark.parametrize("database", ["sqlite", "postgresql"], indirect=True)
def test_two_relays_of_one_name_only_one_publishes(
    database: Database, broker: Broker, tmp_path: Path, unique: str
) -> None:
    """Two relay processes with the same name, started at once: one takes the lock, the
    other waits on standby and publishes nothing while the first lives; SIGKILL the
    first and the other takes over where it stopped."""
    name = f"relay-{unique}"
    writers = Writers(database.store, seed=4)
    writers.start()
    one = RelayProcess(tmp_path / "one.log", _arguments(database, broker, name))
    two = RelayProcess(tmp_path / "two.log", _arguments(database, broker, name))
    try:
        for process in (one, two):
            process.wait_for_state("relaying", "standby")
        holding = [p for p in (one, two) if p.wait_for_state("relaying", "standby").holds_lock]
        assert len(holding) == 1, (
            f"{len(holding)} relays hold the lock:\n{one.tail()}\n{two.tail()}"
        )
        first = holding[0]
        second = two if first is one else one
        first.wait_for_status(lambda s: s.relayed > 0, "the first relay publishes")
        probe = database.store.relay_lock(name)
        assert probe.acquire() is False, "the relay lock is free while the first relay runs"
        time.sleep(1.0)  # the second relay has every chance to publish, and must not
        standby = second.status()
        assert standby is not None
        assert (standby.state, standby.holds_lock, standby.relayed) == ("standby", False, 0), (
            f"the standby relay is not idle: {standby}\n{second.tail()}"
        )
        first.kill()
        took_over = second.wait_for_status(
            lambda s: s.holds_lock, "the second relay takes the lock over"
        )
        assert took_over.took_over, took_over
        writers.stop()
        wait_until(
            lambda: database.store.outbox(name).unpublished_events(1) == [],
            "the second relay has published everything",
        )
        assert second.terminate() == 0, second.tail()
        assert second.final_status().relayed > 0, second.tail()
        writers.check_versions()
        expected = outbox_order(database.store, f"check-{name}")
        check_delivery(broker.read(len(expected)), expected, duplicates=broker.duplicates)
    finally:
        writers.stop()
        one.close()
        two.close()


@pytest.mark.parametrize("broker", ["rabbitmq"], indirect=True)
@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_sigterm_finishes_the_batch_releases_the_lock_and_exits_0(
    database: Database, broker: Broker, tmp_path: Path, unique: str
) -> None:
    """SIGTERM while events keep coming: the relay exits 0 and frees its lock, and what
    the broker holds is exactly what the relay marked published: a prefix of the
    outbox order, with nothing published and left unmarked."""
    name = f"relay-{unique}"
    writers = Writers(database.store, seed=5)
    writers.start()
    relay = RelayProcess(tmp_path / "relay.log", _arguments(database, broker, name))
    try:
        relay.wait_for_status(lambda s: s.holds_lock, "the relay holds the lock")
        relay.wait_for_status(lambda s: s.relayed > 0, "the relay publishes")
        status = relay.terminate()
        writers.stop()
        assert status == 0, f"exit status {status} on SIGTERM:\n{relay.tail()}"
        stopped = relay.final_status()
        assert not stopped.holds_lock
        probe = database.store.relay_lock(name)
        assert probe.acquire() is True, "the relay lock is still held after the relay exited"
        probe.release()
        expected = outbox_order(database.store, f"check-{name}")
        pending = database.store.outbox(name).unpublished_events(len(expected) + 1)
        marked = len(expected) - len(pending)
        assert expected[marked:] == pending, "the outbox progress is not a prefix"
        assert marked == stopped.relayed, f"marked {marked}, the relay reported {stopped.relayed}"
        delivered = broker.read(marked)
        assert [e.message_id for e in delivered] == [e.message_id for e in expected[:marked]], (
            "the broker should hold exactly the events marked published"
        )
    finally:
        writers.stop()
        relay.close()
