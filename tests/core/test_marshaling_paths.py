"""JsonMarshaler's two paths: msgspec (for the dataclasses whose field types it writes
exactly as the hand-written code) and the hand-written code. They write the same
bytes and decode to the same values; what sits under an ``Any``/``object`` annotation
round-trips exactly or is refused with a SerializationError naming the field."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import re
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

import pytest
from esrc_core._json_exact import msgspec_codec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from esrc_core import JsonMarshaler, SerializationError
from tests.core.test_marshaling import Everything, everything

fast = JsonMarshaler()
plain = JsonMarshaler(use_msgspec=False)


class Colour(enum.StrEnum):
    RED = "red"
    BLUE = "blue"


class Priority(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dataclass(frozen=True)
class Amount:
    value: Decimal
    currency: str


@dataclass(frozen=True)
class Item:
    sku: str
    amount: Amount
    weight: float
    quantity: int = 1


@dataclass(frozen=True)
class Exact:
    """Every field type msgspec writes exactly as the hand-written path."""

    text: str
    number: int
    ratio: float
    flag: bool
    nothing: None
    ident: uuid.UUID
    price: Decimal
    day: dt.date
    colour: Colour
    priority: Priority
    kind: Literal["a", "b", 3]
    item: Item
    items: list[Item]
    weights: list[float]
    many: tuple[int, ...]
    pair: tuple[int, str]
    counts: dict[str, int]
    by_number: dict[int, str]
    by_uuid: dict[uuid.UUID, Decimal]
    by_priority: dict[Priority, float]
    either: int | str
    maybe: Item | None
    payload: Any
    details: dict[str, Any]
    rest: list[object] = field(default_factory=list)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
finite = st.floats(allow_nan=False, allow_infinity=False)
decimals = st.decimals(allow_nan=False, allow_infinity=False)
amounts = st.builds(Amount, decimals, st.text())
items = st.builds(Item, st.text(), amounts, finite, st.integers())

exact_events = st.builds(
    Exact,
    text=st.text(),
    number=st.integers(),  # beyond 64 bits too: msgspec refuses those, and hands over
    ratio=finite,  # every notation: 1e+16 and 1e-05 too
    flag=st.booleans(),
    nothing=st.none(),
    ident=st.uuids(),
    price=decimals,
    day=st.dates(),
    colour=st.sampled_from(Colour),
    priority=st.sampled_from(Priority),
    kind=st.sampled_from(["a", "b", 3]),
    item=items,
    items=st.lists(items, max_size=3),
    weights=st.lists(finite, max_size=4),
    many=st.lists(st.integers(), max_size=4).map(tuple),
    pair=st.tuples(st.integers(), st.text()),
    counts=st.dictionaries(st.text(), st.integers(), max_size=3),
    by_number=st.dictionaries(st.integers(), st.text(), max_size=3),
    by_uuid=st.dictionaries(st.uuids(), decimals, max_size=3),
    by_priority=st.dictionaries(st.sampled_from(Priority), finite, max_size=2),
    either=st.integers() | st.text(),
    maybe=st.none() | items,
    payload=json_values,
    details=st.dictionaries(st.text(), json_values, max_size=3),
    rest=st.lists(json_values, max_size=3),
)


def test_the_exact_class_takes_the_msgspec_path() -> None:
    """The property below compares the two paths, not one path with itself."""
    assert msgspec_codec(Exact) is not None
    assert msgspec_codec(Everything) is None  # datetimes, timedeltas, bytes, sets


def _same_types(got: Any, want: Any, path: str) -> None:
    assert type(got) is type(want), f"{path}: got {type(got).__name__}, want {type(want)}"
    if dataclasses.is_dataclass(want):
        for f in dataclasses.fields(want):
            _same_types(getattr(got, f.name), getattr(want, f.name), f"{path}.{f.name}")
    elif isinstance(want, list | tuple):
        for index, (a, b) in enumerate(zip(got, want, strict=True)):
            _same_types(a, b, f"{path}[{index}]")
    elif isinstance(want, dict):
        for (ka, va), (kb, vb) in zip(got.items(), want.items(), strict=True):
            _same_types(ka, kb, f"{path} key {kb!r}")
            _same_types(va, vb, f"{path}[{kb!r}]")


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(exact_events)
def test_both_paths_write_the_same_bytes_and_read_the_same_values(event: Exact) -> None:
    written = fast.marshal(event)
    assert written == plain.marshal(event)
    for reader in (fast, plain):
        decoded = reader.unmarshal(written, Exact)
        assert decoded == event
        _same_types(decoded, event, "Exact")


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=50)
@given(everything)
def test_classes_msgspec_does_not_write_exactly_are_unchanged(event: Everything) -> None:
    assert fast.marshal(event) == plain.marshal(event)
    assert fast.unmarshal(plain.marshal(event), Everything) == event


@pytest.mark.parametrize("reader", [fast, plain], ids=["msgspec", "plain"])
def test_data_msgspec_refuses_is_decoded_by_the_hand_written_path(reader: JsonMarshaler) -> None:
    """A UUID in braces, a float beyond the double range and an int beyond 64 bits are
    read as the hand-written path always read them."""
    data = json.loads(fast.marshal(_sample()))
    data["ident"] = "{12345678-1234-5678-1234-567812345678}"
    data["ratio"] = 1e400
    data["number"] = 2**70
    decoded = reader.unmarshal(json.dumps(data).replace("Infinity", "1e400").encode(), Exact)
    assert decoded.ident == uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert decoded.ratio == float("inf")
    assert decoded.number == 2**70


def _sample(**changes: Any) -> Exact:
    item = Item("sku-1", Amount(Decimal("9.90"), "EUR"), 0.25)
    event = Exact(
        "text", 7, 0.5, True, None, uuid.uuid4(), Decimal("1.5"), dt.date(2024, 2, 29),
        Colour.RED, Priority.HIGH, "a", item, [item], [1.5], (1, 2), (3, "x"), {"a": 1},
        {1: "one"}, {uuid.uuid4(): Decimal("2")}, {Priority.LOW: 0.5}, 5, None,
        {"k": [1, "two", None]}, {"nested": {"deep": [True]}},
    )  # fmt: skip
    return dataclasses.replace(event, **changes)


@pytest.mark.parametrize("marshaler", [fast, plain], ids=["msgspec", "plain"])
@pytest.mark.parametrize(
    ("changes", "path", "comes_back_as"),
    [
        ({"payload": (1, 2)}, "Exact.payload", "a list"),
        ({"payload": {1, 2}}, "Exact.payload", "a list"),
        ({"payload": frozenset({"a"})}, "Exact.payload", "a list"),
        ({"payload": b"\x00"}, "Exact.payload", "a str"),
        ({"payload": Decimal("1.5")}, "Exact.payload", "a str"),
        ({"payload": uuid.UUID(int=1)}, "Exact.payload", "a str"),
        ({"payload": dt.datetime(2024, 1, 1)}, "Exact.payload", "a str"),
        ({"payload": Colour.RED}, "Exact.payload", "its fields or value"),
        ({"payload": Amount(Decimal(1), "EUR")}, "Exact.payload", "its fields or value"),
        ({"payload": {1: "int key"}}, "Exact.payload key 1", "a str"),
        ({"payload": [1, (2, 3)]}, r"Exact.payload\[1\]", "a list"),
        ({"details": {"when": dt.date(2024, 1, 1)}}, r"Exact.details\['when'\]", "a str"),
        ({"rest": ["ok", {"deep": {4}}]}, r"Exact.rest\[1\]\['deep'\]", "a list"),
    ],
)
def test_a_value_json_would_not_give_back_under_any_is_refused_naming_the_field(
    marshaler: JsonMarshaler, changes: dict[str, Any], path: str, comes_back_as: str
) -> None:
    with pytest.raises(SerializationError) as caught:
        marshaler.marshal(_sample(**changes))
    message = str(caught.value)
    assert message.startswith("cannot encode Exact: "), message
    assert f"gives back as {comes_back_as}" in message, message
    assert re.search(rf"{path} is annotated Any or object", message), message


@dataclass(frozen=True)
class Loose:
    value: object
    bare: list  # type: ignore[type-arg]  # a bare list holds Any


@pytest.mark.parametrize("marshaler", [fast, plain], ids=["msgspec", "plain"])
def test_an_unparameterised_list_holds_any_and_is_checked_as_such(
    marshaler: JsonMarshaler,
) -> None:
    assert marshaler.unmarshal(marshaler.marshal(Loose(1.5, [1, "a"])), Loose) == Loose(
        1.5, [1, "a"]
    )
    with pytest.raises(SerializationError, match=r"Loose\.bare\[0\] is annotated Any"):
        marshaler.marshal(Loose(None, [(1, 2)]))


@settings(deadline=None)
@given(json_values)
def test_json_values_under_any_round_trip_exactly(value: Any) -> None:
    for marshaler in (fast, plain):
        decoded = marshaler.unmarshal(marshaler.marshal(Loose(value, [value])), Loose)
        assert decoded == Loose(value, [value])
        _same_types(decoded.value, value, "Loose.value")
