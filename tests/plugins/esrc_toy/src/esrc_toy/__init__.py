"""esrc-toy: a tiny third-party esrc backend, written against esrc_core's public API
only, to show that the testkit works for outside authors.

``toy://`` is a working (if slow) store with an outbox. The ``toy-noversioncheck://``,
``toy-unordered://``, ``toy-nonatomic://`` and ``toy-pagegap://`` stores are broken on
purpose; see :mod:`esrc_toy.broken`.
"""

from esrc_toy.store import ToyEventStore, ToyOutbox, forget

__all__ = ["ToyEventStore", "ToyOutbox", "forget"]
