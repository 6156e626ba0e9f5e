"""The testkit's pytest plugin and helpers: ``--esrc-url``, server URLs that skip or
fail, and capability gating that skips before a store is opened."""

from __future__ import annotations

import socket
from pathlib import Path
from types import SimpleNamespace

import hypothesis
import pytest
from hypothesis.database import DirectoryBasedExampleDatabase

from esrc_testkit import (
    StateMachineAcceptance,
    machines,
    reachable_url,
    server_unreachable,
    server_url,
)

pytest_plugins = ["pytester"]

URL_TEST = """
def test_url(esrc_url):
    assert esrc_url == "{want}"
"""


def test_esrc_url_comes_from_the_option(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--esrc-url`` wins over ``ESRC_URL``."""
    monkeypatch.setenv("ESRC_URL", "memory://from-env")
    pytester.makepyfile(URL_TEST.format(want="memory://from-option"))
    pytester.runpytest("--esrc-url=memory://from-option").assert_outcomes(passed=1)


def test_esrc_url_falls_back_to_the_environment(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the option, the fixture reads ``ESRC_URL``."""
    monkeypatch.setenv("ESRC_URL", "memory://from-env")
    pytester.makepyfile(URL_TEST.format(want="memory://from-env"))
    pytester.runpytest().assert_outcomes(passed=1)


def test_esrc_url_skips_when_nothing_is_given(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With neither, a test that asks for ``esrc_url`` is skipped, saying how to give one."""
    monkeypatch.delenv("ESRC_URL", raising=False)
    pytester.makepyfile(URL_TEST.format(want="unused"))
    result = pytester.runpytest("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*no store URL: pass --esrc-url=URL or set ESRC_URL*"])


@pytest.mark.parametrize(
    ("option", "env", "want"),
    [
        (None, None, "settings-own"),
        ("none", "from-env", None),
        (None, "none", None),
        (None, "from-env", "from-env"),
        ("from-option", "from-env", "from-option"),
    ],
)
def test_state_machine_database_comes_from_the_option_or_the_environment(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    option: str | None,
    env: str | None,
    want: str | None,
) -> None:
    """``--esrc-hypothesis-db`` wins over ``ESRC_TESTKIT_HYPOTHESIS_DB``; ``none`` turns
    the database off; with neither the settings' own database is used."""

    def place(value: str | None) -> str | None:
        return value if value in (None, "none") else str(tmp_path / value)

    if env is None:
        monkeypatch.delenv("ESRC_TESTKIT_HYPOTHESIS_DB", raising=False)
    else:
        monkeypatch.setenv("ESRC_TESTKIT_HYPOTHESIS_DB", str(place(env)))
    seen: list[object] = []
    monkeypatch.setattr(
        machines, "run_state_machine_as_test", lambda _, settings: seen.append(settings.database)
    )
    own = hypothesis.settings(
        machines.DEFAULT_SETTINGS,
        database=DirectoryBasedExampleDatabase(tmp_path / "settings-own"),
    )
    suite = type("Suite", (StateMachineAcceptance,), {"state_machine_settings": own})()
    request = SimpleNamespace(
        config=SimpleNamespace(
            getoption=lambda name, default=None: (
                place(option) if name == "esrc_hypothesis_db" else default
            )
        )
    )
    suite.test_state_machine(lambda: None, request)
    [database] = seen
    if want is None:
        assert database is None
    else:
        assert isinstance(database, DirectoryBasedExampleDatabase)
        assert Path(database.path) == tmp_path / want


def test_hypothesis_db_option_is_registered(pytester: pytest.Pytester) -> None:
    """``pytest --help`` lists ``--esrc-hypothesis-db`` with the environment variable."""
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["*--esrc-hypothesis-db=DIR*"])
    assert "ESRC_TESTKIT_HYPOTHESIS_DB" in result.stdout.str()


def test_plugin_is_inert(pytester: pytest.Pytester) -> None:
    """The plugin is loaded, yet a test that asks for nothing gets no fixture set up."""
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest("--setup-show")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["plugins:*esrc-testkit*"])
    assert "SETUP" not in result.stdout.str()


def test_server_url_returns_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """A set variable is returned as is (trimmed)."""
    monkeypatch.setenv("ESRC_TEST_EXAMPLE_URL", " postgresql://u@h/db ")
    assert server_url("ESRC_TEST_EXAMPLE_URL") == "postgresql://u@h/db"


def test_server_url_skips_when_unset_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset on a developer's machine: skip, naming the variable and an example."""
    monkeypatch.delenv("ESRC_TEST_EXAMPLE_URL", raising=False)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception) as skipped:
        server_url("ESRC_TEST_EXAMPLE_URL", example="postgresql://u@h/db")
    assert "ESRC_TEST_EXAMPLE_URL is not set" in str(skipped.value)
    assert "export ESRC_TEST_EXAMPLE_URL=postgresql://u@h/db" in str(skipped.value)


