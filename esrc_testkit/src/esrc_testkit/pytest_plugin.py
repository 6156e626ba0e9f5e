"""The ``esrc`` pytest plugin, registered through the ``pytest11`` entry point.

It is inert: it adds the ``--esrc-url`` option and the :func:`esrc_url` fixture, and
nothing runs unless a test asks for it (no autouse fixtures, no collection hooks).
"""

from __future__ import annotations

import os

import pytest

__all__ = ["ENV_VAR", "OPTION", "esrc_url", "pytest_addoption"]

OPTION = "--esrc-url"
"""The command line option naming a store URL."""
ENV_VAR = "ESRC_URL"
"""The environment variable read when the option is not given."""


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--esrc-url`` to the ``esrc`` option group."""
    group = parser.getgroup("esrc", "esrc event stores")
    group.addoption(
        OPTION,
        dest="esrc_url",
        default=None,
        metavar="URL",
        help=f"URL of the event store tests run against (default: ${ENV_VAR})",
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
