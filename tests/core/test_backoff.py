"""Backoff: the one formula for delays between attempts (relay runner, repository,
notifier), its attempt limit and its checks."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest
from esrc_core.backoff import Backoff
from hypothesis import given
from hypothesis import strategies as st

from esrc_core import RetryPolicy


def test_defaults_are_the_runners_and_retry_policy_is_the_repositorys() -> None:
    """Backoff() is 0.1 s doubling up to 30 s keeping at least half of each ceiling,
    without limit; RetryPolicy() is 3 tries, 5 ms doubling up to 0.5 s, full jitter."""
    runner = Backoff()
    assert (runner.base_delay, runner.max_delay, runner.factor) == (0.1, 30.0, 2.0)
    assert (runner.jitter, runner.attempts) == (0.5, None)
    repository = RetryPolicy()
    assert isinstance(repository, Backoff)
    assert (repository.base_delay, repository.max_delay, repository.factor) == (0.005, 0.5, 2.0)
    assert (repository.jitter, repository.attempts) == (1.0, 3)


@given(
    retry=st.integers(min_value=1, max_value=3000),
    base=st.floats(min_value=0, max_value=2),
    cap=st.floats(min_value=0, max_value=60),
    factor=st.floats(min_value=1, max_value=10),
    jitter=st.floats(min_value=0, max_value=1),
)
def test_delay_lies_between_the_jittered_floor_and_the_ceiling(
    retry: int, base: float, cap: float, factor: float, jitter: float
) -> None:
    """The ceiling is min(max_delay, base_delay * factor**(retry-1)); the delay lies
    between (1 - jitter) and all of it, and never overflows for late retries."""
    backoff = Backoff(base_delay=base, max_delay=cap, factor=factor, jitter=jitter)
    try:
        grown = base * factor ** (retry - 1)
    except OverflowError:
        grown = 0.0 if base == 0 else float("inf")
    ceiling = min(cap, grown)
    assert backoff.ceiling(retry) == pytest.approx(ceiling)
    delay = backoff.delay(retry)
    assert (1 - jitter) * ceiling * (1 - 1e-9) <= delay <= ceiling * (1 + 1e-9)


def test_without_jitter_the_delays_double_up_to_the_cap() -> None:
    backoff = Backoff(base_delay=0.5, max_delay=5.0, jitter=0)
    assert [backoff.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert backoff.delay(10**6) == 5.0


def test_jitter_spreads_the_delays_and_a_seeded_rng_repeats_them() -> None:
    first = Backoff(base_delay=1.0, max_delay=1.0, rng=random.Random(3))
    second = Backoff(base_delay=1.0, max_delay=1.0, rng=random.Random(3))
    delays = [first.delay(1) for _ in range(50)]
    assert delays == [second.delay(1) for _ in range(50)]
    assert len(set(delays)) > 40
    assert min(delays) >= 0.5


def test_attempts_count_the_first_try() -> None:
    """exhausted(n): whether n failed tries use the attempts up; None never does."""
    assert [Backoff(attempts=3).exhausted(n) for n in (1, 2, 3, 4)] == [False, False, True, True]
    assert Backoff(attempts=1).exhausted(1)
    assert not Backoff().exhausted(10**9)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"base_delay": -0.1}, "delays must not be negative"),
        ({"max_delay": -1.0}, "delays must not be negative"),
        ({"max_delay": float("nan")}, "delays must not be negative"),
        ({"factor": 0.5}, "factor must be at least 1"),
        ({"jitter": 1.5}, "jitter must be between 0 and 1"),
        ({"jitter": -0.1}, "jitter must be between 0 and 1"),
        ({"attempts": 0}, "attempts must be None or at least 1"),
        ({"attempts": True}, "attempts must be None or at least 1"),
    ],
    ids=repr,
)
def test_nonsense_settings_raise_naming_the_class(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=f"^Backoff.*{message}"):
        Backoff(**kwargs)
    with pytest.raises(ValueError, match=f"^RetryPolicy.*{message}"):
        RetryPolicy(**kwargs)


def test_a_backoff_is_immutable_and_keyword_only() -> None:
    backoff = Backoff()
    with pytest.raises(dataclasses.FrozenInstanceError):
        backoff.base_delay = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        Backoff(0.1)  # type: ignore[call-arg]
