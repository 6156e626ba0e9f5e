"""The ``esrc`` commands, one module per command group. Each module declares its
commands in ``COMMANDS`` (see :class:`esrc_core.cli._command.Command`); the registry
finds every module here, so adding a command is adding a module."""

__all__: list[str] = []
