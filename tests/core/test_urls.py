"""mask_url hides passwords; url_scheme finds the backend-selecting scheme."""

from __future__ import annotations

from typing import Any

import pytest
from esrc_core.urls import redact, url_scheme, url_secrets

from esrc_core import mask_url


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://app:s3cret@db:5432/events", "postgresql://app:***@db:5432/events"),
        ("postgresql+psycopg://app:s3cret@db/x", "postgresql+psycopg://app:***@db/x"),
        ("mysql+pymysql://root:@127.0.0.1/test", "mysql+pymysql://root:***@127.0.0.1/test"),
        ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
        ("amqp://guest:p@ss@rabbit/", "amqp://guest:***@rabbit/"),
        ("nope://user:secret@host", "nope://user:***@host"),
        ("postgresql://u:S3cret@Tail@db/x", "postgresql://u:***@db/x"),
        ("postgresql://u:pa/ss@db/x", "postgresql://u:***@db/x"),
        ("postgresql://u:pa?ss@db/x", "postgresql://u:***@db/x"),
        ("postgresql://u:pa#ss@db/x", "postgresql://u:***@db/x"),
        ("postgresql://u@corp:s3cret@db/x", "postgresql://u@corp:***@db/x"),
        ("postgresql://u:5432@db/x", "postgresql://u:***@db/x"),
    ],
)
def test_password_in_userinfo_is_masked(url: str, masked: str) -> None:
    assert mask_url(url) == masked


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("pg://h/db?password=s3cret", "pg://h/db?password=***"),
        (
            "pg://h/db?sslmode=require&PASSWORD=s3cret&x=1",
            "pg://h/db?sslmode=require&PASSWORD=***&x=1",
        ),
        ("nats://h?token=abc.def#frag", "nats://h?token=***#frag"),
        ("x://h?pwd=1&passwd=2&secret=3", "x://h?pwd=***&passwd=***&secret=***"),
        ("pg://u:pw@h/db?password=pw2", "pg://u:***@h/db?password=***"),
    ],
)
def test_password_and_token_in_query_are_masked(url: str, masked: str) -> None:
    assert mask_url(url) == masked


@pytest.mark.parametrize(
    "url",
    [
        "memory://",
        "memory://orders",
        "sqlite:///events.db",
        "sqlite:////tmp/a:b@c.db",
        "postgresql://app@db:5432/events",
        "postgresql://db:5432/events?application_name=a@b",
        "pg://h/db?user_password_hint=none",
    ],
)
def test_urls_without_a_password_are_unchanged(url: str) -> None:
    assert mask_url(url) == url


@pytest.mark.parametrize(
    "url", ["", "no scheme at all", "://", "::::@@@", "postgresql:/x:y@z", "\x00\xff"]
)
def test_malformed_urls_never_raise(url: str) -> None:
    assert isinstance(mask_url(url), str)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("user:secret@host/db", "user:***@host/db"),
        ("postgresql:/user:secret@host", "postgresql:***@host"),
        ("postgresql//user:se@cret@host/db", "postgresql//user:***@host/db"),
        ("host/db?password=secret", "host/db?password=***"),
    ],
)
def test_passwords_in_urls_without_a_scheme_are_masked(url: str, masked: str) -> None:
    assert mask_url(url) == masked


@pytest.mark.parametrize("value", [None, 5, b"pg://u:secret@h"], ids=repr)
def test_non_strings_are_not_echoed(value: Any) -> None:
    masked = mask_url(value)
    assert "secret" not in masked
    assert masked == repr(type(value))


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("memory://", "memory"),
        ("sqlite:///events.db", "sqlite"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg"),
        ("MySQL+PyMySQL://root@h/test", "mysql+pymysql"),
        ("sqlalchemy+sqlite:///x.db", "sqlalchemy+sqlite"),
        ("a.b-c://x", "a.b-c"),
    ],
)
def test_url_scheme(url: str, scheme: str) -> None:
    assert url_scheme(url) == scheme


@pytest.mark.parametrize(
    "url", ["", "memory", "memory:", "memory:/x", "://x", "1abc://x", "a b://x", "C:\\events.db"]
)
def test_url_without_a_scheme(url: str) -> None:
    assert url_scheme(url) is None


@pytest.mark.parametrize(
    ("url", "secrets"),
    [
        ("postgresql://u:S3cret@Tail@db/x", {"S3cret@Tail", "S3cret", "Tail"}),
        ("postgresql://u:s3cr%40et@db/x", {"s3cr%40et", "s3cr@et"}),
        ("pg://u:pw@h/db?password=hunter2&token=abc", {"hunter2", "abc"}),
        ("postgresql://u:pa/ss@db/x", {"pa/ss"}),
        ("postgresql://app@db:5432/events", set()),
        ("memory://", set()),
        ("not a url", set()),
    ],
)
def test_url_secrets_are_the_password_its_pieces_and_query_secrets(
    url: str, secrets: set[str]
) -> None:
    assert url_secrets(url) == secrets


def test_redact_removes_a_password_and_the_pieces_a_driver_echoes() -> None:
    """A driver that read ``Tail@127.0.0.1`` as the host of a URL whose password holds
    an unescaped ``@`` quotes that piece of the password; redact removes it."""
    secrets = url_secrets("postgresql+psycopg://u:S3cret@Tail@127.0.0.1/db")
    driver = "failed to resolve host 'Tail@127.0.0.1': password S3cret@Tail rejected"
    redacted = redact(driver, secrets)
    assert redacted == "failed to resolve host '***@127.0.0.1': password *** rejected"
    assert redact("nothing secret here", secrets) == "nothing secret here"
