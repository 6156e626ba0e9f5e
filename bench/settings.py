"""The knobs of a run: how much work each figure does, how often, and where."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "APPEND_BATCH",
    "BIG_STREAM",
    "BIG_STREAM_QUICK",
    "FULL",
    "LARGE_AGGREGATE",
    "QUICK",
    "SMALL_AGGREGATE",
    "SNAPSHOT_AT",
    "TINY_AGGREGATE",
    "Settings",
    "Sizes",
]

TINY_AGGREGATE = 10
"""Events in the smallest aggregate loaded (no snapshot)."""
SMALL_AGGREGATE = 1_000
"""Events in the aggregate loaded without a snapshot."""
LARGE_AGGREGATE = 10_000
"""Events in the aggregate loaded from a snapshot."""
SNAPSHOT_AT = 9_900
"""Version of the large aggregate's snapshot: loading it replays the last 100 events."""
APPEND_BATCH = 10
"""Events per append in the multi-event append figure."""
BIG_STREAM = 1_000_000
"""Events of the stream the streaming-memory figure loads in a full run."""
BIG_STREAM_QUICK = 10_000
"""The same in a smoke run (``--quick``)."""


@dataclass(frozen=True)
class Sizes:
    """How much work one run of each figure does."""

    appends_one_thread: int
    """1-event appends (each to a new aggregate) in the single-thread run."""
    appends_per_thread: int
    """1-event appends each thread does in the multi-thread run."""
    batch_appends: int
    """10-event appends (each to an existing aggregate) in one run."""
    tiny_loads: int
    """Loads of the 10-event aggregate in one run."""
    small_loads: int
    """Loads of the 1,000-event aggregate in one run."""
    large_loads: int
    """Loads of the 10,000-event aggregate (snapshot at 9,900) in one run."""
    outbox_events: int
    """Events the outbox and relay figures read, and the raw side pages through."""
    warmup: int
    """Untimed operations each thread does first (connections, statement caches)."""


FULL = Sizes(
    appends_one_thread=1_000,
    appends_per_thread=250,
    batch_appends=500,
    tiny_loads=1_000,
    small_loads=30,
    large_loads=200,
    outbox_events=100_000,
    warmup=20,
)
"""The sizes of a real run."""

QUICK = Sizes(
    appends_one_thread=50,
    appends_per_thread=10,
    batch_appends=30,
    tiny_loads=20,
    small_loads=3,
    large_loads=10,
    outbox_events=5_000,
    warmup=3,
)
"""The sizes of a smoke run (``--quick``): every code path, no meaningful figures."""


@dataclass(frozen=True)
class Settings:
    """Everything that shapes a run; recorded with the results."""

    backends: tuple[str, ...]
    repeat: int
    quick: bool
    sizes: Sizes
    threads: int
    batch_size: int
    urls: dict[str, str]
    results_dir: Path | None
    keep_tables: bool
    big_stream: int = 0
    """Events of the stream the streaming-memory figure loads (0: no such figure)."""
    table_prefix: str = "bench_esrc_"
    """Prefix of the backend's tables (``table_prefix=`` of the SQL store)."""
    raw_prefix: str = "bench_raw_"
    """Prefix of the raw side's tables."""
    stall_timeout: float = 30.0
    """Seconds the outbox figures wait for events held back by a transaction in flight
    elsewhere on the server before recording the run as incomplete."""
    connect_timeout: float = 5.0
    """Seconds to wait for a server before reporting its backend as skipped."""

    def to_json(self, masked_urls: dict[str, str]) -> dict[str, Any]:
        """The settings as a JSON object, with ``masked_urls`` in place of the URLs."""
        return {
            "backends": list(self.backends),
            "repeat": self.repeat,
            "quick": self.quick,
            "sizes": asdict(self.sizes),
            "threads": self.threads,
            "batch_size": self.batch_size,
            "big_stream": self.big_stream,
            "urls": masked_urls,
            "table_prefix": self.table_prefix,
            "raw_prefix": self.raw_prefix,
            "stall_timeout": self.stall_timeout,
            "tiny_aggregate": TINY_AGGREGATE,
            "small_aggregate": SMALL_AGGREGATE,
            "large_aggregate": LARGE_AGGREGATE,
            "snapshot_at": SNAPSHOT_AT,
            "append_batch": APPEND_BATCH,
        }
