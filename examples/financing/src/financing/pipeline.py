"""The moving parts between a saved event and the read side: the store's outbox, the
relay, the transport (in process or a broker) and the consumers, and a way to wait until
everything published has been handled."""

from __future__ import annotations

import time
from dataclasses import dataclass

from esrc_faststream.consumer import Projection

from esrc_core import Capability, EventStore, HasOutbox, Relay, mask_url, offered
from esrc_memory import MemoryPublisher
from financing.brokers import Transport, connect
from financing.delivery import DeliveryLog, PublishLog

__all__ = ["Consumer", "Pipeline", "PipelineError"]


class PipelineError(Exception):
    """The pipeline cannot run (a store without an outbox) or did not settle in time."""


@dataclass(frozen=True)
class Consumer:
    """A consumer of the relayed events: its name, its projection, and what it has
    handled."""

    name: str
    projection: Projection
    log: DeliveryLog


class Pipeline:
    """Relays the store's events through ``publisher_url`` to the ``consumers``
    (``{name: projection}``), each of which receives every event, in relay order.

    The relay's progress is kept under ``relay_name`` in the store, so a new pipeline
    continues where the last one stopped. :meth:`settle` relays until nothing is left
    and every consumer has handled everything (the consumers may save new events, which
    are relayed in turn). Drive one pipeline from one thread.
    """

    def __init__(
        self,
        store: EventStore,
        publisher_url: str,
        consumers: dict[str, Projection],
        *,
        name: str,
        relay_name: str,
        fresh: bool = False,
        batch_size: int = 100,
    ) -> None:
        has_outbox = offered(store, Capability.OUTBOX, HasOutbox)
        if has_outbox is None:
            raise PipelineError(f"the store {store!r} has no outbox to relay events from")
        self.store = store
        self._outboxes = has_outbox
        self.publisher_url = mask_url(publisher_url)
        self.consumers = [Consumer(n, p, _attach(p)) for n, p in consumers.items()]
        self.transport: Transport = connect(
            publisher_url, name, list(consumers.items()), fresh=fresh
        )
        self.published = PublishLog(self.transport.publisher)
        self.relay_name = relay_name
        self.relay = Relay(has_outbox.outbox(relay_name), self.published, batch_size=batch_size)
        self.batches = 0
        """Batches the relay published."""

    def settle(self, timeout: float = 60.0) -> int:
        """Relay until the outbox is empty and every consumer has handled every
        published message; returns the number of events relayed.

        Raises :class:`PipelineError` when that does not happen within ``timeout``
        seconds of the last progress.
        """
        return self._drain(self.relay, timeout)

    def redeliver(self, relay_name: str) -> int:
        """Hand the stored events to every consumer a second time, in this thread, as
        a broker's redelivery would; returns the number of events.

        A relay named ``relay_name`` reads them, so a later call with the same name
        hands over only the events stored since.
        """
        direct = MemoryPublisher()
        for consumer in self.consumers:
            direct.subscribe(consumer.projection.handle)
        relay = Relay(self._outboxes.outbox(relay_name), direct, batch_size=500)
        count = 0
        while published := relay.run_once():
            count += published
        return count

    def _drain(self, relay: Relay, timeout: float) -> int:
        relayed = 0
        deadline = time.monotonic() + timeout
        while True:
            published = self.published.published()
            caught_up = all(c.log.caught_up(published) for c in self.consumers)
            count = relay.run_once()
            if count:
                relayed += count
                self.batches += 1
                deadline = time.monotonic() + timeout
                continue
            if caught_up:
                return relayed
            if time.monotonic() > deadline:
                waiting = [c.name for c in self.consumers if not c.log.caught_up(published)]
                raise PipelineError(
                    f"relay {relay.outbox.name!r} through {self.publisher_url}: "
                    f"{', '.join(waiting)} did not handle every published event within "
                    f"{timeout}s"
                )
            time.sleep(0.01)

    def unpublished(self) -> int:
        """How many events the relay has yet to publish (counted up to 1000)."""
        return len(self.relay.outbox.unpublished_events(1000))

    def close(self) -> None:
        """Stop the transport (the store stays open)."""
        self.transport.close()


def _attach(projection: Projection) -> DeliveryLog:
    log = DeliveryLog(projection.seen)
    projection.seen = log
    return log
