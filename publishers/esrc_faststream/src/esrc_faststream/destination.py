"""One relay's place on a broker, named after one name: where its publisher sends,
where each consumer subscribes, how to read it back in tests, and how to delete it.

Each broker distribution defines a :class:`Destination` subclass and registers it
under the entry point group :data:`ENTRY_POINT_GROUP`, keyed by its publisher
backend's name::

    [project.entry-points."esrc.faststream"]
    rabbitmq = "esrc_rabbitmq.destination:RabbitDestination"

:func:`destination` then finds it from a publisher URL, and :func:`destination_class`
from the backend's name, so the applications, tests and benchmarks that work with
every broker name none of them.
"""

from __future__ import annotations

import abc
import importlib.metadata
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlencode, urlsplit

from esrc_core.errors import BackendConfigError, BackendUnavailableError, UnknownBackendError
from esrc_core.plugins import open_publisher, plugins
from esrc_core.relay import Publisher
from esrc_core.urls import mask_url

from esrc_faststream.consumer import Projection
from esrc_faststream.loop import LoopThread

if TYPE_CHECKING:
    from esrc_faststream.testing import BrokerReader

__all__ = ["ENTRY_POINT_GROUP", "Destination", "destination", "destination_class"]

ENTRY_POINT_GROUP = "esrc.faststream"
"""The entry point group where broker distributions register their
:class:`Destination` class, under their publisher backend's name."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


class Destination(abc.ABC):
    """The exchange, stream, queues or consumer groups of one relay on one broker,
    every one named after ``name`` (letters, digits, ``_`` and ``-``).

    ``url`` is the broker's URL without publisher options. Building a destination
    touches no broker; :meth:`delete` and the objects it makes do. Subclasses define
    how the names map to the broker's objects, and :attr:`backend` and :attr:`label`.
    Raises :class:`~esrc_core.errors.BackendConfigError` for a malformed ``name``.
    """

    backend: ClassVar[str]
    """The publisher backend this destination belongs to, e.g. ``"rabbitmq"``."""
    label: ClassVar[str]
    """The broker's name for people, e.g. ``"RabbitMQ"``."""

    def __init__(self, url: str, name: str) -> None:
        if not _NAME.fullmatch(name):
            raise BackendConfigError(
                f"{self.label} destination {name!r} on {mask_url(url)!r}: use letters, "
                "digits, '_' and '-' only, starting with a letter or digit"
            )
        self.url = url
        self.name = name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({mask_url(self.url)!r}, {self.name!r})"

    @abc.abstractmethod
    def publisher_options(self) -> dict[str, str]:
        """The publisher options (as query-string values) that send to this
        destination."""

    def publisher_url(self, base: str | None = None, **extra: str) -> str:
        """``base`` (default: :attr:`url`) with :meth:`publisher_options` and ``extra``
        options added to its query string, for ``open_publisher`` or ``esrc relay``."""
        url = self.url if base is None else base
        query = urlencode({**self.publisher_options(), **extra})
        return url + ("&" if urlsplit(url).query else "?") + query

    def open_publisher(self, **options: Any) -> Publisher:
        """Open the publisher that sends to this destination (``options`` as for
        :func:`esrc_core.plugins.open_publisher`); the caller closes it.

        Opening it first creates the stream or exchange the consumers read from."""
        return open_publisher(self.publisher_url(), **options)

    @abc.abstractmethod
    def faststream_broker(self, **options: Any) -> Any:
        """A FastStream broker for :attr:`url` (``options`` go to its constructor,
        e.g. ``logger``), for :meth:`subscribe`; the caller starts and stops it."""

    @abc.abstractmethod
    def subscribe(self, broker: Any, projection: Projection, consumer: str) -> Any:
        """Subscribe ``projection`` on ``broker`` (from :meth:`faststream_broker`) as
        the durable consumer ``consumer`` (a name as for ``name``): every event sent to
        this destination, in order, each applied once. Start the broker after
        :meth:`open_publisher`, before anything is published. Returns the FastStream
        subscriber."""

    @abc.abstractmethod
    def reader(self, loop: LoopThread) -> BrokerReader:
        """Open a :class:`~esrc_faststream.testing.BrokerReader` of this destination
        whose client runs on ``loop``; it receives what is published after it opens."""

    def delete(
        self, consumers: Sequence[str] = (), *, loop: LoopThread | None = None, timeout: float = 30
    ) -> None:
        """Delete this destination from the broker: its exchange or stream and the
        objects of ``consumers`` (as named to :meth:`subscribe`). Missing ones are
        fine. Runs on ``loop`` (default: a loop of its own) within ``timeout`` seconds;
        the client's errors propagate."""
        own = loop is None
        runner = LoopThread(name=f"esrc-{self.backend}-delete") if loop is None else loop
        try:
            runner.run(self._delete(consumers), timeout)
        finally:
            if own:
                runner.close()

    @abc.abstractmethod
    async def _delete(self, consumers: Sequence[str]) -> None:
        """Delete what :meth:`delete` promises, on the running loop."""


def destination_class(backend: str) -> type[Destination]:
    """The :class:`Destination` class registered for the publisher backend named
    ``backend``.

    Raises :class:`~esrc_core.errors.UnknownBackendError` when no installed
    distribution registers one, and
    :class:`~esrc_core.errors.BackendUnavailableError` when the registered class
    cannot be imported.
    """
    found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name=backend)
    if not found:
        known = sorted(ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
        raise UnknownBackendError(
            f"no broker destination is registered for the {backend!r} publisher; "
            f"registered: {', '.join(known) or 'none'} (entry point group "
            f"{ENTRY_POINT_GROUP!r})"
        )
    entry_point = next(iter(found))
    try:
        loaded = entry_point.load()
    except ImportError as err:
        raise BackendUnavailableError(
            f"the {backend} destination {entry_point.value} cannot import "
            f"{err.name or err}; reinstall its distribution"
        ) from err
    if not (isinstance(loaded, type) and issubclass(loaded, Destination)):
        raise BackendUnavailableError(
            f"the {backend} entry point {entry_point.value} is not a Destination class"
        )
    return loaded


def destination(url: str, name: str) -> Destination:
    """The :class:`Destination` ``name`` on the broker of the publisher ``url``
    (chosen by its scheme, as ``open_publisher`` chooses the publisher).

    Raises what :func:`destination_class` raises,
    :class:`~esrc_core.errors.UnknownBackendError` for a URL no publisher handles, and
    :class:`~esrc_core.errors.BackendConfigError` for a malformed ``name``.
    """
    backend, backend_url = plugins().resolve(url, "publisher")
    return destination_class(backend.name)(backend_url, name)
