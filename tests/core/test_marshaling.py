"""JsonMarshaler: dataclasses (and the values they hold), pydantic models and msgspec
structs survive a round trip; what cannot be encoded or decoded raises
SerializationError."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, NewType, Optional, TypeVar, Union

import msgspec
import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from esrc_core import EventMarshaler, JsonMarshaler, SerializationError

T = TypeVar("T")

marshaler = JsonMarshaler()


def round_trip(value: T) -> T:
    """Encode ``value`` and decode it back into its own class."""
    return marshaler.unmarshal(marshaler.marshal(value), type(value))


class Color(enum.StrEnum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Plain(enum.Enum):
    A = "a"
    B = 2


@dataclass(frozen=True)
class Money:
    amount: Decimal
    currency: str


@dataclass(frozen=True)
class Line:
    sku: str
    price: Money
    quantity: int = 1


@dataclass(frozen=True)
class Everything:
    naive: dt.datetime
    aware: dt.datetime
    day: dt.date
    clock: dt.time
    took: dt.timedelta
    ident: uuid.UUID
    price: Decimal
    color: Color
    level: Level
    plain: Plain
    money: Money
    lines: list[Line]
    tags: list[str]
    pair: tuple[int, str]
    many: tuple[int, ...]
    unique: set[int]
    frozen: frozenset[str]
    counts: dict[str, int]
    by_number: dict[int, str]
    by_level: dict[Level, str]
    by_uuid: dict[uuid.UUID, Decimal]
    maybe: int | None
    either: int | str
    old_style: Optional[Money]  # noqa: UP045 - the typing.Optional spelling on purpose
    old_union: Union[Decimal, str]  # noqa: UP007 - the typing.Union spelling on purpose
    kind: Literal["a", "b"]
    ratio: float
    flag: bool
    blob: bytes
    note: str | None = None
    extra: list[int] = field(default_factory=list)


fixed_zones = st.sampled_from(
    [
        dt.UTC,
        dt.timezone(dt.timedelta(hours=5, minutes=30)),
        dt.timezone(dt.timedelta(hours=-11)),
        dt.timezone(dt.timedelta(seconds=-1)),
    ]
)
decimals = st.decimals(allow_nan=False, allow_infinity=False)
money = st.builds(Money, decimals, st.text())
lines = st.builds(Line, st.text(), money, st.integers())

everything = st.builds(
    Everything,
    naive=st.datetimes(),
    aware=st.datetimes(timezones=fixed_zones),
    day=st.dates(),
    clock=st.times(timezones=st.none() | fixed_zones),
    took=st.timedeltas(),
    ident=st.uuids(),
    price=decimals,
    color=st.sampled_from(Color),
    level=st.sampled_from(Level),
    plain=st.sampled_from(Plain),
    money=money,
    lines=st.lists(lines, max_size=3),
    tags=st.lists(st.text(), max_size=5),
    pair=st.tuples(st.integers(), st.text()),
    many=st.lists(st.integers()).map(tuple),
    unique=st.sets(st.integers()),
    frozen=st.frozensets(st.text()),
    counts=st.dictionaries(st.text(), st.integers()),
    by_number=st.dictionaries(st.integers(), st.text()),
    by_level=st.dictionaries(st.sampled_from(Level), st.text()),
    by_uuid=st.dictionaries(st.uuids(), decimals),
    maybe=st.none() | st.integers(),
    either=st.integers() | st.text(),
    old_style=st.none() | money,
    old_union=decimals | st.text().filter(lambda s: not _is_decimal(s)),
    kind=st.sampled_from(["a", "b"]),
    ratio=st.floats(allow_nan=False, allow_infinity=False),
    flag=st.booleans(),
    blob=st.binary(),
    note=st.none() | st.text(),
    extra=st.lists(st.integers()),
)


def _is_decimal(text: str) -> bool:
    try:
        Decimal(text)
    except ArithmeticError:
        return False
    return True


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(everything)
def test_property_round_trip_of_a_dataclass_holding_every_supported_type(
    event: Everything,
) -> None:
    decoded = round_trip(event)
    assert decoded == event
    for f in dataclasses.fields(event):
        got, want = getattr(decoded, f.name), getattr(event, f.name)
        assert type(got) is type(want), f"{f.name}: got {type(got)}, want {type(want)}"
    assert decoded.aware.utcoffset() == event.aware.utcoffset()


def test_marshaler_satisfies_the_protocol() -> None:
    assert isinstance(marshaler, EventMarshaler)


def test_output_is_compact_utf8_json() -> None:
    data = marshaler.marshal(Money(Decimal("1.10"), "€"))
    assert data == '{"amount":"1.10","currency":"€"}'.encode()


@dataclass(frozen=True)
class Times:
    naive: dt.datetime
    aware: dt.datetime
    day: dt.date
    clock: dt.time
    aware_clock: dt.time
    took: dt.timedelta


def test_dates_and_times_naive_and_aware() -> None:
    tz = dt.timezone(dt.timedelta(hours=-3, minutes=-30))
    event = Times(
        naive=dt.datetime(2024, 2, 29, 23, 59, 59, 999999),
        aware=dt.datetime(2024, 2, 29, 23, 59, 59, 1, tzinfo=tz),
        day=dt.date(1, 1, 1),
        clock=dt.time(0, 0, 0, 5),
        aware_clock=dt.time(12, 30, tzinfo=dt.UTC),
        took=dt.timedelta(days=-2, microseconds=7),
    )
    decoded = round_trip(event)
    assert decoded == event
    assert decoded.naive.tzinfo is None
    assert decoded.aware.utcoffset() == dt.timedelta(hours=-3, minutes=-30)
    assert decoded.aware_clock.utcoffset() == dt.timedelta(0)


@pytest.mark.parametrize(
    "took",
    [
        dt.timedelta.max,
        dt.timedelta.min,
        dt.timedelta(days=999_999_999, microseconds=1),
        dt.timedelta(days=-(10**8), seconds=1, microseconds=999_999),
        dt.timedelta(microseconds=1),
        dt.timedelta(0),
    ],
    ids=str,
)
def test_timedelta_keeps_every_microsecond(took: dt.timedelta) -> None:
    event = Times(
        dt.datetime(2000, 1, 1),
        dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
        dt.date(2000, 1, 1),
        dt.time(),
        dt.time(tzinfo=dt.UTC),
        took,
    )
    assert round_trip(event).took == took


def test_timedelta_is_encoded_as_seconds() -> None:
    event = Times(
        dt.datetime(2000, 1, 1),
        dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
        dt.date(2000, 1, 1),
        dt.time(),
        dt.time(tzinfo=dt.UTC),
        dt.timedelta(minutes=1, milliseconds=500),
    )
    assert json.loads(marshaler.marshal(event))["took"] == 60.5


def test_timedelta_too_precise_for_a_float_is_encoded_as_exact_decimal_seconds() -> None:
    took = dt.timedelta(days=999_999_999, microseconds=1)
    event = Times(
        dt.datetime(2000, 1, 1),
        dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
        dt.date(2000, 1, 1),
        dt.time(),
        dt.time(tzinfo=dt.UTC),
        took,
    )
    assert json.loads(marshaler.marshal(event))["took"] == "86399999913600.000001"


@pytest.mark.parametrize(
    "amount",
    ["0.1", "0.30000000000000004", "123456789012345678901234567890.123456789", "1E+30", "-0.00"],
)
def test_decimal_keeps_its_exact_digits(amount: str) -> None:
    event = Money(Decimal(amount), "EUR")
    data = marshaler.marshal(event)
    assert json.loads(data)["amount"] == amount, "Decimal must be encoded as a string"
    decoded = round_trip(event)
    assert isinstance(decoded.amount, Decimal)
    assert str(decoded.amount) == amount


def test_decimal_sum_has_no_float_error() -> None:
    event = Money(Decimal("0.1") + Decimal("0.2"), "EUR")
    assert round_trip(event).amount == Decimal("0.3")


@dataclass(frozen=True)
class Enums:
    color: Color
    level: Level
    plain: Plain


def test_enums_are_encoded_by_value_and_decoded_to_members() -> None:
    event = Enums(Color.GREEN, Level.HIGH, Plain.B)
    assert json.loads(marshaler.marshal(event)) == {"color": "green", "level": 2, "plain": 2}
    decoded = round_trip(event)
    assert decoded.color is Color.GREEN
    assert decoded.level is Level.HIGH
    assert decoded.plain is Plain.B


def test_unknown_enum_value_is_a_serialization_error() -> None:
    with pytest.raises(SerializationError, match="Enums"):
        marshaler.unmarshal(b'{"color":"blue","level":1,"plain":"a"}', Enums)


@dataclass(frozen=True)
class Order:
    lines: list[Line]
    by_sku: dict[str, Line]
    shipping: Money | None = None


def test_nested_dataclasses_in_fields_lists_and_dicts() -> None:
    line = Line("A-1", Money(Decimal("9.99"), "EUR"), 3)
    event = Order(
        [line, Line("B", Money(Decimal(1), "USD"))], {"A-1": line}, Money(Decimal(5), "EUR")
    )
    decoded = round_trip(event)
    assert decoded == event
    assert isinstance(decoded.lines[0].price, Money)
    assert isinstance(decoded.by_sku["A-1"], Line)


@dataclass(frozen=True)
class Containers:
    items: list[int]
    pair: tuple[str, int]
    rest: tuple[int, ...]
    unique: set[str]
    frozen: frozenset[int]
    table: dict[str, list[int]]
    bare_list: list  # type: ignore[type-arg]
    bare_dict: dict  # type: ignore[type-arg]


def test_containers_come_back_as_their_annotated_types() -> None:
    event = Containers(
        [3, 1, 2],
        ("x", 1),
        (5, 6, 7),
        {"b", "a"},
        frozenset({2, 1}),
        {"k": [1, 2]},
        [1, "two"],
        {"k": None},
    )
    decoded = round_trip(event)
    assert decoded == event
    assert type(decoded.pair) is tuple
    assert type(decoded.rest) is tuple
    assert type(decoded.unique) is set
    assert type(decoded.frozen) is frozenset


def test_sets_encode_in_a_stable_order() -> None:
    # The same set gives the same bytes however it was built.
    a = Containers([], ("", 0), (), {"x", "y", "z"}, frozenset({3, 2, 1}), {}, [], {})
    b = Containers([], ("", 0), (), {"z", "y", "x"}, frozenset({1, 2, 3}), {}, [], {})
    assert marshaler.marshal(a) == marshaler.marshal(b)


def test_fixed_length_tuple_of_wrong_length_is_rejected() -> None:
    bad = b'{"items":[],"pair":["x",1,2],"rest":[],"unique":[],"frozen":[],"table":{},'
    bad += b'"bare_list":[],"bare_dict":{}}'
    with pytest.raises(SerializationError, match="pair"):
        marshaler.unmarshal(bad, Containers)


@dataclass(frozen=True)
class Keys:
    by_int: dict[int, str]
    by_level: dict[Level, int]
    by_color: dict[Color, int]
    by_uuid: dict[uuid.UUID, str]


def test_dict_keys_keep_their_type() -> None:
    u = uuid.uuid4()
    event = Keys({1: "a", -2: "b"}, {Level.LOW: 1}, {Color.RED: 2}, {u: "c"})
    decoded = round_trip(event)
    assert decoded == event
    assert all(type(k) is int for k in decoded.by_int)
    assert list(decoded.by_level) == [Level.LOW]
    assert list(decoded.by_color) == [Color.RED]
    assert list(decoded.by_uuid) == [u]


def test_dict_key_that_is_no_enum_value_is_a_serialization_error() -> None:
    data = b'{"by_int":{},"by_level":{"3":1},"by_color":{},"by_uuid":{}}'
    with pytest.raises(SerializationError, match="by_level"):
        marshaler.unmarshal(data, Keys)


OrderId = NewType("OrderId", uuid.UUID)
Cents = NewType("Cents", int)
PlacedAt = NewType("PlacedAt", dt.datetime)


@dataclass(frozen=True)
class WithNewTypes:
    order_id: OrderId
    amount: Cents
    at: PlacedAt
    related: list[OrderId]
    by_order: dict[OrderId, Cents]


def test_newtype_fields_decode_to_their_underlying_type() -> None:
    u = OrderId(uuid.uuid4())
    event = WithNewTypes(u, Cents(150), PlacedAt(dt.datetime(2024, 1, 1)), [u], {u: Cents(1)})
    decoded = round_trip(event)
    assert decoded == event
    assert isinstance(decoded.order_id, uuid.UUID)
    assert isinstance(decoded.at, dt.datetime)
    assert isinstance(decoded.related[0], uuid.UUID)
    assert isinstance(next(iter(decoded.by_order)), uuid.UUID)


def test_newtype_field_with_a_wrong_value_is_a_serialization_error() -> None:
    data = b'{"order_id":"x","amount":1,"at":"2024-01-01T00:00:00","related":[],"by_order":{}}'
    with pytest.raises(SerializationError, match="WithNewTypes"):
        marshaler.unmarshal(data, WithNewTypes)


@dataclass(frozen=True)
class Flags:
    by_flag: dict[bool, str]


def test_bool_dict_keys_round_trip() -> None:
    event = Flags({True: "yes", False: "no"})
    decoded = round_trip(event)
    assert decoded == event
    assert all(type(k) is bool for k in decoded.by_flag)


@dataclass(frozen=True)
class Unions:
    maybe: int | None
    either: int | str
    legacy: Optional[dt.date]  # noqa: UP045 - the typing.Optional spelling on purpose
    ident: uuid.UUID | int
    amount: Decimal | str


@pytest.mark.parametrize(
    "event",
    [
        Unions(None, 1, None, uuid.UUID(int=7), Decimal("1.5")),
        Unions(5, "five", dt.date(2020, 1, 2), 3, "not a number"),
    ],
)
def test_optional_and_union_fields(event: Unions) -> None:
    decoded = round_trip(event)
    assert decoded == event
    assert type(decoded.either) is type(event.either)
    assert type(decoded.ident) is type(event.ident)
    assert type(decoded.amount) is type(event.amount)


def test_union_value_matching_no_member_is_rejected() -> None:
    data = b'{"maybe":[1],"either":1,"legacy":null,"ident":1,"amount":"1"}'
    with pytest.raises(SerializationError, match="maybe"):
        marshaler.unmarshal(data, Unions)


@dataclass(frozen=True)
class Evolving:
    required: int
    note: str | None = None
    tags: list[str] = field(default_factory=list)
    level: Level = Level.LOW


def test_missing_fields_with_defaults_take_the_defaults() -> None:
    decoded = marshaler.unmarshal(b'{"required":1}', Evolving)
    assert decoded == Evolving(1, None, [], Level.LOW)


def test_unknown_fields_are_ignored() -> None:
    assert marshaler.unmarshal(b'{"required":1,"added_later":true}', Evolving) == Evolving(1)


def test_missing_required_field_is_a_serialization_error_naming_it() -> None:
    with pytest.raises(SerializationError, match=r"Evolving\.required is missing"):
        marshaler.unmarshal(b'{"note":"x"}', Evolving)


@dataclass
class Invoice:
    net: Decimal
    tax: Decimal
    gross: Decimal = field(init=False)
    reminders: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.gross = self.net + self.tax


def test_init_false_fields_are_restored_from_the_data() -> None:
    invoice = Invoice(Decimal("10.00"), Decimal("2.00"))
    invoice.reminders = 2
    decoded = round_trip(invoice)
    assert decoded == invoice
    assert decoded.gross == Decimal("12.00")
    assert decoded.reminders == 2


def test_init_false_field_absent_from_the_data_is_computed_again() -> None:
    decoded = marshaler.unmarshal(b'{"net":"1","tax":"2"}', Invoice)
    assert decoded.gross == Decimal(3)
    assert decoded.reminders == 0


@dataclass(frozen=True)
class Measurement:
    value: float
    samples: list[float] = field(default_factory=list)


@pytest.mark.parametrize(
    "event",
    [
        Measurement(float("nan")),
        Measurement(float("inf")),
        Measurement(float("-inf")),
        Measurement(1.0, [0.5, float("nan")]),
    ],
    ids=repr,
)
def test_non_finite_floats_are_a_serialization_error(event: Measurement) -> None:
    with pytest.raises(SerializationError, match="Measurement"):
        marshaler.marshal(event)


def test_ints_decode_into_float_fields() -> None:
    decoded = marshaler.unmarshal(b'{"value":3}', Measurement)
    assert decoded.value == 3.0
    assert type(decoded.value) is float


class NotADataclass:
    def __init__(self) -> None:
        self.x = 1


@pytest.mark.parametrize(
    "value", [NotADataclass(), {"a": 1}, [1], 1, "text", None, Money], ids=repr
)
def test_non_dataclass_values_are_a_serialization_error(value: object) -> None:
    with pytest.raises(SerializationError, match="cannot encode"):
        marshaler.marshal(value)


@dataclass(frozen=True)
class Holder:
    value: object


def test_unencodable_field_value_is_a_serialization_error_naming_the_field() -> None:
    with pytest.raises(SerializationError, match=r"Holder\.value"):
        marshaler.marshal(Holder(NotADataclass()))


def test_dict_with_unencodable_key_is_a_serialization_error() -> None:
    with pytest.raises(SerializationError, match="Holder"):
        marshaler.marshal(Holder({(1, 2): "tuple key"}))


@pytest.mark.parametrize(
    ("data", "cls"),
    [
        (b"not json", Money),
        (b"\xff\xfe\x00", Money),
        (b"", Money),
        (b'{"amount": "1"', Money),
        (b"[1, 2]", Money),
        (b'{"amount": "abc", "currency": "EUR"}', Money),
        (b'{"amount": "1", "currency": 5}', Money),
        (b'{"naive":"yesterday"}', Times),
        (b'{"sku":"a","price":{"amount":"1","currency":"x"},"quantity":"3"}', Line),
        (b'{"sku":"a","price":{"amount":"1","currency":"x"},"quantity":true}', Line),
        (b'{"sku":"a","price":[],"quantity":1}', Line),
        (b'{"maybe":1,"either":1,"legacy":null,"ident":"zz","amount":"1"}', Unions),
        (b'{"maybe":1,"either":1,"legacy":null,"ident":1.5,"amount":"1"}', Unions),
        (b'{"value":"1.0"}', Measurement),
        (b'{"value":true}', Measurement),
    ],
)
def test_undecodable_bytes_are_a_serialization_error(data: bytes, cls: type[Any]) -> None:
    with pytest.raises(SerializationError, match=f"cannot decode {cls.__qualname__}"):
        marshaler.unmarshal(data, cls)


def test_serialization_error_chains_the_cause() -> None:
    with pytest.raises(SerializationError) as caught:
        marshaler.unmarshal(b"not json", Money)
    assert isinstance(caught.value.__cause__, json.JSONDecodeError)


class PydanticPayment(pydantic.BaseModel):
    payment_id: uuid.UUID
    amount: Decimal
    at: dt.datetime
    tags: list[str] = []
    payer: Money | None = None


class PydanticWrapper(pydantic.BaseModel):
    payment: PydanticPayment
    level: Level


def test_pydantic_model_round_trip() -> None:
    event = PydanticWrapper(
        payment=PydanticPayment(
            payment_id=uuid.uuid4(),
            amount=Decimal("10.05"),
            at=dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC),
            tags=["a"],
            payer=Money(Decimal("1.5"), "EUR"),
        ),
        level=Level.HIGH,
    )
    decoded = round_trip(event)
    assert decoded == event
    assert decoded.payment.amount == Decimal("10.05")


def test_pydantic_invalid_data_is_a_serialization_error() -> None:
    with pytest.raises(SerializationError, match="PydanticPayment"):
        marshaler.unmarshal(b'{"payment_id":"nope"}', PydanticPayment)
    with pytest.raises(SerializationError, match="PydanticPayment"):
        marshaler.unmarshal(b"not json", PydanticPayment)


class MsgspecShipped(msgspec.Struct, frozen=True):
    shipment_id: uuid.UUID
    weight: Decimal
    at: dt.datetime
    items: list[str] = []
    level: Level = Level.LOW


def test_msgspec_struct_round_trip() -> None:
    event = MsgspecShipped(
        uuid.uuid4(),
        Decimal("0.333"),
        dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        ["x", "y"],
        Level.HIGH,
    )
    decoded = round_trip(event)
    assert decoded == event
    assert decoded.weight == Decimal("0.333")


def test_msgspec_invalid_data_is_a_serialization_error() -> None:
    with pytest.raises(SerializationError, match="MsgspecShipped"):
        marshaler.unmarshal(b'{"shipment_id":"nope"}', MsgspecShipped)
    with pytest.raises(SerializationError, match="MsgspecShipped"):
        marshaler.unmarshal(b"\xff", MsgspecShipped)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(
    value=json_values,
    indent=st.sampled_from([None, 0, 2]),
    before=st.sampled_from(["", " ", "\n\t "]),
    after=st.sampled_from(["", " ", "\r\n"]),
    encoding=st.sampled_from(["utf-8", "utf-16", "utf-32"]),
)
def test_any_json_text_json_loads_accepts_decodes_the_same(
    value: object, indent: int | None, before: str, after: str, encoding: str
) -> None:
    # Decoding skips json.loads' per-call checks for compact UTF-8; every other input
    # (indentation, whitespace around it, other encodings) must still decode as
    # json.loads decodes it.
    text = before + json.dumps({"value": value}, indent=indent) + after
    data = text.encode(encoding)
    assert marshaler.unmarshal(data, Holder).value == json.loads(data)["value"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"value": 1} 2', "Extra data"),
        (b' {"value": ', "Expecting value"),
        (b"\xff", "Expecting value|invalid start byte|can't decode"),
    ],
)
def test_malformed_json_errors_are_json_loads_own(data: bytes, message: str) -> None:
    with pytest.raises(SerializationError, match=f"cannot decode Holder: .*({message})") as caught:
        marshaler.unmarshal(data, Holder)
    assert isinstance(caught.value.__cause__, ValueError)


class _Lowercasing(JsonMarshaler):
    """A JsonMarshaler subclass that decodes its own way."""

    def unmarshal(self, data: bytes, cls: type[T]) -> T:
        return super().unmarshal(data.lower(), cls)


def test_a_subclass_unmarshal_is_what_its_compiled_decoder_calls() -> None:
    assert _Lowercasing().decoder_for(Holder)(b'{"VALUE": "X"}') == Holder("x")
    assert JsonMarshaler().decoder_for(Holder)(b'{"value": "X"}') == Holder("X")


@dataclass(frozen=True)
class _Unresolvable:
    """An annotation that names a class that does not exist."""

    value: NoSuchClass  # type: ignore[name-defined]  # noqa: F821


def test_a_class_whose_annotations_do_not_resolve_is_a_serialization_error() -> None:
    with pytest.raises(SerializationError, match=r"cannot decode _Unresolvable: .*NoSuchClass"):
        marshaler.unmarshal(b'{"value": 1}', _Unresolvable)
    with pytest.raises(SerializationError, match="cannot decode _Unresolvable"):
        marshaler.decoder_for(_Unresolvable)


@dataclass(frozen=True)
class Switches:
    on: bool
    level: int
    colour: str
    note: str | None = None


@dataclass(frozen=True)
class MoreSwitches(Switches):
    extra: int = 0


def test_subclasses_of_plain_types_encode_as_their_values() -> None:
    """The encoder prepared per class takes plain ``bool``/``int``/``str`` values as
    they are and converts the rest (an ``IntEnum`` and a ``StrEnum`` by value)."""
    encoded = marshaler.marshal(Switches(True, Level.LOW, Color.RED))
    assert encoded == b'{"on":true,"level":1,"colour":"red","note":null}'


def test_a_subclass_is_encoded_with_all_its_fields() -> None:
    """Each class gets its own prepared encoder: a subclass's extra fields are kept,
    and the base class still encodes its own."""
    assert json.loads(marshaler.marshal(MoreSwitches(False, 2, "x", extra=3))) == {
        "on": False,
        "level": 2,
        "colour": "x",
        "note": None,
        "extra": 3,
    }
    assert b"extra" not in marshaler.marshal(Switches(False, 2, "x"))
