"""The web console benchmark's seeding on a small shape: the rows read back through the
store as the store would have written them, and a seeded database is reused."""

from __future__ import annotations

from pathlib import Path

from bench.console_data import TYPES, Shape, seed
from esrc_core import Inspectable, decode_id, open_event_store


def test_seeding_writes_the_shape_and_is_reused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'console.db'}"
    shape = Shape(streams=100, events=1_000, big_stream=100, snapshot_every=10)
    said: list[str] = []
    first = seed(url, "bench_t_", shape, said.append)
    again = seed(url, "bench_t_", shape, said.append)
    assert (first.written, again.written) == (True, False), said

    store = open_event_store(url, table_prefix="bench_t_")
    try:
        assert isinstance(store, Inspectable)
        streams = store.streams()
        assert len(streams) == shape.streams
        assert {s.aggregate_type for s in streams} == set(TYPES)
        assert sum(s.version for s in streams) == shape.events
        big_type, big_id = shape.key(0)
        assert len(store.events(big_type, decode_id(big_id))) == shape.big_stream
        assert store.latest_snapshot(big_type, decode_id(big_id)) is not None

        invoice_type, invoice_id = shape.key(1)
        events = store.recorded_events(invoice_type, decode_id(invoice_id))
        assert events[2].event.metadata == {
            "correlation_id": f"Invoice/{invoice_id}/1",
            "causation_id": f"Invoice/{invoice_id}/2",
        }
        positions = [e.position for e in events]
        assert positions == sorted(positions)

        relays = {r.name: (r.published, r.pending) for r in store.relays()}
        assert relays == {
            name: (position, shape.events - position) for name, position in shape.relays().items()
        }
    finally:
        store.close()
