"""Events restored into a PostgreSQL cluster whose transaction counter is behind theirs
(a logical dump restored into a new cluster) are refused on the store's first use, not
relayed in a wrong order that would skip the events appended afterwards."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from esrc_sqlalchemy.testing import PrefixPool

from esrc_core import RawEvent
from esrc_sqlalchemy import SqlEventStore, StoreConfigError

RESTORED_FROM_AHEAD = 10**12
"""How far ahead of this cluster's counter the restored ids are made to be."""


def test_events_from_a_cluster_ahead_of_this_one_are_refused(
    postgresql_pool: PrefixPool,
) -> None:
    store = postgresql_pool.open()
    prefix = store.table_prefix
    store.add_aggregate("Order", 1, [RawEvent("Placed", b"{}")])
    outbox = store.outbox("projector")
    outbox.mark_events_as_published(outbox.unpublished_events(10))
    with store.engine.begin() as conn:  # what the other cluster's ids look like here
        conn.execute(
            store.tables.events.update().values(
                tx_id=store.tables.events.c.tx_id + RESTORED_FROM_AHEAD
            )
        )
        conn.execute(
            store.tables.checkpoints.update().values(
                tx_id=store.tables.checkpoints.c.tx_id + RESTORED_FROM_AHEAD
            )
        )
    store.close()
    restored = SqlEventStore(postgresql_pool.url, table_prefix=prefix)
    try:
        with pytest.raises(StoreConfigError) as raised:
            restored.append_events("Order", 1, 1, [RawEvent("Paid", b"{}")])
        message = str(raised.value)
        assert "restored from a logical dump into another cluster" in message
        assert f"{prefix}events" in message
        assert "pg_resetwal" in message
        with restored.engine.connect() as conn:
            count = conn.execute(sa.select(sa.func.count()).select_from(restored.tables.events))
            assert count.scalar() == 1, "the refused append wrote nothing"
    finally:
        restored.close()


def test_events_of_this_cluster_open_as_usual(postgresql_pool: PrefixPool) -> None:
    store = postgresql_pool.open()
    store.add_aggregate("Order", 1, [RawEvent("Placed", b"{}")])
    prefix = store.table_prefix
    store.close()
    reopened = SqlEventStore(postgresql_pool.url, table_prefix=prefix)
    try:
        reopened.append_events("Order", 1, 1, [RawEvent("Paid", b"{}")])
        assert [e.name for e in reopened.events("Order", 1)] == ["Placed", "Paid"]
    finally:
        reopened.close()
