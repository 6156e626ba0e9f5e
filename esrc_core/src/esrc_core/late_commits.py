"""Late commits on purpose: the test hook through which a store holds an append inside
its transaction, so that later appends commit before it.

An append takes its positions when it writes its events and becomes visible when it
commits; on a database where writers do not take turns, a transaction that took
position 7 can commit after the one that took position 8. An outbox that reads "past
the highest position handed out" then skips 7 for ever: the classic outbox bug. The
testkit's :class:`~esrc_testkit.LateCommitAcceptance` provokes exactly that through
this hook and checks that every reader still sees every event once, in one order.

A store offers the hook (the ``hold-commits`` capability) by implementing
:class:`HoldsCommits`. :meth:`HoldsCommits.hold_commits` returns a :class:`CommitHold`;
an append any of whose events carries the hold's :attr:`CommitHold.metadata` stops
after writing its events and before committing, calling :meth:`CommitHold.stop_here`
in the thread that appends, until the test calls :meth:`CommitHold.release`. A store
whose commits cannot land out of position order (one lock around every write, as the
memory store; one database write lock, as SQLite) cannot offer the hook: a held
append would hold every other writer too, so there is no late commit to provoke.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType, TracebackType
from typing import Protocol, Self, runtime_checkable

from esrc_core.events import RawEvent

__all__ = ["HOLD_COMMIT_KEY", "CommitHold", "HoldsCommits"]

HOLD_COMMIT_KEY = "esrc-hold-commit"
"""The metadata key that marks an event whose append a :class:`CommitHold` stops; its
value is the hold's :attr:`~CommitHold.tag`."""

STOP_LIMIT_SECONDS = 300.0
"""How long :meth:`CommitHold.stop_here` waits for :meth:`CommitHold.release` at most,
so that a test that fails before releasing does not leave a writer stuck for ever."""


class CommitHold:
    """One hold: appends whose events carry :attr:`metadata` wait inside their
    transaction until :meth:`release`.

    The test side calls :meth:`wait_held` (the held appends have taken their positions
    and wait) and :meth:`release`; the store side calls :meth:`holds` to recognise a
    held append and :meth:`stop_here` inside its transaction, after writing its events
    and before committing. Usable as a context manager, which releases on exit.
    Thread-safe. ``on_release`` (given by the store) runs once, on the first
    :meth:`release`, before the held appends go on.
    """

    def __init__(self, on_release: Callable[[], None] | None = None) -> None:
        self.tag = uuid.uuid4().hex
        """This hold's unique tag, the value of :data:`HOLD_COMMIT_KEY`."""
        self._on_release = on_release
        self._condition = threading.Condition()
        self._held = 0
        self._released = False

    def __repr__(self) -> str:
        state = "released" if self._released else f"holding {self._held}"
        return f"CommitHold({self.tag}, {state})"

    @property
    def metadata(self) -> Mapping[str, str]:
        """The metadata to add to an event so that its append is held:
        ``RawEvent(name, data, {**other, **hold.metadata})``."""
        return MappingProxyType({HOLD_COMMIT_KEY: self.tag})

    @property
    def released(self) -> bool:
        """Whether :meth:`release` was called."""
        with self._condition:
            return self._released

    def holds(self, events: Iterable[RawEvent]) -> bool:
        """Whether an append of ``events`` is one this hold stops: one of them carries
        its tag, and the hold is not released yet."""
        tagged = any(e.metadata.get(HOLD_COMMIT_KEY) == self.tag for e in events)
        return tagged and not self.released

    def stop_here(self) -> None:
        """Called by the store inside a held append's transaction, after its events are
        written and before it commits: count the append as held and wait until
        :meth:`release` (at most :data:`STOP_LIMIT_SECONDS`), then return so that it
        commits."""
        with self._condition:
            self._held += 1
            self._condition.notify_all()
            self._condition.wait_for(lambda: self._released, timeout=STOP_LIMIT_SECONDS)

    def wait_held(self, count: int = 1, timeout: float = 30.0) -> None:
        """Return once ``count`` appends are stopped at this hold (they have taken their
        positions and not committed); raise ``TimeoutError`` saying how many arrived
        when fewer did within ``timeout`` seconds."""
        with self._condition:
            if not self._condition.wait_for(lambda: self._held >= count, timeout=timeout):
                raise TimeoutError(
                    f"hold {self.tag}: {self._held} of {count} appends stopped within {timeout}s"
                )

    def release(self) -> None:
        """Let the held appends commit; appends that come later are not held. Calling it
        again does nothing."""
        with self._condition:
            if self._released:
                return
            self._released = True
        if self._on_release is not None:
            self._on_release()
        with self._condition:
            self._condition.notify_all()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


@runtime_checkable
class HoldsCommits(Protocol):
    """A store capability for tests (``hold-commits``): it can hold an append inside
    its transaction, after the append took its positions and before it commits, while
    other appends go on and commit. Only for tests: never used by applications."""

    def hold_commits(self) -> CommitHold:
        """A new hold. From now until :meth:`CommitHold.release`, an append
        (``add_aggregate`` or ``append_events``) any of whose events carries the hold's
        :attr:`~CommitHold.metadata` writes its events, then calls
        :meth:`~CommitHold.stop_here` in the appending thread before it commits; other
        appends, reads and outboxes are not held and do not wait for it (except as the
        store's own rules say, e.g. an outbox holding back events until the held
        transaction ends). Raises :class:`~esrc_core.errors.NotSupportedError`, saying
        why, where the store's commits cannot land out of position order."""
        ...
