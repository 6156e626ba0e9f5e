"""The exit statuses of the ``esrc`` command (the table is in
:mod:`esrc_core.cli._main`, which decides them; a command that returns a status of
its own, such as ``esrc migrate --check``, takes it from here)."""

from __future__ import annotations

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_MIGRATION_DUE",
    "EXIT_OK",
    "EXIT_PIPE_CLOSED",
    "EXIT_USAGE",
]

EXIT_OK = 0
"""The command did what it was asked."""
EXIT_FAILED = 1
"""The operation was tried and failed."""
EXIT_USAGE = 2
"""The command cannot work as given: fix the command line, a URL, an option or the
installation."""
EXIT_MIGRATION_DUE = 3
"""``esrc migrate --check``: the schema is missing or older than the installed backend
needs (not 1, which a store that cannot be reached gives, so that a deployment script
can tell "migrate first" from "try again later")."""
EXIT_INTERRUPTED = 130
"""Interrupted by Ctrl-C (``KeyboardInterrupt``)."""
EXIT_PIPE_CLOSED = 141
"""Standard output was closed by its reader (128 + SIGPIPE, as a shell reports a
command a pipe ended)."""
