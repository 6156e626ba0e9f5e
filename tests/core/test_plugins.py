"""Plugins: discovery through entry points, URL resolution, and reporting of broken
plugins."""

from __future__ import annotations

import importlib.metadata
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from esrc_core.plugins import PluginProblem

from esrc_core import (
    AmbiguousBackendError,
    Backend,
    BatchPublisher,
    EventStore,
    HasOutbox,
    Plugins,
    Publisher,
    RawEvent,
    UnknownBackendError,
    hookimpl,
    open_event_store,
    open_publisher,
)
from esrc_memory import MemoryEventStore


def _backend(plugins: Plugins, kind: Any, name: str) -> Backend:
    [found] = [b for b in plugins.backends(kind) if b.name == name]
    return found


def test_memory_backend_is_discovered_from_its_entry_point() -> None:
    [entry_point] = importlib.metadata.entry_points(group="esrc", name="memory")
    assert entry_point.dist is not None
    assert entry_point.dist.name == "esrc-memory"

    loaded = Plugins()
    store = _backend(loaded, "store", "memory")
    assert store.distribution == "esrc-memory"
    assert store.version == importlib.metadata.version("esrc-memory")
    assert store.schemes == ("memory",)
    assert {"snapshots", "outbox", "threads"} <= store.capabilities
    publisher = _backend(loaded, "publisher", "memory")
    assert publisher.distribution == "esrc-memory"
    assert "batch" in publisher.capabilities


def test_backends_are_sorted_and_filtered_by_kind() -> None:
    loaded = Plugins()
    everything = loaded.backends()
    assert everything == sorted(everything, key=lambda b: (b.kind, b.name))
    assert {b.kind for b in loaded.backends("store")} == {"store"}
    assert {b.kind for b in loaded.backends("publisher")} == {"publisher"}


def test_open_event_store_memory() -> None:
    store = open_event_store("memory://")
    assert isinstance(store, EventStore)
    assert isinstance(store, HasOutbox)
    store.add_aggregate("Order", 1, [RawEvent("Placed", b"")])
    assert store.contains_aggregate("Order", 1)
    assert not open_event_store("memory://").contains_aggregate("Order", 1), "private store"
    store.close()


def test_named_memory_stores_share_data() -> None:
    first = open_event_store("memory://shared-by-name-test")
    second = open_event_store("memory://shared-by-name-test")
    first.add_aggregate("Order", 1, [RawEvent("Placed", b"")])
    assert second.contains_aggregate("Order", 1)


def test_open_publisher_memory() -> None:
    publisher = open_publisher("memory://")
    assert isinstance(publisher, Publisher)
    assert isinstance(publisher, BatchPublisher)
    publisher.close()
    publisher.close()


def test_unknown_scheme_lists_the_installed_backends() -> None:
    with pytest.raises(UnknownBackendError) as caught:
        open_event_store("nope://x")
    message = str(caught.value)
    assert "'nope://x'" in message
    assert "scheme 'nope'" in message
    assert "installed store backends: " in message
    assert "memory: memory" in message


def test_unknown_publisher_scheme_lists_the_installed_publishers() -> None:
    with pytest.raises(UnknownBackendError, match=r"installed publisher backends: .*memory"):
        open_publisher("nope://x")


@pytest.mark.parametrize("url", ["", "memory", "events.db", "/tmp/events.db", "memory:/x"])
def test_a_url_without_a_scheme_is_an_unknown_backend_error(url: str) -> None:
    with pytest.raises(UnknownBackendError, match=r"expected a URL of the form scheme://.*memory"):
        open_event_store(url)


def test_the_password_is_masked_in_the_message() -> None:
    with pytest.raises(UnknownBackendError) as caught:
        open_event_store("nope://user:secret@host")
    assert "secret" not in str(caught.value)
    assert "nope://user:***@host" in str(caught.value)


def test_the_password_of_a_url_without_scheme_is_masked_in_the_message() -> None:
    with pytest.raises(UnknownBackendError) as caught:
        open_event_store("user:secret@host/db")
    assert "secret" not in str(caught.value)


