"""Server URLs for tests that need a real database or broker.

A test that needs a server reads the server's URL from an environment variable. On a
developer's machine an unset variable skips the test with a reason that says how to set
it; under continuous integration (``CI=true``) it fails, so a misconfigured pipeline
cannot pass by skipping everything.
"""

from __future__ import annotations

import os
import socket
from typing import NoReturn
from urllib.parse import urlsplit

import pytest
from esrc_core.urls import mask_url

__all__ = ["in_ci", "reachable_url", "server_unreachable", "server_url"]


def in_ci() -> bool:
    """Whether the tests run under continuous integration (``CI`` is ``true``)."""
    return os.environ.get("CI", "").strip().lower() == "true"


def server_url(env_var: str, *, example: str | None = None) -> str:
    """The URL in environment variable ``env_var``.

    When it is unset or empty: calls ``pytest.skip`` with a reason naming the variable
    and how to set it (with ``example`` when given), or ``pytest.fail`` when
    :func:`in_ci` is true. Call it from a fixture or a test.
    """
    url = os.environ.get(env_var, "").strip()
    if url:
        return url
    how = f"export {env_var}={example}" if example else f"export {env_var}=<server URL>"
    if in_ci():
        pytest.fail(
            f"{env_var} is not set and CI=true: these tests need the server ({how})",
            pytrace=False,
        )
    pytest.skip(f"{env_var} is not set: {how} to run these tests against a real server")


def server_unreachable(env_var: str, url: str, error: BaseException) -> NoReturn:
    """Fail the current test because the server at ``url`` (read from ``env_var``)
    cannot be reached.

    A URL that is set but does not work is a configuration error, so this fails rather
    than skips, on a developer's machine as in CI. The message masks any password.
    """
    pytest.fail(
        f"cannot reach the server at {mask_url(url)} (from {env_var}): "
        f"{type(error).__name__}: {error}",
        pytrace=False,
    )


def reachable_url(env_var: str, *, example: str, default_port: int, timeout: float = 5) -> str:
    """The URL in environment variable ``env_var``, checked to accept TCP connections.

    Reads the URL as :func:`server_url` does (skip when unset, fail under CI), then
    opens and closes a TCP connection to its host and port (``default_port`` when the
    URL names none) within ``timeout`` seconds; when that fails, calls
    :func:`server_unreachable`. It checks that something listens, not that the server
    speaks the URL's protocol or accepts its credentials: a broker's tests learn that
    on their first real call.
    """
    url = server_url(env_var, example=example)
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), timeout
        ):
            pass
    except OSError as err:
        server_unreachable(env_var, url, err)
    return url
