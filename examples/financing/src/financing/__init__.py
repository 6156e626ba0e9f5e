"""Invoice financing: an example application built on esrc (event sourcing + CQRS).

Issuers put invoices up for sale; investors deposit funds and bid on them; an accepted
bid finances the invoice and commits the investor's funds; a rejected bid or a reversed
financing gives the funds back.

- :mod:`financing.events`: the events and their registry.
- :mod:`financing.issuer`, :mod:`financing.investor`, :mod:`financing.invoice`: the
  aggregates and the rules they guard.
- :mod:`financing.commands`: command handlers, one aggregate each.
- :mod:`financing.process`: the choreography that chains them through relayed events,
  with compensation.
- :mod:`financing.read_models`: investors and invoices as SQL tables, fed by relayed
  events, each applied once.
- :mod:`financing.pipeline`, :mod:`financing.brokers`: the relay and the transport to
  the consumers, in process or through RabbitMQ, NATS or Redis.
- :mod:`financing.demo`: the scripted scenario behind ``esrc-financing demo``.
"""

from financing.commands import Commands
from financing.investor import Investor
from financing.invoice import Invoice
from financing.issuer import Issuer
from financing.process import FinancingProcess
from financing.read_models import ReadModels

__all__ = ["Commands", "FinancingProcess", "Investor", "Invoice", "Issuer", "ReadModels"]
