"""Backends as plugins: pluggy hook specifications, discovery through the ``esrc``
entry point group, and opening a store or publisher from a URL.

A backend distribution declares an entry point in the ``esrc`` group that names a
module (or object) with hook implementations::

    [project.entry-points.esrc]
    mybackend = "my_package.plugin"

and that module yields :class:`Backend` descriptors::

    from esrc_core.plugins import Backend, hookimpl

    @hookimpl
    def esrc_store_backends():
        return [Backend(name="mybackend", kind="store", schemes=("my",),
                        factory=_open, capabilities=frozenset({"snapshots"}))]

Hooks only describe and construct: once a store is open, its methods are called
directly. A plugin that fails to import, or whose hook raises, is reported in
:attr:`Plugins.problems` and skipped; the others still load.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

import pluggy

from esrc_core.async_store import AsyncEventStore
from esrc_core.capabilities import Kind, parse_capabilities
from esrc_core.errors import AmbiguousBackendError, NotSupportedError, UnknownBackendError
from esrc_core.relay import AsyncPublisher, Publisher
from esrc_core.store import EventStore
from esrc_core.urls import mask_url, url_scheme

__all__ = [
    "Backend",
    "PluginProblem",
    "Plugins",
    "hookimpl",
    "hookspec",
    "open_async_event_store",
    "open_async_publisher",
    "open_event_store",
    "open_publisher",
    "plugins",
]

_INSTALL_HINTS: dict[Kind, str] = {
    "store": "pip install esrc-memory for the in-memory store, esrc-sqlalchemy for "
    "SQLite, PostgreSQL and MariaDB",
    "publisher": "pip install esrc-memory for the in-process publisher, esrc-rabbitmq, "
    "esrc-nats or esrc-redis for a broker",
}
"""What to install when no backend of a kind is, by kind."""

PROJECT = "esrc"
hookspec = pluggy.HookspecMarker(PROJECT)
"""Marks hook specifications of the ``esrc`` project."""
hookimpl = pluggy.HookimplMarker(PROJECT)
"""Marks a plugin's implementation of an ``esrc`` hook."""

log = logging.getLogger("esrc.plugins")


@dataclass(frozen=True)
class Backend:
    """Describes one backend a plugin offers.

    ``factory(url, **options)`` opens it; it should import drivers lazily, so that
    listing backends never needs them. ``schemes`` are the URL schemes it claims
    (``"postgresql"`` claims ``postgresql://`` and ``postgresql+driver://``).
    ``install_hint`` says how to get what a missing driver needs. ``distribution`` and
    ``version`` are filled in from the entry point that registered the plugin.
    ``inspect_options`` are the options the inspection commands (``esrc streams``,
    ``events``, ``tail``, ``relays``) open a store with, under the user's own: the
    backend's way of saying "open what exists, create nothing" (the SQL store's is
    ``create_schema=False``).

    ``async_factory(url, **options)``, when given, opens the backend's async face (an
    :class:`~esrc_core.async_store.AsyncEventStore` or an
    :class:`~esrc_core.async_relay.AsyncPublisher`) for the same URLs as ``factory``;
    it is awaited if it returns an awaitable.

    ``capabilities`` are :class:`~esrc_core.capabilities.Capability` members or their
    names; they are stored as members. A name that is not a capability, or one for the
    other kind of backend, raises ``ValueError`` listing the known ones.
    """

    name: str
    kind: Kind
    schemes: tuple[str, ...]
    factory: Callable[..., Any]
    capabilities: frozenset[str] = frozenset()
    description: str = ""
    install_hint: str = ""
    distribution: str | None = None
    version: str | None = None
    inspect_options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    async_factory: Callable[..., Any] | None = None

    @property
    def offers_async(self) -> bool:
        """Whether the backend opens an async store or publisher too
        (:func:`open_async_event_store`, :func:`open_async_publisher`)."""
        return self.async_factory is not None

    def __post_init__(self) -> None:
        try:
            capabilities = parse_capabilities(self.capabilities, self.kind)
        except (TypeError, ValueError) as err:
            raise type(err)(f"backend {self.name!r}: {err}") from None
        object.__setattr__(self, "capabilities", capabilities)


@dataclass(frozen=True)
class PluginProblem:
    """A plugin that could not be loaded or whose hook failed, and why."""

    plugin: str
    distribution: str | None
    error: str


class _HookSpecs:
    """The hooks an esrc plugin may implement."""

    @hookspec
    def esrc_store_backends(self) -> Sequence[Backend]:  # type: ignore[empty-body]
        """Return the event store backends this plugin offers."""

    @hookspec
    def esrc_publisher_backends(self) -> Sequence[Backend]:  # type: ignore[empty-body]
        """Return the relay publisher backends this plugin offers."""


_HOOKS: dict[Kind, str] = {"store": "esrc_store_backends", "publisher": "esrc_publisher_backends"}


@dataclass
class _Dist:
    name: str | None = None
    version: str | None = None