def test_a_url_must_be_a_string() -> None:
    with pytest.raises(TypeError, match="must be a str"):
        Plugins(entry_points=False).resolve(b"memory://", "store")  # type: ignore[arg-type]


class Opened:
    """What a test factory was called with."""

    def __init__(self, backend: str, url: str, options: dict[str, Any]) -> None:
        self.backend = backend
        self.url = url
        self.options = options


class StorePlugin:
    """An in-test plugin offering one store backend."""

    def __init__(self, name: str, *schemes: str, distribution: str | None = None) -> None:
        self.name = name
        self.schemes = schemes
        self.distribution = distribution

    def open(self, url: str, **options: Any) -> Opened:
        return Opened(self.name, url, options)

    @hookimpl
    def esrc_store_backends(self) -> list[Backend]:
        return [
            Backend(
                name=self.name,
                kind="store",
                schemes=self.schemes,
                factory=self.open,
                distribution=self.distribution,
            )
        ]


def _opened(plugins: Plugins, url: str, **options: Any) -> Opened:
    result: Any = plugins.open_event_store(url, **options)
    assert isinstance(result, Opened)
    return result


def test_no_entry_points_means_no_backends() -> None:
    empty = Plugins(entry_points=False)
    assert empty.backends() == []
    assert empty.problems == []
    with pytest.raises(UnknownBackendError, match="no store backends are installed"):
        empty.open_event_store("memory://")


def test_a_registered_plugin_opens_its_scheme_with_url_and_options() -> None:
    plugins = Plugins(entry_points=False)
    plugins.register(StorePlugin("alpha", "alpha"))
    opened = _opened(plugins, "alpha://host/db", pool_size=3)
    assert (opened.backend, opened.url, opened.options) == (
        "alpha",
        "alpha://host/db",
        {"pool_size": 3},
    )


def test_a_driver_suffix_falls_back_to_the_base_scheme() -> None:
    plugins = Plugins(entry_points=False)
    plugins.register(StorePlugin("sql", "pg"))
    opened = _opened(plugins, "pg+psycopg://u@h/db")
    assert opened.backend == "sql"
    assert opened.url == "pg+psycopg://u@h/db", "the URL is passed on unchanged"


def test_a_full_scheme_claim_wins_over_the_base_scheme() -> None:
    plugins = Plugins(entry_points=False)
    plugins.register(StorePlugin("generic", "pg"))
    plugins.register(StorePlugin("special", "pg+fast"))
    assert _opened(plugins, "pg+fast://h").backend == "special"
    assert _opened(plugins, "pg+slow://h").backend == "generic"


def test_two_plugins_claiming_one_scheme_are_ambiguous_and_named() -> None:
    plugins = Plugins(entry_points=False)
    plugins.register(StorePlugin("alpha", "shared", distribution="alpha-dist"))
    plugins.register(StorePlugin("beta", "shared", "beta"))
    with pytest.raises(AmbiguousBackendError) as caught:
        plugins.open_event_store("shared://user:secret@host/db")
    message = str(caught.value)
    assert "alpha (alpha-dist)" in message
    assert "beta" in message
    assert "scheme 'shared'" in message
    assert "prefix the URL with the backend name" in message
    assert "secret" not in message


def test_a_backend_prefix_picks_one_and_passes_the_rest_of_the_url_on() -> None:
    plugins = Plugins(entry_points=False)
    plugins.register(StorePlugin("alpha", "shared"))
    plugins.register(StorePlugin("beta", "shared"))
    alpha = _opened(plugins, "alpha+shared://host/db?x=1")
    assert (alpha.backend, alpha.url) == ("alpha", "shared://host/db?x=1")
    beta = _opened(plugins, "beta+shared+driver://host")
    assert (beta.backend, beta.url) == ("beta", "shared+driver://host")


