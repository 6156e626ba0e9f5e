"""Aggregate ids: which types are accepted, and the text codec stores key streams by."""

from __future__ import annotations

import uuid

import pytest
from esrc_core.ids import AggregateId, check_aggregate_type
from hypothesis import given
from hypothesis import strategies as st

from esrc_core import InvalidAggregateIdError, check_id, decode_id, encode_id

ids: st.SearchStrategy[AggregateId] = st.one_of(st.uuids(), st.text(min_size=1), st.integers())


@given(ids)
def test_encode_decode_round_trip_keeps_value_and_type(aggregate_id: AggregateId) -> None:
    decoded = decode_id(encode_id(aggregate_id))
    assert decoded == aggregate_id
    assert type(decoded) is type(aggregate_id)


@given(ids, ids)
def test_encoding_is_injective(a: AggregateId, b: AggregateId) -> None:
    same = a == b and type(a) is type(b)
    assert (encode_id(a) == encode_id(b)) == same


near_ids = st.one_of(
    st.text(),
    st.builds(
        "{}{}{}".format,
        st.sampled_from(["", "0", "+", " ", "-0", "00"]),
        st.integers(min_value=0),
        st.sampled_from(["", " ", "\n", "_0"]),
    ),
    st.uuids().map(lambda u: str(u).upper()),
    st.uuids().map(lambda u: u.hex),
    st.uuids().map(lambda u: f"{{{u}}}"),
)
"""Texts close to what encode_id writes: padded ints, other spellings of UUIDs."""


@given(st.sampled_from(["u:", "s:", "i:", "x:", ""]), near_ids)
def test_decode_accepts_only_what_encode_produces(prefix: str, body: str) -> None:
    text = prefix + body
    try:
        decoded = decode_id(text)
    except ValueError:
        return
    assert encode_id(decoded) == text


@pytest.mark.parametrize(
    "text",
    [
        "i:05",
        "i:+5",
        "i: 5",
        "i:5 ",
        "i:1_000",
        "i:-0",
        "i:\u0661",
        "u:" + "A" * 32,
        "u:{%s}" % ("0" * 32),
    ],
)
def test_decode_rejects_non_canonical_forms(text: str) -> None:
    with pytest.raises(ValueError, match="not produced by encode_id"):
        decode_id(text)


def test_int_and_str_of_the_same_digits_are_different_ids() -> None:
    assert encode_id(42) != encode_id("42")
    assert decode_id(encode_id("42")) == "42"
    assert decode_id(encode_id(42)) == 42


def test_check_id_returns_valid_ids_unchanged() -> None:
    u = uuid.uuid4()
    assert check_id(u) is u
    assert check_id("a") == "a"
    assert check_id(0) == 0
    assert check_id(-7) == -7


@pytest.mark.parametrize(
    "bad",
    [True, False, 1.5, 0.0, None, b"abc", bytearray(b"x"), "", [1], (1,), {"a": 1}, object()],
    ids=repr,
)
def test_invalid_ids_are_rejected(bad: object) -> None:
    with pytest.raises(InvalidAggregateIdError):
        check_id(bad)
    with pytest.raises(InvalidAggregateIdError):
        encode_id(bad)  # type: ignore[arg-type]


def test_invalid_id_message_says_what_was_done_and_the_type() -> None:
    with pytest.raises(InvalidAggregateIdError, match=r"load order: aggregate id 1\.5 .*float"):
        check_id(1.5, doing="load order")


def test_invalid_aggregate_id_error_is_a_type_error() -> None:
    # Callers that catch TypeError for bad arguments keep working.
    with pytest.raises(TypeError):
        check_id(None)


@pytest.mark.parametrize(
    "garbage",
    ["", "x", "u:", "u:not-a-uuid", "s:", "i:", "i:12a", "i:1.5", "x:abc", "42", "U:" + "0" * 32],
)
def test_decode_of_text_not_made_by_encode_raises_value_error(garbage: str) -> None:
    with pytest.raises(ValueError, match="decode aggregate id"):
        decode_id(garbage)


def test_check_aggregate_type() -> None:
    assert check_aggregate_type("Order") == "Order"
    with pytest.raises(TypeError, match="aggregate type must be a str"):
        check_aggregate_type(3)
    with pytest.raises(ValueError, match="must not be empty"):
        check_aggregate_type("")
