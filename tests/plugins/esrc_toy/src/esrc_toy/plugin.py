"""Entry point of the toy backends (group ``esrc``, name ``toy``).

``toy://`` is a working store; ``toy://name`` keeps its data under ``name`` for the
life of the process. ``toy-noversioncheck://``, ``toy-unordered://``,
``toy-nonatomic://``, ``toy-pagegap://``, ``toy-staysopen://`` and
``toy-racycheck://`` open the stores in :mod:`esrc_toy.broken`, which are broken on
purpose so the testkit can show that it catches their bugs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from esrc_core import Backend, Capability, hookimpl

__all__ = ["esrc_store_backends"]

_CAPABILITIES = frozenset(
    {Capability.SNAPSHOTS, Capability.OUTBOX, Capability.THREADS, Capability.PERSISTENT}
)


def _opener(kind: str) -> Callable[..., Any]:
    def open_store(url: str, **options: Any) -> Any:
        from esrc_toy import broken, store

        if options:
            raise TypeError(f"{kind} stores take no options, got {sorted(options)}")
        classes = {
            "toy": store.ToyEventStore,
            "toy-noversioncheck": broken.NoVersionCheckStore,
            "toy-unordered": broken.UnorderedOutboxStore,
            "toy-nonatomic": broken.NonAtomicStore,
            "toy-pagegap": broken.PageGapStore,
            "toy-staysopen": broken.StaysOpenStore,
            "toy-racycheck": broken.RacyCheckThenWriteStore,
        }
        parts = urlsplit(url)
        name = (parts.netloc + parts.path).strip("/")
        return classes[kind](name=f"{kind}/{name}" if name else None, url=url)

    return open_store


@hookimpl
def esrc_store_backends() -> list[Backend]:
    """The toy store and its deliberately broken variants."""
    return [
        Backend(
            name="toy",
            kind="store",
            schemes=("toy",),
            factory=_opener("toy"),
            capabilities=_CAPABILITIES,
            description="a flat-list toy store (toy:// or toy://name)",
        ),
        Backend(
            name="toy-noversioncheck",
            kind="store",
            schemes=("toy-noversioncheck",),
            factory=_opener("toy-noversioncheck"),
            capabilities=_CAPABILITIES,
            description="BROKEN ON PURPOSE: appends ignore the expected version",
        ),
        Backend(
            name="toy-unordered",
            kind="store",
            schemes=("toy-unordered",),
            factory=_opener("toy-unordered"),
            capabilities=_CAPABILITIES,
            description="BROKEN ON PURPOSE: the outbox returns events newest first",
        ),
        Backend(
            name="toy-nonatomic",
            kind="store",
            schemes=("toy-nonatomic",),
            factory=_opener("toy-nonatomic"),
            capabilities=_CAPABILITIES,
            description="BROKEN ON PURPOSE: a failed batch leaves earlier events stored",
        ),
        Backend(
            name="toy-pagegap",
            kind="store",
            schemes=("toy-pagegap",),
            factory=_opener("toy-pagegap"),
            capabilities=_CAPABILITIES | {Capability.STREAMING},
            description="BROKEN ON PURPOSE: reading in pages skips an event per page",
        ),
        Backend(
            name="toy-staysopen",
            kind="store",
            schemes=("toy-staysopen",),
            factory=_opener("toy-staysopen"),
            capabilities=_CAPABILITIES,
            description="BROKEN ON PURPOSE: close() leaves the store open",
        ),
        Backend(
            name="toy-racycheck",
            kind="store",
            schemes=("toy-racycheck",),
            factory=_opener("toy-racycheck"),
            capabilities=_CAPABILITIES,
            description="BROKEN ON PURPOSE: an append checks its version, then writes later",
        ),
    ]