def test_server_url_fails_when_unset_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset with ``CI=true``: fail, so CI cannot pass by skipping."""
    monkeypatch.delenv("ESRC_TEST_EXAMPLE_URL", raising=False)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception) as failed:
        server_url("ESRC_TEST_EXAMPLE_URL")
    assert "ESRC_TEST_EXAMPLE_URL is not set and CI=true" in str(failed.value)


def test_server_unreachable_fails_without_the_password() -> None:
    """An unreachable server fails the test; the message masks the password."""
    with pytest.raises(pytest.fail.Exception) as failed:
        server_unreachable(
            "ESRC_TEST_EXAMPLE_URL",
            "postgresql://user:s3cret@127.0.0.1:1/db",
            ConnectionRefusedError("connection refused"),
        )
    message = str(failed.value)
    assert "s3cret" not in message
    assert "postgresql://user:***@127.0.0.1:1/db" in message
    assert "ConnectionRefusedError: connection refused" in message


def test_reachable_url_returns_the_url_of_a_listening_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Something accepts connections at the URL's host and port: the URL comes back."""
    with socket.create_server(("127.0.0.1", 0)) as listening:
        port = listening.getsockname()[1]
        monkeypatch.setenv("ESRC_TEST_EXAMPLE_URL", f"amqp://guest:guest@127.0.0.1:{port}/")
        got = reachable_url("ESRC_TEST_EXAMPLE_URL", example="amqp://...", default_port=1)
    assert got == f"amqp://guest:guest@127.0.0.1:{port}/"


def test_reachable_url_fails_when_nothing_listens(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing listens on the port (the URL's default here): the test fails, naming the
    variable, without the password."""
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    monkeypatch.setenv("ESRC_TEST_EXAMPLE_URL", "amqp://guest:s3cret@127.0.0.1/")
    with pytest.raises(pytest.fail.Exception) as failed:
        reachable_url("ESRC_TEST_EXAMPLE_URL", example="amqp://...", default_port=port)
    message = str(failed.value)
    assert "cannot reach the server at amqp://guest:***@127.0.0.1/" in message
    assert "(from ESRC_TEST_EXAMPLE_URL)" in message
    assert "s3cret" not in message


GATED_SUITE = """
import pytest
from esrc_testkit import SnapshotAcceptance

class TestNoSnapshots(SnapshotAcceptance):
    capabilities = frozenset({"outbox"})

    @pytest.fixture
    def store_factory(self):
        def refuse():
            raise AssertionError("a store was opened for a test that should be skipped")
        yield refuse
"""


def test_undeclared_capability_skips_before_opening_a_store(pytester: pytest.Pytester) -> None:
    """Tests of a capability the class does not declare are skipped, the reason names
    the capability, and no store is opened for them."""
    pytester.makepyfile(GATED_SUITE)
    result = pytester.runpytest("-rs", "-k", "not test_declared_capabilities_are_implemented")
    outcomes = result.parseoutcomes()
    assert outcomes.get("skipped", 0) >= 8
    assert "passed" not in outcomes
    assert "failed" not in outcomes
    result.stdout.fnmatch_lines(
        ["*the backend does not declare the 'snapshots' capability (declared: outbox)*"]
    )


MISDECLARED_SUITE = """
import pytest
from esrc_memory.store import MemoryEventStore
from esrc_testkit import StreamAcceptance

class NoLockStore(MemoryEventStore):
    relay_lock = None  # hides the relay-lock protocol the memory store has

class TestMisdeclared(StreamAcceptance):
    capabilities = frozenset({CAPABILITIES})

    @pytest.fixture
    def store_factory(self):
        yield NoLockStore
"""


def test_declared_capability_without_its_protocol_fails(pytester: pytest.Pytester) -> None:
    """A class that declares 'relay-lock' for a store without relay_lock() fails the
    capability check (never skips it), naming the capability and the protocol."""
    pytester.makepyfile(MISDECLARED_SUITE.replace("{CAPABILITIES}", "{'relay-lock'}"))
    result = pytester.runpytest("-k", "test_declared_capabilities_are_implemented")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*declares capabilities its backend does not implement*'relay-lock' needs*HasRelayLock*"]
    )


def test_unknown_capability_in_a_suite_fails(pytester: pytest.Pytester) -> None:
    """A misspelt capability fails the suite's tests, listing the known names, instead
    of silently skipping the tests of the capability meant."""
    pytester.makepyfile(MISDECLARED_SUITE.replace("{CAPABILITIES}", "{'snapshotz'}"))
    result = pytester.runpytest("-k", "test_declared_capabilities_are_implemented or id")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) >= 1
    assert "skipped" not in outcomes
    result.stdout.fnmatch_lines(["*unknown capability 'snapshotz'; known capabilities: snapshots*"])
