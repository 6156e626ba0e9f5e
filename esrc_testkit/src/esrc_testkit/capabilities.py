"""Capabilities: reading what a backend declares, and gating tests on it.

A backend declares capabilities (:class:`esrc_core.capabilities.Capability` members) in
its plugin descriptor. An acceptance class states the set it claims in its
``capabilities`` attribute, usually read from the descriptor with
:func:`capabilities_of`; tests of a capability it does not claim are skipped with a
reason naming the capability. A name that is not a capability fails the test (a typo
must not skip tests silently), and a declared capability whose protocol the backend
does not implement fails :func:`check_declared` instead of skipping anything.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, Literal, ParamSpec, TypeVar

import pytest
from esrc_core.capabilities import (
    CAPABILITIES,
    Capability,
    Holder,
    parse_capabilities,
    unimplemented,
)
from esrc_core.plugins import plugins

__all__ = [
    "capabilities_of",
    "check_declared",
    "declared_capabilities",
    "missing_capabilities",
    "requires",
    "skip_unless_declared",
]

P = ParamSpec("P")
R = TypeVar("R")

_REQUIRES = "__esrc_requires__"


def capabilities_of(url: str, kind: Literal["store", "publisher"] = "store") -> frozenset[str]:
    """The capabilities the installed backend for ``url`` declares.

    Resolves ``url`` the way :func:`esrc_core.open_event_store` does, so the set is
    exactly what the backend's plugin descriptor says. Raises
    :class:`~esrc_core.errors.UnknownBackendError` when no backend claims the URL.
    """
    backend, _ = plugins().resolve(url, kind)
    return backend.capabilities


def requires(*capabilities: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Mark an acceptance test as needing ``capabilities``.

    The test is skipped, naming what is missing, when its class does not declare them
    all. The suite's ``store`` fixture checks this before it opens a store, and the test
    itself checks again, so a test that opens no store is gated too.
    """
    parse_capabilities(capabilities)  # an unknown name is an error here, not a skip later
    needed = tuple(Capability(c) for c in capabilities)

    def decorate(test: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(test)
        def gated(*args: P.args, **kwargs: P.kwargs) -> R:
            if args:
                skip_unless_declared(args[0], gated)
            return test(*args, **kwargs)

        setattr(gated, _REQUIRES, needed)
        return gated

    return decorate


def missing_capabilities(declared: Iterable[str], test: object) -> list[str]:
    """The capabilities ``test`` (a function marked with :func:`requires`) needs that
    are not in ``declared``, in the order the test names them."""
    have = frozenset(declared)
    needed: tuple[str, ...] = getattr(test, _REQUIRES, ())
    return [c for c in needed if c not in have]


def declared_capabilities(suite: Any) -> frozenset[str]:
    """The capabilities ``suite`` (an acceptance class or instance) declares in its
    ``capabilities`` attribute; fails the running test, listing the known names, when
    one of them is not a capability."""
    try:
        return parse_capabilities(getattr(suite, "capabilities", frozenset()))
    except (TypeError, ValueError) as err:
        name = suite.__qualname__ if isinstance(suite, type) else type(suite).__qualname__
        pytest.fail(f"{name}.capabilities: {err}")


def check_declared(suite: Any, objects: dict[Holder, object]) -> None:
    """Fail the running test when ``suite`` declares a capability whose protocol the
    given objects (``{"store": store, "outbox": outbox, "publisher": publisher}``, any
    of them) do not implement, naming each capability and its missing protocol."""
    missing = unimplemented(declared_capabilities(suite), objects)
    if missing:
        name = type(suite).__qualname__
        listed = "; ".join(
            f"'{cap}' needs {type(objects[_holder(cap)]).__qualname__} to implement {proto}"
            for cap, proto in missing
        )
        pytest.fail(f"{name} declares capabilities its backend does not implement: {listed}")


def _holder(capability: str) -> Holder:
    return CAPABILITIES[Capability(capability)].holder


def skip_unless_declared(suite: Any, test: object) -> None:
    """Skip the running test if ``suite`` (an acceptance class instance, whose
    ``capabilities`` attribute holds the declared set) lacks a capability ``test`` needs."""
    declared = declared_capabilities(suite)
    missing = missing_capabilities(declared, test)
    if missing:
        names = ", ".join(f"'{m}'" for m in missing)
        have = ", ".join(sorted(declared)) or "none"
        pytest.skip(f"the backend does not declare the {names} capability (declared: {have})")