def test_unregister_removes_a_plugin() -> None:
    plugins = Plugins(entry_points=False)
    plugin = StorePlugin("alpha", "alpha")
    plugins.register(plugin)
    plugins.unregister(plugin)
    with pytest.raises(UnknownBackendError):
        plugins.open_event_store("alpha://")


class RaisingPlugin:
    @hookimpl
    def esrc_store_backends(self) -> list[Backend]:
        raise RuntimeError("driver import exploded")


class WrongTypePlugin:
    @hookimpl
    def esrc_store_backends(self) -> list[object]:
        return ["not a backend"]


class WrongKindPlugin:
    @hookimpl
    def esrc_store_backends(self) -> list[Backend]:
        return [Backend(name="pub", kind="publisher", schemes=("pub",), factory=dict)]


class NonePlugin:
    @hookimpl
    def esrc_store_backends(self) -> None:
        return None


@pytest.mark.parametrize(
    ("broken", "error"),
    [
        (RaisingPlugin(), "driver import exploded"),
        (WrongTypePlugin(), "'not a backend'"),
        (WrongKindPlugin(), "not store Backends"),
        (NonePlugin(), "TypeError"),
    ],
    ids=["raises", "wrong-type", "wrong-kind", "none"],
)
def test_a_broken_plugin_is_reported_and_the_others_still_work(
    broken: object, error: str, caplog: pytest.LogCaptureFixture
) -> None:
    plugins = Plugins(entry_points=False)
    plugins.register(broken, name="broken")
    plugins.register(StorePlugin("good", "good"))
    with caplog.at_level(logging.WARNING, logger="esrc.plugins"):
        assert [b.name for b in plugins.backends("store")] == ["good"]
        assert _opened(plugins, "good://x").backend == "good"
        problems = plugins.problems
    assert len(problems) == 1, "a problem is recorded once however often hooks run"
    assert problems[0].plugin == "broken"
    assert error in problems[0].error
    assert [r for r in caplog.records if "broken" in r.getMessage()], "the failure is logged"
    with pytest.raises(UnknownBackendError, match="plugins that failed to load: broken"):
        plugins.open_event_store("nope://")


@pytest.fixture
def fake_distributions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A sys.path entry holding two installed-looking distributions with ``esrc`` entry
    points: one whose module does not exist, and one whose hook raises."""
    broken = tmp_path / "esrc_broken-1.2.3.dist-info"
    broken.mkdir()
    (broken / "METADATA").write_text("Metadata-Version: 2.1\nName: esrc-broken\nVersion: 1.2.3\n")
    (broken / "entry_points.txt").write_text("[esrc]\nbroken = esrc_no_such_module.plugin\n")

    raising = tmp_path / "esrc_raising-0.1.dist-info"
    raising.mkdir()
    (raising / "METADATA").write_text("Metadata-Version: 2.1\nName: esrc-raising\nVersion: 0.1\n")
    (raising / "entry_points.txt").write_text("[esrc]\nraising = esrc_raising_plugin\n")
    (tmp_path / "esrc_raising_plugin.py").write_text(
        "from esrc_core.plugins import hookimpl\n\n\n"
        "@hookimpl\n"
        "def esrc_store_backends():\n"
        "    raise RuntimeError('no driver here')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("esrc_raising_plugin", None)


@pytest.mark.usefixtures("fake_distributions")
def test_installed_plugins_that_fail_are_reported_with_their_distribution() -> None:
    loaded = Plugins()
    problems = {p.plugin: p for p in loaded.problems}
    assert problems["broken"].distribution == "esrc-broken"
    assert "esrc_no_such_module" in problems["broken"].error
    assert problems["raising"] == PluginProblem(
        "raising", "esrc-raising", "RuntimeError('no driver here')"
    )
    store = loaded.open_event_store("memory://")
    assert isinstance(store, MemoryEventStore), "the other plugins still load"
    with pytest.raises(UnknownBackendError) as caught:
        loaded.open_event_store("nope://")
    assert "broken (ModuleNotFoundError" in str(caught.value)
    assert "raising (RuntimeError('no driver here'))" in str(caught.value)
