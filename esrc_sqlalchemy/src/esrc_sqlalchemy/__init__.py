"""SQL event store for esrc on SQLAlchemy (SQLite, PostgreSQL, MySQL/MariaDB)."""

__all__: list[str] = []
