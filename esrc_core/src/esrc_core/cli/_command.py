"""What an ``esrc`` command is: :class:`Command`, declared by each module of
:mod:`esrc_core.cli._commands`, and :class:`UsageError`, which a command raises for a
command line that parses but makes no sense."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = ["Command", "UsageError"]


@dataclass(frozen=True)
class Command:
    """One ``esrc`` command: its name, the one-line help ``esrc --help`` shows, a
    function that adds its arguments to its parser, and the function that runs it.

    ``run`` gets the parsed arguments and returns the exit status; it reports failures
    by raising (see :mod:`esrc_core.cli._main` for what each exception becomes), and a
    command line that parses but makes no sense by raising :class:`UsageError`.

    ``description`` is what ``esrc COMMAND --help`` says above the options (the
    one-line help when empty).

    ``environment`` maps options to the environment variables that give them when the
    command line does not (``{"--store": "ESRC_STORE_URL"}``); a flag's variable is
    ``true`` or ``false``. The command line wins over the environment, which wins over
    the option's default.
    """

    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    environment: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    description: str = ""


class UsageError(Exception):
    """A command line that parses but does not make sense, such as an id that is not
    of the type ``--id-type`` names: shown under the command's usage, exit status 2."""
