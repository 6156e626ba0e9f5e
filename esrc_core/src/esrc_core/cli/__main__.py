"""``python -m esrc_core.cli``: the ``esrc`` command."""

import sys

from esrc_core.cli._main import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main())
