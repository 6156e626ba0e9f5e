"""How long to wait between attempts: the one backoff formula of esrc.

:class:`Backoff` is used wherever esrc retries: the relay runner after a failed
attempt (:class:`~esrc_core.runner.RelayRunner`), the repository after a concurrency
conflict (:class:`~esrc_core.repository.RetryPolicy`, the same type with the
repository's defaults) and the SQL store's notifier after a failed notification.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass(frozen=True, kw_only=True)
class Backoff:
    """Capped exponential delays with jitter, and optionally a limit on attempts.

    Before retry ``n`` (1 after the first failure) the ceiling is
    ``min(max_delay, base_delay * factor ** (n - 1))`` and the delay is drawn uniformly
    between ``(1 - jitter) * ceiling`` and ``ceiling``. ``jitter=1`` is "full jitter"
    (anywhere from 0 to the ceiling), ``jitter=0.5`` keeps at least half of it, and
    ``jitter=0`` is the ceiling itself; jitter spreads out callers that failed together.

    - ``base_delay``: seconds before the first retry (its ceiling); 0 or more.
    - ``max_delay``: the largest delay; 0 or more.
    - ``factor``: how much the ceiling grows per further failure; 1 or more.
    - ``jitter``: the random fraction of the ceiling, from 0 to 1.
    - ``attempts``: how many tries in all, the first one included (1 means no retry);
      ``None`` retries without limit.
    - ``rng``: the random source, for reproducible delays in tests; by default the
      :mod:`random` module's.

    The defaults are the relay runner's: 0.1 s doubling up to 30 s, at least half of
    each ceiling, no limit. Instances are immutable and may be shared between threads.
    """

    base_delay: float = 0.1
    max_delay: float = 30.0
    factor: float = 2.0
    jitter: float = 0.5
    attempts: int | None = None
    rng: random.Random | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        name = type(self).__name__
        if not (self.base_delay >= 0 and self.max_delay >= 0):
            raise ValueError(
                f"{name} delays must not be negative, got base_delay={self.base_delay!r} "
                f"and max_delay={self.max_delay!r}"
            )
        if not self.factor >= 1:
            raise ValueError(f"{name}.factor must be at least 1, got {self.factor!r}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"{name}.jitter must be between 0 and 1, got {self.jitter!r}")
        if self.attempts is not None and (
            isinstance(self.attempts, bool)
            or not isinstance(self.attempts, int)
            or self.attempts < 1
        ):
            raise ValueError(f"{name}.attempts must be None or at least 1, got {self.attempts!r}")

    def ceiling(self, retry: int) -> float:
        """The longest delay before retry number ``retry`` (1-based)."""
        if self.base_delay == 0 or self.max_delay == 0:
            return 0.0
        try:
            grown = self.base_delay * self.factor ** max(retry - 1, 0)
        except OverflowError:
            return self.max_delay
        return min(grown, self.max_delay)

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1 after the first failure)."""
        ceiling = self.ceiling(retry)
        if not self.jitter or not ceiling:
            return ceiling
        draw = self.rng.random() if self.rng is not None else random.random()
        return ceiling * (1.0 - self.jitter * draw)

    def exhausted(self, tries: int) -> bool:
        """Whether ``tries`` failed tries use up :attr:`attempts` (never when it is
        ``None``)."""
        return self.attempts is not None and tries >= self.attempts
