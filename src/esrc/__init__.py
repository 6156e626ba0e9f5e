"""esrc: event sourcing for Python.

This distribution installs the family: ``esrc-core`` (the API: stores, ``Repository``,
aggregates, the relay, the ``esrc`` command), ``esrc-memory`` (``memory://``) and
``esrc-sqlalchemy`` (``sqlite://``; PostgreSQL and MariaDB/MySQL with the extras).
Import the API from :mod:`esrc_core`::

    from esrc_core import Repository, open_event_store

This package itself holds only the installed version, :data:`__version__`: one import
path per name keeps the documentation, tracebacks and type checkers saying the same
thing.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
"""The version of the esrc family; every esrc distribution of a release carries it."""
