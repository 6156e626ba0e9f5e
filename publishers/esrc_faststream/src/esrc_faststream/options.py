"""Publisher options given in a URL's query string or as keyword arguments.

``open_publisher("nats://host:4222?stream=ORDERS&timeout=5")`` and
``open_publisher("nats://host:4222", stream="ORDERS", timeout=5)`` mean the same; a
keyword argument wins over the query string. Query parameters a publisher does not
know stay in the URL for the broker client.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from esrc_core.errors import BackendConfigError
from esrc_core.urls import mask_url

__all__ = ["Converter", "check_server_url", "flag", "optional_int", "split_options"]

Converter = Callable[[str], Any]
"""Turns an option's query-string text into its value; raises ``ValueError``."""

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def flag(text: str) -> bool:
    """``true``/``false`` (also ``1``/``0``, ``yes``/``no``, ``on``/``off``) as a bool."""
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def optional_int(text: str) -> int | None:
    """A decimal integer, or ``None`` for an empty value or ``none``."""
    stripped = text.strip()
    if stripped.lower() in {"", "none"}:
        return None
    return int(stripped)


def split_options(
    url: str, known: Mapping[str, Converter], given: Mapping[str, Any]
) -> tuple[str, dict[str, Any]]:
    """Take the ``known`` options out of ``url``'s query string and merge ``given``.

    Returns the URL without those parameters and the options: converted query values,
    overridden by ``given``. Raises :class:`~esrc_core.errors.BackendConfigError` (with
    the URL masked) for a keyword option that is not ``known`` and for a query value
    that does not convert.
    """
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise BackendConfigError(
            f"open a publisher for {mask_url(url)!r}: unknown options {', '.join(unknown)}; "
            f"known: {', '.join(sorted(known))}"
        )
    parts = urlsplit(url)
    options: dict[str, Any] = {}
    rest: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        convert = known.get(key)
        if convert is None:
            rest.append((key, value))
            continue
        try:
            options[key] = convert(value)
        except ValueError as err:
            raise BackendConfigError(f"option {key} in {mask_url(url)!r}: {err}") from err
    options.update(given)
    return urlunsplit(parts._replace(query=urlencode(rest))), options


def check_server_url(url: str, *, schemes: Collection[str], broker: str) -> None:
    """Check that ``url`` names a server a ``broker`` client can connect to: a scheme
    among ``schemes``, a host (except for ``unix://`` socket paths), and a numeric port
    if one is given.

    Raises :class:`~esrc_core.errors.BackendConfigError` naming the masked URL and what
    to change; the check reads the text only, it never connects.
    """
    problem = None
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError for a port that is not a number in range
    except ValueError as err:
        problem = str(err)
    else:
        if parts.scheme.lower() not in schemes:
            wanted = ", ".join(f"{scheme}://" for scheme in sorted(schemes))
            problem = f"the scheme must be one of {wanted}"
        elif not parts.hostname and parts.scheme.lower() != "unix":
            problem = f"name the host, e.g. {parts.scheme}://localhost" + (
                f":{port}" if port else ""
            )
    if problem is not None:
        raise BackendConfigError(f"{broker} URL {mask_url(url)!r}: {problem}")
