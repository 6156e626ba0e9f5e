"""The testkit's given/when/then helper (esrc_testkit.aggregates): it passes what is
right and fails, with got and want, what is wrong."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from esrc_testkit.aggregates import given

from esrc_core import EventRaiserAggregate, EventRegistry

registry = EventRegistry()


@registry.register
@dataclass(frozen=True)
class Opened:
    lamp_id: str


@registry.register
@dataclass(frozen=True)
class SwitchedOn:
    brightness: int


@dataclass(frozen=True)
class NotRegistered:
    pass


class Lamp(EventRaiserAggregate):
    on = False
    brightness = 0
    switches = 0

    def __init__(self, lamp_id: str) -> None:
        super().__init__()
        self.raise_event(Opened(lamp_id))

    def switch_on(self, brightness: int) -> None:
        if self.on:
            raise RuntimeError("already on")
        self.raise_event(SwitchedOn(brightness))

    def switch_on_and_count(self) -> None:
        """A bug: state changed outside on_event is lost when the lamp is loaded."""
        self.switches += 1
        self.raise_event(SwitchedOn(1))

    def raise_then_fail(self) -> None:
        """A bug: fails after recording an event."""
        self.raise_event(SwitchedOn(1))
        raise RuntimeError("half done")

    def raise_unregistered(self) -> None:
        self.raise_event(NotRegistered())

    def on_event(self, event: object) -> None:
        match event:
            case Opened(lamp_id=lamp_id):
                self.id = lamp_id
            case SwitchedOn(brightness=brightness):
                self.on = True
                self.brightness = brightness


def test_then_passes_and_returns_the_aggregate() -> None:
    lamp = (
        given(Lamp, Opened("l1"), registry=registry)
        .when(lambda lamp: lamp.switch_on(7))
        .then(SwitchedOn(7))
    )
    assert (lamp.id, lamp.on, lamp.brightness) == ("l1", True, 7)


def test_a_creating_command_is_judged_on_the_aggregate_it_returns() -> None:
    lamp = given(Lamp).when(lambda _: Lamp("l2")).then(Opened("l2"))
    assert lamp.id == "l2"


def test_then_fails_on_other_events_and_shows_got_and_want() -> None:
    outcome = given(Lamp, Opened("l1")).when(lambda lamp: lamp.switch_on(7))
    with pytest.raises(AssertionError, match=r"got:  \[SwitchedOn\(brightness=7\)\]") as caught:
        outcome.then(SwitchedOn(8))
    assert "want: [SwitchedOn(brightness=8)]" in str(caught.value)
    with pytest.raises(AssertionError, match="no events"):
        outcome.then_nothing()


def test_then_fails_when_the_command_raised() -> None:
    outcome = given(Lamp, Opened("l1"), SwitchedOn(1)).when(lambda lamp: lamp.switch_on(7))
    with pytest.raises(AssertionError, match="it raised RuntimeError: already on"):
        outcome.then(SwitchedOn(7))


def test_then_raises_passes_and_returns_the_error() -> None:
    error = (
        given(Lamp, Opened("l1"), SwitchedOn(1))
        .when(lambda lamp: lamp.switch_on(7))
        .then_raises(RuntimeError, match="already")
    )
    assert str(error) == "already on"


def test_then_raises_fails_on_success_wrong_type_or_message() -> None:
    succeeded = given(Lamp, Opened("l1")).when(lambda lamp: lamp.switch_on(7))
    with pytest.raises(AssertionError, match="raised events \\[SwitchedOn"):
        succeeded.then_raises(RuntimeError)
    refused = given(Lamp, Opened("l1"), SwitchedOn(1)).when(lambda lamp: lamp.switch_on(7))
    with pytest.raises(AssertionError, match="expected the command to raise ValueError"):
        refused.then_raises(ValueError)
    with pytest.raises(AssertionError, match="does not match 'broken'"):
        refused.then_raises(RuntimeError, match="broken")


def test_then_raises_fails_when_events_were_left_behind() -> None:
    outcome = given(Lamp, Opened("l1")).when(lambda lamp: lamp.raise_then_fail())
    with pytest.raises(AssertionError, match="left events behind"):
        outcome.then_raises(RuntimeError)


def test_then_fails_when_state_changes_outside_on_event() -> None:
    outcome = given(Lamp, Opened("l1")).when(lambda lamp: lamp.switch_on_and_count())
    with pytest.raises(AssertionError, match="switches: after the command 1, rebuilt '<unset>'"):
        outcome.then(SwitchedOn(1))


def test_then_with_a_registry_fails_on_an_unregistered_event() -> None:
    outcome = given(Lamp, Opened("l1"), registry=registry).when(
        lambda lamp: lamp.raise_unregistered()
    )
    with pytest.raises(AssertionError, match=r"NotRegistered.*cannot go through the registry"):
        outcome.then(NotRegistered())
    # Without a registry the same events pass.
    given(Lamp, Opened("l1")).when(lambda lamp: lamp.raise_unregistered()).then(NotRegistered())


def test_each_when_starts_from_the_history() -> None:
    start = given(Lamp, Opened("l1"))
    start.when(lambda lamp: lamp.switch_on(3)).then(SwitchedOn(3))
    start.when(lambda lamp: lamp.switch_on(4)).then(SwitchedOn(4))
    assert start.aggregate().on is False
