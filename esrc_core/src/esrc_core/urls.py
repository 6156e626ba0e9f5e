"""Backend URLs: splitting off the scheme, and hiding passwords in anything printed."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable

__all__ = ["mask_url", "redact", "url_scheme", "url_secrets"]

# Parsers disagree on where a password ends: SQLAlchemy stops at its first "@" (and
# lets it hold "/", "?" and "#"), urllib-based ones at the last "@" before the first
# "/", "?" or "#". The mask covers both readings. A "user:5432/..." is a host and port,
# not a password, unless an "@" follows before any "/", "?" or "#".
_AUTHORITY_TAIL = r"(?:@[^@/?#]*(?=@))*"
_USERINFO = re.compile(
    r"^(?P<scheme>[^:/?#]+://)(?P<user>[^:/?#]*):"
    rf"(?P<password>(?!\d*(?:[/?#]|$))[^@]*{_AUTHORITY_TAIL}|[^@/?#]*{_AUTHORITY_TAIL})@"
)
_QUERY_SECRET = re.compile(r"(?i)([?&](?:password|passwd|pwd|secret|token)=)([^&#]*)")
# Without a well-formed "scheme://", anything from the first ":" to the last "@" may be a
# password ("user:pw@host", "postgresql:/user:pw@host"); masking too much beats leaking.
_LOOSE_USERINFO = re.compile(r"^(?P<head>[^:@]*):.*@")
_FRAGMENT_MIN = 3
"""Pieces of a secret shorter than this are not searched for in text to redact: they
would blank unrelated words and give away next to nothing."""


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***``: in the userinfo part and in
    query parameters named password, passwd, pwd, secret or token.

    Safe to call on malformed input; it never raises. Without a ``scheme://`` prefix,
    everything from the first ``:`` to the last ``@`` is masked.
    """
    if not isinstance(url, str):
        return repr(type(url))
    if url_scheme(url) is None:
        masked = _LOOSE_USERINFO.sub(r"\g<head>:***@", url, count=1)
    else:
        masked = _USERINFO.sub(r"\g<scheme>\g<user>:***@", url, count=1)
    return _QUERY_SECRET.sub(r"\1***", masked)


def url_secrets(url: str) -> frozenset[str]:
    """The secrets ``url`` holds, as any parser might read them: the password (up to
    the first ``@`` and up to the last one of the authority), its pieces between
    ``@``, ``:`` and ``/`` characters, and the values of query parameters that
    :func:`mask_url` masks. Pieces shorter than 3 characters are left out. Percent-encoded
    secrets are included decoded too. For :func:`redact`; never raises.
    """
    if not isinstance(url, str):
        return frozenset()
    found: set[str] = set()
    userinfo = _USERINFO.match(url) if url_scheme(url) is not None else None
    if userinfo is not None:
        password = userinfo["password"]
        found.add(password)
        found.update(re.split(r"[@:/]", password))
    found.update(m[2] for m in _QUERY_SECRET.finditer(url))
    found.update([urllib.parse.unquote(secret) for secret in found])
    return frozenset(secret for secret in found if len(secret) >= _FRAGMENT_MIN)


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each of ``secrets`` (longest first) replaced by
    ``***``: for messages that quote a driver, which may echo part of a password (a
    host name read from a URL whose password holds an unescaped ``@``)."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, "***")
    return text


def url_scheme(url: str) -> str | None:
    """The lower-cased scheme of ``url`` (``postgresql+psycopg`` in
    ``postgresql+psycopg://host/db``), or ``None`` if it has none. Driver names after a
    ``+`` may contain ``_``, as SQLAlchemy's do (``postgresql+psycopg_async``)."""
    scheme, sep, _ = url.partition("://")
    if not sep or not scheme or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.\-]*(\+[\w.\-]+)?", scheme):
        return None
    return scheme.lower()
