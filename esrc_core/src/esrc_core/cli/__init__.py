"""The ``esrc`` command line.

:func:`main` runs it: ``esrc plugins``, ``esrc demo``, ``esrc migrate``, ``esrc
new-backend`` (a new backend distribution to fill in), the relay
process ``esrc relay``, and store inspection: ``esrc streams``, ``esrc events``,
``esrc tail``, ``esrc relays``. The functions behind the inspection commands are here
too, for programs that want the same reports: they take the streams to write to and
return the exit status. :mod:`esrc_core.cli.console` draws the tables.

Each command lives in a module of its own (``esrc_core/cli/_commands/``), found by a
small registry; ``main`` alone turns what a command raised into the exit status and
the one-line message (see ``docs/cli.md``).
"""

from esrc_core.cli._commands.inspect import (
    IdType,
    forget_relays,
    id_candidates,
    id_type_of,
    list_relays,
    list_streams,
    show_events,
)
from esrc_core.cli._commands.tail import tail
from esrc_core.cli._main import main
from esrc_core.cli._show import format_data

__all__ = [
    "IdType",
    "forget_relays",
    "format_data",
    "id_candidates",
    "id_type_of",
    "list_relays",
    "list_streams",
    "main",
    "show_events",
    "tail",
]
