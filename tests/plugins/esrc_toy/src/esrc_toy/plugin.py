"""Entry point of the toy backends (group ``esrc``, name ``toy``).

``toy://`` is a working store; ``toy://name`` keeps its data under ``name`` for the
life of the process. ``toy-noversioncheck://``, ``toy-offbyone://`` and the other
schemes listed in :mod:`esrc_toy.broken` open its stores, which are broken on purpose
so the testkit can show that it catches their bugs.
``toy-late://`` and ``toy-lateskip://`` open the stores of :mod:`esrc_toy.late`, whose
appends commit late when a test holds them: one works, one is broken on purpose.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from esrc_core import Backend, Capability, hookimpl

__all__ = ["esrc_store_backends"]

_CAPABILITIES = frozenset(
    {
        Capability.SNAPSHOTS,
        Capability.OUTBOX,
        Capability.RELAY_LOCK,
        Capability.THREADS,
        Capability.PERSISTENT,
    }
)


def _opener(kind: str) -> Callable[..., Any]:
    def open_store(url: str, **options: Any) -> Any:
        from esrc_toy import broken, late, store

        if options:
            raise TypeError(f"{kind} stores take no options, got {sorted(options)}")
        classes = {
            "toy": store.ToyEventStore,
            "toy-noversioncheck": broken.NoVersionCheckStore,
            "toy-unordered": broken.UnorderedOutboxStore,
            "toy-nonatomic": broken.NonAtomicStore,
            "toy-pagegap": broken.PageGapStore,
            "toy-staysopen": broken.StaysOpenStore,
            "toy-offbyone": broken.OffByOneReadStore,
            "toy-streamorder": broken.StreamOrderOutboxStore,
            "toy-snapshotkey": broken.SnapshotKeyStore,
            "toy-overmark": broken.OverMarkingStore,
            "toy-keepsnapshot": broken.FirstSnapshotWinsStore,
            "toy-sharedlock": broken.SharedRelayLockStore,
            "toy-racycheck": broken.RacyCheckThenWriteStore,
            "toy-splitunits": broken.SplitUnitStore,
            "toy-leakydelete": broken.LeakyDeleteStore,
            "toy-eagertruncate": broken.EagerTruncateStore,
            "toy-late": late.LateToyStore,
            "toy-lateskip": late.LateSkipStore,
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
            name="toy-offbyone",
            kind="store",
            schemes=("toy-offbyone",),
            factory=_opener("toy-offbyone"),
            capabilities=_CAPABILITIES,
            description="BROKEN ON PURPOSE: reading from version n includes version n",
        ),
        Backend(
            name="toy-streamorder",
            kind="store",
            schemes=("toy-streamorder",),
            factory=_opener("toy-streamorder"),
            capabilities=_CAPABILITIES,
            description="BROKEN ON PURPOSE: the outbox lists events stream by stream",
        ),
        Backend(
            name="toy-snapshotkey",
            kind="store",
            schemes=("toy-snapshotkey",),
            factory=_opener("toy-snapshotkey"),
            capabilities=_CAPABILITIES,
            description="BROKEN ON PURPOSE: snapshots keyed by str(id), 42 and '42' share",
        ),
        Backend(
            name="toy-overmark",
            kind="store",
            schemes=("toy-overmark",),
            factory=_opener("toy-overmark"),
            capabilities=_CAPABILITIES,
            description="BROKEN ON PURPOSE: marking a batch marks all the outbox handed out",
        ),
        Backend(
            name="toy-keepsnapshot",
            kind="store",
            schemes=("toy-keepsnapshot",),
            factory=_opener("toy-keepsnapshot"),
            capabilities=_CAPABILITIES,
            description="BROKEN ON PURPOSE: a second snapshot at one version is ignored",
        ),
        Backend(
            name="toy-sharedlock",
            kind="store",
            schemes=("toy-sharedlock",),
            factory=_opener("toy-sharedlock"),
            capabilities=_CAPABILITIES,
            description="BROKEN ON PURPOSE: acquiring a relay lock always succeeds",
        ),
        Backend(
            name="toy-racycheck",
            kind="store",
            schemes=("toy-racycheck",),
            factory=_opener("toy-racycheck"),
            capabilities=_CAPABILITIES,
            description="BROKEN ON PURPOSE: an append checks its version, then writes later",
        ),
        Backend(
            name="toy-splitunits",
            kind="store",
            schemes=("toy-splitunits",),
            factory=_opener("toy-splitunits"),
            capabilities=_CAPABILITIES | {Capability.UNITS_OF_WORK},
            description="BROKEN ON PURPOSE: a unit of work is stored one stream at a time",
        ),
        Backend(
            name="toy-leakydelete",
            kind="store",
            schemes=("toy-leakydelete",),
            factory=_opener("toy-leakydelete"),
            capabilities=_CAPABILITIES | {Capability.DELETE_STREAMS},
            description="BROKEN ON PURPOSE: a deleted stream's events stay in the outbox",
        ),
        Backend(
            name="toy-eagertruncate",
            kind="store",
            schemes=("toy-eagertruncate",),
            factory=_opener("toy-eagertruncate"),
            capabilities=_CAPABILITIES | {Capability.DELETE_STREAMS},
            description="BROKEN ON PURPOSE: truncation removes events relays have not published",
        ),
        Backend(
            name="toy-late",
            kind="store",
            schemes=("toy-late",),
            factory=_opener("toy-late"),
            capabilities=_CAPABILITIES | {Capability.HOLD_COMMITS},
            description="the toy store with appends that commit late when held",
        ),
        Backend(
            name="toy-lateskip",
            kind="store",
            schemes=("toy-lateskip",),
            factory=_opener("toy-lateskip"),
            capabilities=_CAPABILITIES | {Capability.HOLD_COMMITS},
            description="BROKEN ON PURPOSE: the outbox skips an append that commits late",
        ),
    ]