@dataclass
class Plugins:
    """The set of loaded plugins and the backends they describe.

    ``Plugins()`` loads the ``esrc`` entry points on first use; ``Plugins(
    entry_points=False)`` starts empty, for registering plugin objects by hand with
    :meth:`register`. Thread-safe.
    """

    entry_points: bool = True
    _pm: pluggy.PluginManager = field(init=False, repr=False)
    _dists: dict[int, _Dist] = field(init=False, repr=False, default_factory=dict)
    _problems: list[PluginProblem] = field(init=False, repr=False, default_factory=list)
    _loaded: bool = field(init=False, repr=False, default=False)
    _lock: threading.RLock = field(init=False, repr=False, default_factory=threading.RLock)

    def __post_init__(self) -> None:
        self._pm = pluggy.PluginManager(PROJECT)
        self._pm.add_hookspecs(_HookSpecs)

    def _ensure_loaded(self) -> None:
        with self._lock:
            if self._loaded:
                return
            self._loaded = True
            if self.entry_points:
                self._load_entry_points()

    def _load_entry_points(self) -> None:
        for ep in importlib.metadata.entry_points(group=PROJECT):
            dist = _Dist(ep.dist.name if ep.dist else None, ep.dist.version if ep.dist else None)
            try:
                plugin = ep.load()
                if self._pm.is_registered(plugin):
                    continue
                self._pm.register(plugin, name=ep.name)
            except Exception as err:
                log.warning(
                    "esrc plugin %r from %s failed to load: %r",
                    ep.name,
                    dist.name,
                    err,
                    extra={"plugin": ep.name, "distribution": dist.name, "error": repr(err)},
                )
                self._problems.append(PluginProblem(ep.name, dist.name, f"{err!r}"))
                continue
            self._dists[id(plugin)] = dist

    def register(self, plugin: object, name: str | None = None) -> None:
        """Register a plugin object (a module or instance with hook implementations)."""
        with self._lock:
            self._pm.register(plugin, name=name)

    def unregister(self, plugin: object) -> None:
        """Remove a plugin registered with :meth:`register`."""
        with self._lock:
            self._pm.unregister(plugin)

    @property
    def problems(self) -> list[PluginProblem]:
        """Plugins that failed to load or whose hooks raised."""
        self._ensure_loaded()
        self.backends()
        return list(self._problems)

    def backends(self, kind: Kind | None = None) -> list[Backend]:
        """The backends all plugins describe, of one kind or of both, sorted by name.

        A hook that raises or returns something other than :class:`Backend` objects
        is recorded in :attr:`problems` and skipped.
        """
        self._ensure_loaded()
        kinds: Iterable[Kind] = (kind,) if kind else ("store", "publisher")
        found: list[Backend] = []
        with self._lock:
            for k in kinds:
                caller = getattr(self._pm.hook, _HOOKS[k])
                for impl in caller.get_hookimpls():
                    plugin_name = self._pm.get_name(impl.plugin) or repr(impl.plugin)
                    dist = self._dists.get(id(impl.plugin), _Dist())
                    try:
                        result = list(impl.function())
                        bad = [b for b in result if not isinstance(b, Backend) or b.kind != k]
                        if bad:
                            raise TypeError(f"{_HOOKS[k]} returned {bad!r}, not {k} Backends")
                    except Exception as err:
                        problem = PluginProblem(plugin_name, dist.name, f"{err!r}")
                        if problem not in self._problems:
                            log.warning(
                                "esrc plugin %r: %s failed: %r",
                                plugin_name,
                                _HOOKS[k],
                                err,
                                extra={
                                    "plugin": plugin_name,
                                    "distribution": dist.name,
                                    "error": repr(err),
                                },
                            )
                            self._problems.append(problem)
                        continue
                    found.extend(
                        replace(
                            b,
                            distribution=b.distribution or dist.name,
                            version=b.version or dist.version,
                        )
                        for b in result
                    )
        return sorted(found, key=lambda b: (b.kind, b.name))

    def resolve(self, url: str, kind: Kind) -> tuple[Backend, str]:
        """Pick the backend of ``kind`` for ``url``; return it and the URL to give it.

        The URL's scheme selects the backend: a scheme ``name+rest`` where ``name`` is
        a backend forces that backend and passes ``rest://...`` on; otherwise the full
        scheme (``postgresql+psycopg``) and then its first part (``postgresql``) are
        looked up among the schemes backends claim. Raises
        :class:`~esrc_core.errors.UnknownBackendError` listing the installed backends
        when nothing matches, and :class:`~esrc_core.errors.AmbiguousBackendError`
        when several do.
        """
        if not isinstance(url, str):
            raise TypeError(f"a backend URL must be a str, got {type(url).__name__}")
        backends = self.backends(kind)
        scheme = url_scheme(url)
        if scheme is None:
            raise UnknownBackendError(
                f"cannot open a {kind} for {mask_url(url)!r}: expected a URL of the form "
                f"scheme://...; {self._installed(kind, backends)}"
            )
        first, plus, rest = scheme.partition("+")
        if plus and rest:
            named = [b for b in backends if b.name == first]
            if len(named) == 1:
                return named[0], rest + url[len(scheme) :]
        for candidate in (scheme, first):
            claiming = [b for b in backends if candidate in b.schemes]
            if len(claiming) == 1:
                return claiming[0], url
            if len(claiming) > 1:
                names = ", ".join(f"{b.name} ({b.distribution})" for b in claiming)
                raise AmbiguousBackendError(
                    f"cannot open a {kind} for {mask_url(url)!r}: scheme {candidate!r} is "
                    f"claimed by {names}; prefix the URL with the backend name, e.g. "
                    f"{claiming[0].name}+{url_scheme(url)}://..."
                )
        raise UnknownBackendError(
            f"no installed {kind} backend handles {mask_url(url)!r} (scheme {scheme!r}); "
            f"{self._installed(kind, backends)}"
        )

    def _installed(self, kind: Kind, backends: list[Backend]) -> str:
        if backends:
            listed = "; ".join(f"{b.name}: {', '.join(b.schemes)}" for b in backends)
            text = f"installed {kind} backends: {listed}"
        else:
            text = f"no {kind} backends are installed ({_INSTALL_HINTS[kind]})"
        if self._problems:
            text += "; plugins that failed to load: " + ", ".join(
                f"{p.plugin} ({p.error})" for p in self._problems
            )
        return text

    def open_event_store(self, url: str, **options: Any) -> EventStore:
        """Open the event store ``url`` names; ``options`` go to the backend."""
        backend, backend_url = self.resolve(url, "store")
        return cast(EventStore, backend.factory(backend_url, **options))

    def open_publisher(self, url: str, **options: Any) -> Publisher:
        """Open the relay publisher ``url`` names; ``options`` go to the backend."""
        backend, backend_url = self.resolve(url, "publisher")
        return cast(Publisher, backend.factory(backend_url, **options))

    async def _open_async(self, url: str, kind: Kind, options: Mapping[str, Any]) -> Any:
        backend, backend_url = self.resolve(url, kind)
        factory = backend.async_factory
        if factory is None:
            offering = [b.name for b in self.backends(kind) if b.offers_async]
            raise NotSupportedError(
                f"cannot open an async {kind} for {mask_url(url)!r}: the {backend.name!r} "
                f"backend ({backend.distribution or 'registered by hand'}) offers only the "
                f"sync API (open_{'event_store' if kind == 'store' else kind}); backends "
                f"with an async API: {', '.join(offering) or 'none installed'}"
            )
        opened = factory(backend_url, **options)
        if inspect.isawaitable(opened):
            opened = await opened
        return opened

    async def open_async_event_store(self, url: str, **options: Any) -> AsyncEventStore:
        """Open the async event store ``url`` names (the same URLs as
        :meth:`open_event_store`); raises :class:`~esrc_core.errors.NotSupportedError`
        when its backend has no async API."""
        return cast(AsyncEventStore, await self._open_async(url, "store", options))

    async def open_async_publisher(self, url: str, **options: Any) -> AsyncPublisher:
        """Open the async relay publisher ``url`` names (the same URLs as
        :meth:`open_publisher`); raises :class:`~esrc_core.errors.NotSupportedError`
        when its backend has no async API."""
        return cast(AsyncPublisher, await self._open_async(url, "publisher", options))


