"""Stores whose schema can be created or upgraded ahead of time (``esrc migrate``)."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["Migratable", "MigrationOutcome", "MigrationResult", "SchemaState"]


class MigrationOutcome(enum.StrEnum):
    """What :meth:`Migratable.migrate` did."""

    CREATED = "created"
    """There was no schema; it was created at the current version."""
    UPGRADED = "upgraded"
    """The schema was at an older version and was brought to the current one."""
    CURRENT = "current"
    """The schema was at the current version already; nothing changed."""


@dataclass(frozen=True)
class SchemaState:
    """Where a store's schema stands: ``version`` is the version found (``None`` when
    there is no schema), ``target`` the version the installed backend needs."""

    version: int | None
    target: int

    @property
    def due(self) -> bool:
        """Whether :meth:`Migratable.migrate` has work to do (no schema, or an older
        one). A schema newer than ``target`` is not due: a newer release wrote it."""
        return self.version is None or self.version < self.target


@dataclass(frozen=True)
class MigrationResult:
    """What :meth:`Migratable.migrate` found and did: the version before (``None``
    when there was no schema), the version after, and the :class:`MigrationOutcome`."""

    outcome: MigrationOutcome
    before: int | None
    after: int


@runtime_checkable
class Migratable(Protocol):
    """A store capability: its tables (or other schema) can be migrated on demand.

    :meth:`migrate` brings the schema to the version the installed backend needs. It
    is idempotent, and safe to run from several processes at once. Stores that
    create their schema on first use still offer it, so deployments can migrate
    before the application starts.
    """

    def migrate(self) -> MigrationResult:
        """Create or upgrade the schema and say what was done; raise an
        :class:`~esrc_core.errors.EsrcError` (e.g.
        :class:`~esrc_core.errors.StoreUnavailableError`) when it cannot, and when the
        schema was written by a newer release."""
        ...

    def schema_state(self) -> SchemaState:
        """Read where the schema stands, changing nothing (``esrc migrate --check``);
        raises as :meth:`migrate` does when the store cannot be reached."""
        ...

    def schema_sql(self) -> Sequence[str]:
        """The statements that create the current schema in an empty database, in
        order, each without its terminator (``esrc migrate --sql``). Built without
        connecting: nothing is read or changed. Upgrading an existing schema may take
        steps that read the data, which only :meth:`migrate` runs."""
        ...
