"""The ``esrc`` pytest plugin, registered through the ``pytest11`` entry point.

It is inert: it adds the ``--esrc-url`` option and the :func:`esrc_url` fixture, and
the ``--esrc-hypothesis-db`` option that the testkit's state machine reads; nothing
runs unless a test asks for it (no autouse fixtures, no collection hooks).
"""

from __future__ import annotations

import os

import pytest

__all__ = [
    "DATABASE_ENV_VAR",
    "DATABASE_OPTION",
    "DATABASE_OPTION_DEST",
    "ENV_VAR",
    "OPTION",
    "esrc_url",
    "pytest_addoption",
]

OPTION = "--esrc-url"
"""The command line option naming a store URL."""
ENV_VAR = "ESRC_URL"
"""The environment variable read when the option is not given."""
DATABASE_OPTION = "--esrc-hypothesis-db"
"""The command line option naming the directory of the state machine's hypothesis
example database (``none``: no database)."""
DATABASE_OPTION_DEST = "esrc_hypothesis_db"
"""Where pytest keeps :data:`DATABASE_OPTION`'s value (``config.getoption``)."""
DATABASE_ENV_VAR = "ESRC_TESTKIT_HYPOTHESIS_DB"
"""The environment variable read when :data:`DATABASE_OPTION` is not given."""


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--esrc-url`` and ``--esrc-hypothesis-db`` to the ``esrc`` option group."""
    group = parser.getgroup("esrc", "esrc event stores")
    group.addoption(
        OPTION,
        dest="esrc_url",
        default=None,
        metavar="URL",
        help=f"URL of the event store tests run against (default: ${ENV_VAR})",
    )
    group.addoption(
        DATABASE_OPTION,
        dest=DATABASE_OPTION_DEST,
        default=None,
        metavar="DIR",
        help=(
            "directory of the hypothesis example database of the testkit's state machine, "
            f"or 'none' for no database (default: ${DATABASE_ENV_VAR}, else hypothesis's "
            "own setting, .hypothesis/ in the working directory)"
        ),
    )


@pytest.fixture
def esrc_url(request: pytest.FixtureRequest) -> str:
    """The store URL given with ``--esrc-url``, else the ``ESRC_URL`` environment variable.

    Skips the test, saying how to give one, when neither is set.
    """
    url = request.config.getoption("esrc_url") or os.environ.get(ENV_VAR, "").strip()
    if not url:
        pytest.skip(f"no store URL: pass {OPTION}=URL or set {ENV_VAR}")
    return str(url)