_default: Plugins | None = None
_default_lock = threading.Lock()


def plugins() -> Plugins:
    """The process-wide :class:`Plugins`, loaded from entry points on first use."""
    global _default  # noqa: PLW0603
    with _default_lock:
        if _default is None:
            _default = Plugins()
        return _default


def open_event_store(url: str, **options: Any) -> EventStore:
    """Open an event store by URL, e.g. ``memory://``, ``sqlite:///events.db`` or
    ``postgresql+psycopg://user@host/db``; ``options`` go to the backend.

    Raises :class:`~esrc_core.errors.UnknownBackendError` (listing what is
    installed) when no backend claims the scheme.
    """
    return plugins().open_event_store(url, **options)


def open_publisher(url: str, **options: Any) -> Publisher:
    """Open a relay publisher by URL, e.g. ``memory://``; ``options`` go to the backend."""
    return plugins().open_publisher(url, **options)


async def open_async_event_store(url: str, **options: Any) -> AsyncEventStore:
    """Open an async event store by URL: the same URLs as :func:`open_event_store`
    (``sqlite:///events.db`` and ``postgresql+psycopg://...`` open the matching asyncio
    driver; an explicit one such as ``sqlite+aiosqlite://`` is honoured).

    Raises :class:`~esrc_core.errors.UnknownBackendError` when no backend claims the
    scheme and :class:`~esrc_core.errors.NotSupportedError` when the backend that does
    offers only the sync API.
    """
    return await plugins().open_async_event_store(url, **options)


async def open_async_publisher(url: str, **options: Any) -> AsyncPublisher:
    """Open an async relay publisher by URL (the same URLs as :func:`open_publisher`);
    raises :class:`~esrc_core.errors.NotSupportedError` when its backend offers only the
    sync API."""
    return await plugins().open_async_publisher(url, **options)
