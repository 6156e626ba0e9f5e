"""Stores whose schema can be created or upgraded ahead of time (``esrc migrate URL``)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["Migratable"]


@runtime_checkable
class Migratable(Protocol):
    """A store capability: its tables (or other schema) can be migrated on demand.

    :meth:`migrate` brings the schema to the version the installed backend needs. It
    is idempotent, and safe to run from several processes at once. Stores that
    create their schema on first use still offer it, so deployments can migrate
    before the application starts.
    """

    def migrate(self) -> None:
        """Create or upgrade the schema; raise an :class:`~esrc_core.errors.EsrcError`
        (e.g. :class:`~esrc_core.errors.StoreUnavailableError`) when it cannot."""
        ...
