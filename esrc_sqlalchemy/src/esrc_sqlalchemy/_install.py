"""How to install the SQL backend's drivers; imported by the light entry point and by
the modules that report a missing driver (no other imports, so no cycle)."""

from __future__ import annotations

__all__ = ["INSTALL_HINT"]

INSTALL_HINT = (
    'pip install "esrc-sqlalchemy[postgresql]" for PostgreSQL (psycopg 3 over the '
    'system\'s libpq; "esrc-sqlalchemy[postgresql-binary]" brings its own), '
    '"esrc-sqlalchemy[mysql]" for MariaDB/MySQL (PyMySQL); SQLite needs nothing more'
)
"""How to install the drivers of the SQL backend."""
