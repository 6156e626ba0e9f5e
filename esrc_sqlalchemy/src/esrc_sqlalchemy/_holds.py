"""Held commits for tests (the ``hold-commits`` capability): an append whose events
carry a :class:`~esrc_core.late_commits.CommitHold`'s tag runs its statements, then
waits in SQLAlchemy's ``commit`` connection event until the hold is released.

Internal: :meth:`esrc_sqlalchemy.store.SqlEventStore.hold_commits` uses it. While a
hold is in force the store's appends take the transaction path (a SQLAlchemy
transaction on the dialect's ``base_engine``, whose commit the event sees) instead of
the direct one or an autocommit engine, whose single statement commits where no event
can stop it.
"""

from __future__ import annotations

import threading

import sqlalchemy as sa
from esrc_core.late_commits import CommitHold
from sqlalchemy.engine import Connection

from esrc_sqlalchemy._executor import StoreExecutor

__all__ = ["CommitHolds"]


class CommitHolds:
    """The holds in force on the appends one store's ``executor`` runs. Its
    ``commit`` listener joins the store's engine on the first hold and stays (a
    listener cannot leave while a held commit waits inside it); without holds it only
    checks a list. A transaction that sees a row carrying a hold's tag before that
    hold is released is the held append itself (nobody else sees its rows before it
    commits), and waits."""

    def __init__(self, executor: StoreExecutor) -> None:
        self._executor = executor
        self._holds: list[CommitHold] = []
        self._lock = threading.Lock()
        self._listening = False
        events = executor.tables.events
        self._tagged = sa.select(sa.literal(1)).where(
            events.c.metadata.like(sa.bindparam("pattern"))
        )

    def hold(self) -> CommitHold:
        """A new hold, in force until released."""
        hold = CommitHold(on_release=lambda: self._forget(hold))
        with self._lock:
            if not self._listening:
                sa.event.listen(self._executor.dialect.base_engine, "commit", self._stop)
                self._listening = True
            self._holds.append(hold)
            self._executor.begin_transactional_writes()
        return hold

    def _forget(self, hold: CommitHold) -> None:
        with self._lock:
            self._holds.remove(hold)
            self._executor.end_transactional_writes()

    def _stop(self, conn: Connection) -> None:
        with self._lock:
            holds = list(self._holds)
        for hold in holds:
            found = conn.execute(self._tagged.limit(1), {"pattern": f"%{hold.tag}%"}).first()
            if found is not None:
                hold.stop_here()
                return
