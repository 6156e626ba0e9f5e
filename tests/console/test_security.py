"""The web console's safety: everything from the store is HTML-escaped, a token guards
every request when given, the console refuses to listen beyond this machine without
one, and no URL password is shown."""

from __future__ import annotations

import importlib.metadata
import json
import urllib.parse

import pytest
from esrc_console.cli import serve_console
from esrc_core.cli import main
from starlette.testclient import TestClient

from esrc_console import TOKEN_COOKIE, create_app
from esrc_core import BackendConfigError, NotSupportedError, RawEvent, encode_id, open_event_store
from tests.console.stores import Page

SCRIPT = "<script>alert('x')</script>"


@pytest.fixture
def store_url(unique: str) -> str:
    return f"memory://console-security-{unique}"


def test_everything_from_the_store_is_escaped(store_url: str) -> None:
    store = open_event_store(store_url)
    hostile = f"id{SCRIPT}"
    store.add_aggregate(
        f"T{SCRIPT}",
        hostile,
        [
            RawEvent(
                f"N{SCRIPT}",
                json.dumps({"text": SCRIPT}).encode(),
                {"k": SCRIPT, "causation_id": f"X/{SCRIPT}/1", "correlation_id": SCRIPT},
            )
        ],
    )
    store.outbox(f"relay{SCRIPT}").mark_events_as_published([])  # type: ignore[attr-defined]
    client = TestClient(create_app(store, store_label=SCRIPT))
    quoted = urllib.parse.quote(encode_id(hostile), safe="")
    type_quoted = urllib.parse.quote(f"T{SCRIPT}", safe="")
    [event] = store.recorded_events(f"T{SCRIPT}", hostile)  # type: ignore[attr-defined]
    paths = [
        "/streams",
        f"/streams?q={urllib.parse.quote(SCRIPT)}&type={type_quoted}",
        f"/streams/{type_quoted}/{quoted}",
        f"/events/{event.position}",
        "/relays",
        f"/streams/{type_quoted}/{urllib.parse.quote(SCRIPT)}",  # 400 naming the bad id
    ]
    for path in paths:
        response = client.get(path)
        assert response.status_code in (200, 400), (path, response.status_code)
        assert "<script>alert" not in response.text, path
        assert "&lt;script&gt;alert" in response.text, path
    page = Page(client.get("/streams").text)
    assert page.text("td.type") == [f"T{SCRIPT}"]
    assert any(SCRIPT in t for t in page.text("td.id"))


def test_a_token_guards_every_request(store_url: str) -> None:
    store = open_event_store(store_url)
    client = TestClient(create_app(store, token="s3cret"), follow_redirects=False)
    for path in ("/", "/streams", "/relays", "/api/relays", "/healthz", "/static/console.js"):
        assert client.get(path).status_code == 401, path
    assert client.get("/streams", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/streams?token=wrong").status_code == 401
    bearer = client.get("/streams", headers={"Authorization": "Bearer s3cret"})
    assert bearer.status_code == 200
    assert TOKEN_COOKIE not in bearer.cookies

    given = client.get("/streams?type=Order&token=s3cret")
    assert given.status_code == 303
    assert given.headers["location"] == "/streams?type=Order"
    assert "httponly" in given.headers["set-cookie"].lower()
    assert client.get("/api/relays").status_code == 200  # the cookie now
    client.cookies.clear()
    assert client.get("/api/relays").status_code == 401


def test_an_empty_token_or_a_store_without_inspection_is_refused(store_url: str) -> None:
    store = open_event_store(store_url)
    with pytest.raises(ValueError, match="empty token"):
        create_app(store, token="")
    with pytest.raises(ValueError, match="refresh"):
        create_app(store, refresh_seconds=0)
    with pytest.raises(NotSupportedError, match="inspect"):
        create_app(object())  # type: ignore[arg-type]


def test_another_host_needs_a_token(store_url: str) -> None:
    store = open_event_store(store_url)
    with pytest.raises(BackendConfigError, match="needs --token"):
        serve_console(store, store_url, host="0.0.0.0")
    with pytest.raises(BackendConfigError, match="needs --token"):
        serve_console(store, store_url, host="192.168.1.10", token="")


def test_esrc_console_refuses_another_host_without_a_token_exit_2(
    capsys: pytest.CaptureFixture[str], unique: str
) -> None:
    url = f"sqlite:///{unique}-missing.db"
    status = main(["console", url, "--host", "0.0.0.0"])
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.startswith("esrc console: ")
    assert "needs --token" in err or "no SQLite database" in err


def test_esrc_console_masks_a_url_password(capsys: pytest.CaptureFixture[str]) -> None:
    url = "postgresql+psycopg://ops:pa55word@127.0.0.1:1/none"
    status = main(["console", url, "--host", "10.0.0.1"])
    err = capsys.readouterr().err
    assert status in (1, 2), err
    assert "pa55word" not in err


def test_esrc_console_without_the_console_says_how_to_install_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, store_url: str
) -> None:
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **_: [])
    status = main(["console", store_url])
    err = capsys.readouterr().err
    assert status == 2, err
    assert 'pip install "esrc[console]"' in err


def test_an_api_request_may_carry_the_token_in_its_query(store_url: str) -> None:
    client = TestClient(create_app(open_event_store(store_url), token="t"), follow_redirects=False)
    answered = client.get("/api/relays?token=t")
    assert answered.status_code == 200
    assert "relays" in answered.json()
