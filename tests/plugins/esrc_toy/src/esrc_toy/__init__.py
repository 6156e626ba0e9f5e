"""esrc-toy: a tiny third-party esrc backend, written against esrc_core's public API
only, to show that the testkit works for outside authors.

``toy://`` is a working (if slow) store with an outbox and relay locks. The stores of
the ``toy-*://`` schemes (``toy-noversioncheck://`` and the others listed in
:mod:`esrc_toy.broken`) are broken on purpose.
"""

from esrc_toy.store import ToyEventStore, ToyOutbox, ToyRelayLock, forget

__all__ = ["ToyEventStore", "ToyOutbox", "ToyRelayLock", "forget"]
