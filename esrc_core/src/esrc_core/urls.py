"""Backend URLs: splitting off the scheme, and hiding passwords in anything printed."""

from __future__ import annotations

import re

__all__ = ["mask_url", "url_scheme"]

# The password runs to the last "@" of the authority, so an unescaped "@" in it is
# masked too rather than leaking what follows it.
_USERINFO = re.compile(r"^(?P<scheme>[^:/?#]+://)(?P<user>[^:@/?#]*):(?P<password>[^/?#]*)@")
_QUERY_SECRET = re.compile(r"(?i)([?&](?:password|passwd|pwd|secret|token)=)[^&#]*")
# Without a well-formed "scheme://", anything from the first ":" to the last "@" may be a
# password ("user:pw@host", "postgresql:/user:pw@host"); masking too much beats leaking.
_LOOSE_USERINFO = re.compile(r"^(?P<head>[^:@]*):.*@")


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


def url_scheme(url: str) -> str | None:
    """The lower-cased scheme of ``url`` (``postgresql+psycopg`` in
    ``postgresql+psycopg://host/db``), or ``None`` if it has none. Driver names after a
    ``+`` may contain ``_``, as SQLAlchemy's do (``postgresql+psycopg_async``)."""
    scheme, sep, _ = url.partition("://")
    if not sep or not scheme or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.\-]*(\+[\w.\-]+)?", scheme):
        return None
    return scheme.lower()
