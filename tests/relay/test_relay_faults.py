"""The relay process under faults, against real servers, with writers appending
throughout: the relay process SIGKILLed again and again, the broker connection cut,
the database sessions terminated. Afterwards a consumer reads everything the broker
got, and it must be every appended event, first delivered in the outbox order, each
repeat an exact copy of an earlier delivery (none at all on JetStream).

Terminating the database connection applies to PostgreSQL only: SQLite has no
server and no connection to lose, so that fault does not exist there.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import RELAY_SETTINGS, Broker, Database
from .harness import RelayProcess, Writers, check_delivery, outbox_order, wait_until

KILLS = 20
DROPS = 5
STANDBYS = 2
"""Relay processes kept waiting on standby, so that a kill is taken over at once."""


class Relays:
    """The relay processes of one test, started with the same arguments."""

    def __init__(self, directory: Path, database: Database, broker: Broker, name: str) -> None:
        self.directory = directory
        self.arguments = [
            *database.arguments(),
            *broker.arguments(),
            "--name",
            name,
            *RELAY_SETTINGS,
        ]
        self.started: list[RelayProcess] = []

    def start(self) -> RelayProcess:
        process = RelayProcess(self.directory / f"relay-{len(self.started)}.log", self.arguments)
        self.started.append(process)
        return process

    def close(self) -> None:
        for process in self.started:
            process.close()

    def log(self) -> str:
        """Every process's log, one after the other."""
        return "\n".join(p.text() for p in self.started)


def _caught_up(database: Database, name: str) -> bool:
    return database.store.outbox(name).unpublished_events(1) == []


@dataclass
class _Scenario:
    """A fault scenario's parts: its random moments, the relay name, the relay
    processes and the writers appending throughout."""

    rng: random.Random
    name: str
    relays: Relays
    writers: Writers


@contextlib.contextmanager
def _scenario(
    database: Database, broker: Broker, tmp_path: Path, unique: str, *, seed: int
) -> Iterator[_Scenario]:
    """Start the writers; stop them and every relay process at the end."""
    name = f"relay-{unique}"
    scenario = _Scenario(
        random.Random(unique),
        name,
        Relays(tmp_path, database, broker, name),
        Writers(database.store, seed=seed),
    )
    scenario.writers.start()
    try:
        yield scenario
    finally:
        scenario.writers.stop()
        scenario.relays.close()


def _finish(
    writers: Writers, database: Database, broker: Broker, name: str, last: RelayProcess
) -> None:
    """Stop the writers, let ``last`` relay the rest, stop it with SIGTERM (exit 0),
    then check the streams and what the broker received."""
    writers.stop()
    wait_until(lambda: _caught_up(database, name), "the relay has published everything")
    status = last.terminate()
    assert status == 0, f"the relay exited with {status} on SIGTERM:\n{last.tail()}"
    writers.check_versions()
    expected = outbox_order(database.store, f"check-{name}")
    assert len(expected) == writers.appended, (
        f"the store holds {len(expected)} events, the writers appended {writers.appended}"
    )
    delivered = broker.read(len(expected))
    check_delivery(delivered, expected, duplicates=broker.duplicates)


def _took_over(standbys: list[RelayProcess]) -> RelayProcess | None:
    """The standby process that has taken the lock, if one has."""
    for process in standbys:
        status = process.status()
        if status is not None and status.holds_lock:
            return process
    return None


def _holds_lock(relay: RelayProcess) -> None:
    relay.wait_for_status(lambda s: s.holds_lock, "the relay holds the lock")


@pytest.mark.parametrize("broker", ["rabbitmq"], indirect=True)
@pytest.mark.parametrize("database", ["sqlite", "postgresql"], indirect=True)
def test_relay_process_sigkilled_20_times(
    database: Database, broker: Broker, tmp_path: Path, unique: str
) -> None:
    """SIGKILL the active relay process at a random moment, 20 times. Relay processes
    are started ahead and wait on standby for the lock; each time one of them takes
    over, and another is started. Nothing is lost or reordered; repeats are copies."""
    with _scenario(database, broker, tmp_path, unique, seed=1) as run:
        active = run.relays.start()
        _holds_lock(active)
        standbys = [run.relays.start() for _ in range(STANDBYS)]
        for _ in range(KILLS):
            time.sleep(run.rng.uniform(0.05, 0.8))
            active.kill()
            wait_until(lambda: _took_over(standbys) is not None, "a standby relay takes over", 120)
            taker = _took_over(standbys)
            assert taker is not None
            standbys.remove(taker)
            standbys.append(run.relays.start())
            active = taker
        for standby in standbys:
            standby.wait_for_state("standby")
            status = standby.terminate()
            assert status == 0, f"a standby exited with {status} on SIGTERM:\n{standby.tail()}"
        _finish(run.writers, database, broker, run.name, active)


def _drop_repeatedly(broker: Broker, rng: random.Random) -> None:
    """Cut the relay's broker connection DROPS times, at random moments, each time once
    the relay has a connection again."""
    for _ in range(DROPS):
        time.sleep(rng.uniform(0.2, 1.0))
        wait_until(lambda: broker.drop() > 0, "the relay has a broker connection to cut", 30)


@pytest.mark.parametrize(
    ("database", "broker"),
    [("sqlite", "rabbitmq"), ("postgresql", "rabbitmq"), ("postgresql", "nats")],
    indirect=True,
)
def test_broker_connection_dropped_while_relaying(
    database: Database, broker: Broker, tmp_path: Path, unique: str
) -> None:
    """Cut the relay's broker connection 5 times while it relays: it reconnects, with
    one log line per failed attempt, and nothing is lost or reordered."""
    with _scenario(database, broker, tmp_path, unique, seed=2) as run:
        relay = run.relays.start()
        _holds_lock(relay)
        _drop_repeatedly(broker, run.rng)
        _finish(run.writers, database, broker, run.name, relay)
        log = relay.text()
        final = relay.final_status()
        assert final.failed_attempts > 0, f"no failure noticed after {DROPS} drops:\n{log}"
        assert "Traceback" not in log, f"failures should be one line each:\n{log}"


@pytest.mark.parametrize("broker", ["nats"], indirect=True)
@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_database_sessions_terminated_while_relaying(
    database: Database, broker: Broker, tmp_path: Path, unique: str
) -> None:
    """Terminate every PostgreSQL session of the relay process 5 times while it relays
    (the lock's session too): it notices, takes the lock again, and goes on from its
    checkpoint; JetStream holds every event exactly once."""
    with _scenario(database, broker, tmp_path, unique, seed=3) as run:
        relay = run.relays.start()
        _holds_lock(relay)
        for _ in range(DROPS):
            time.sleep(run.rng.uniform(0.2, 1.0))
            wait_until(
                lambda: database.terminate_relay_sessions() > 0,
                "the relay has database sessions to terminate",
                30,
            )
        _finish(run.writers, database, broker, run.name, relay)
        log = relay.text()
        final = relay.final_status()
        assert final.failed_attempts > 0, f"no failure noticed:\n{log}"
        assert final.locks_lost > 0, f"the lost lock went unnoticed:\n{log}"
        assert " failed: StoreUnavailableError" in log, f"failures should name their class:\n{log}"
        assert "Traceback" not in log, f"failures should be one line each:\n{log}"
