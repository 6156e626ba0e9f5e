"""SQL event store for esrc on SQLAlchemy Core: SQLite, PostgreSQL and MariaDB/MySQL,
with an outbox whose order never skips an event that commits late.

Open one with ``esrc_core.open_event_store("sqlite:///events.db")`` (or a
``postgresql://`` / ``mysql://`` URL), or directly with :class:`SqlEventStore`, which
also takes an existing SQLAlchemy ``Engine``.
"""

from esrc_sqlalchemy.errors import StoreConfigError
from esrc_sqlalchemy.outbox import SqlOutbox
from esrc_sqlalchemy.schema import SCHEMA_VERSION
from esrc_sqlalchemy.store import DEFAULT_MAX_PAYLOAD, SqlEventStore

__all__ = [
    "DEFAULT_MAX_PAYLOAD",
    "SCHEMA_VERSION",
    "SqlEventStore",
    "SqlOutbox",
    "StoreConfigError",
]
