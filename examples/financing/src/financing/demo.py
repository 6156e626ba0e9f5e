"""The scripted demonstration behind ``esrc-financing demo``.

Issuers put invoices up for sale, investors deposit funds and bid; the choreography
accepts, rejects, commits and releases; one financing is reversed; two races run on
real threads, one of them on a single investor, so optimistic concurrency makes all
but one writer retry. Then every event is delivered a second time to show the
consumers drop duplicates, and the read models are checked against the aggregates
loaded from the event store.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shlex
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from esrc_core.inspection import Inspectable, correlated_events
from esrc_core.urls import mask_url, url_scheme

from esrc_core import EventStore, RawEvent, decode_id, open_event_store
from esrc_sqlalchemy import SqlEventStore
from financing.commands import Commands
from financing.errors import FinancingError
from financing.events import IssuerRegistered, registry
from financing.money import format_money
from financing.pipeline import Pipeline
from financing.process import FinancingProcess
from financing.read_models import InvestorView, InvoiceView, ReadModels
from financing.tables import render_table

__all__ = [
    "DEFAULT_WORKDIR",
    "DemoConfig",
    "DemoResult",
    "check_read_models",
    "console_command",
    "run_demo",
]

DEFAULT_WORKDIR = Path("financing-demo")
"""Where the demo keeps its SQLite files unless told otherwise."""

Out = Callable[[str], object]


@dataclass(frozen=True)
class DemoConfig:
    """Where the demo's parts live.

    - ``store_url``: the event store; default ``sqlite:///<workdir>/events.db``.
    - ``publisher_url``: ``memory://`` (default), ``amqp://...``, ``nats://...`` or
      ``redis://...``; with a broker, the consumers read from it.
    - ``read_models_url``: the read models' database; default
      ``sqlite:///<workdir>/read-models.db`` when the store is SQLite or in memory,
      else the store's own database (with tables of their own).
    - ``workdir``: the directory of the default SQLite files.
    - ``fresh``: start from nothing: drop the demo's tables and delete its broker
      queues and streams first. The default SQLite files are always recreated.
    - ``name``: names everything the demo creates: tables ``<name>_...`` and
      ``<name>_rm_...``, the relay, the exchange, streams and queues.
    - ``timeout``: seconds to wait for the consumers without progress before giving up.
    """

    store_url: str | None = None
    publisher_url: str = "memory://"
    read_models_url: str | None = None
    workdir: Path = DEFAULT_WORKDIR
    fresh: bool = False
    name: str = "financing"
    timeout: float = 60.0


@dataclass
class DemoResult:
    """What a demo run did and found."""

    issuers: dict[str, uuid.UUID] = field(default_factory=dict)
    investors: dict[str, uuid.UUID] = field(default_factory=dict)
    invoices: dict[str, uuid.UUID] = field(default_factory=dict)
    relayed: int = 0
    """Events the main relay published in this run."""
    deleted: int = 0
    """Events relayed, then deleted with their stream (a withdrawn invoice's)."""
    replayed: int = 0
    """Events handed to the consumers a second time to show they drop duplicates."""
    conflicts: int = 0
    """Concurrency conflicts the command handlers retried."""
    refused: list[str] = field(default_factory=list)
    """Messages of the commands the domain refused."""
    mismatches: list[str] = field(default_factory=list)
    """Differences between the read models and the event store (none, hopefully)."""


def run_demo(config: DemoConfig | None = None, out: Out = print) -> DemoResult:
    """Run the scenario with ``config`` (default: SQLite files in ``./financing-demo``
    and the in-process publisher), printing through ``out``; returns what happened.

    Raises what the store, broker or read models raise when they cannot be used
    (:class:`~esrc_core.EsrcError`, :class:`~financing.read_models.ReadModelError`,
    :class:`~financing.pipeline.PipelineError`).
    """
    config = config or DemoConfig()
    store_url, read_models_url, fresh = _locations(config)
    out(f"event store:  {mask_url(store_url)}")
    out(f"read models:  {mask_url(read_models_url)}")
    out(f"publisher:    {mask_url(config.publisher_url)}")
    store = _open_store(store_url, config.name)
    read_models = ReadModels(read_models_url, table_prefix=f"{config.name}_rm_")
    pipeline: Pipeline | None = None
    try:
        if fresh:
            _drop_store_tables(store)
            read_models.drop()
        read_models.create()
        commands = Commands(store)
        process = FinancingProcess(commands)
        pipeline = Pipeline(
            store,
            config.publisher_url,
            {"process": process.projection, "read-models": read_models.projection},
            name=config.name,
            relay_name=config.name,
            fresh=fresh,
        )
        demo = _Demo(store, commands, pipeline, read_models, DemoResult(), out, config.timeout)
        demo.run()
        _report(demo)
        _correlation_trail(demo)
        _console_hint(store_url, config.name, out)
        return demo.result
    finally:
        if pipeline is not None:
            pipeline.close()
        read_models.close()
        store.close()


def _correlation_trail(demo: _Demo) -> None:
    """Print the events of Ada's first bid's correlation: the command's event, then
    each step of the choreography it caused, across streams (what
    ``esrc events --correlation`` shows)."""
    store, result, out = demo.store, demo.result, demo.out
    if not isinstance(store, Inspectable) or "Ada" not in result.investors:
        return
    placed = next(
        (e for e in store.events("Investor", result.investors["Ada"]) if e.name == "BidPlaced"),
        None,
    )
    correlation_id = placed.metadata.get("correlation_id") if placed is not None else None
    if not correlation_id:
        return
    names = {
        aggregate_id: name
        for ids in (result.issuers, result.investors, result.invoices)
        for name, aggregate_id in ids.items()
    }
    out("")
    out(f"Ada's first bid, one correlation ({correlation_id}) across streams:")
    for event in correlated_events(store, correlation_id):
        who = names.get(event.aggregate_id, "") if isinstance(event.aggregate_id, uuid.UUID) else ""
        out(
            f"  #{event.position} {event.aggregate_type} {who} v{event.version}: "
            f"{event.event.name} ({_why(event.event, names)})"
        )


def console_command(store_url: str, name: str = "financing") -> str | None:
    """The ``esrc console`` command that opens the web console on the demo's store
    (its password masked), with the demo's events decoded; ``None`` for an in-memory
    store, which is gone when the demo ends."""
    if url_scheme(store_url) == "memory":
        return None
    options = " ".join(
        f"-o {key}={value}" for key, value in _store_options(store_url, name).items()
    )
    return (
        f"esrc console {shlex.quote(mask_url(store_url))} {options} "
        "--registry financing.events:registry"
    )


def _console_hint(store_url: str, name: str, out: Out) -> None:
    command = console_command(store_url, name)
    if command is None:
        return
    out("")
    out("Browse the store (streams, events, causation chains, relay lag) in the web console:")
    out(f"  {command}")
    out("then open http://127.0.0.1:8765/ (read-only; Ctrl-C stops it).")


def _locations(config: DemoConfig) -> tuple[str, str, bool]:
    """The store URL, the read models URL, and whether to start fresh."""
    if config.store_url is None:
        config.workdir.mkdir(parents=True, exist_ok=True)
        for name in ("events.db", "read-models.db"):
            for suffix in ("", "-wal", "-shm", "-journal"):
                (config.workdir / f"{name}{suffix}").unlink(missing_ok=True)
        store_url = f"sqlite:///{config.workdir / 'events.db'}"
        read_models_url = f"sqlite:///{config.workdir / 'read-models.db'}"
        fresh = True
    elif url_scheme(config.store_url) == "memory":
        store_url, read_models_url, fresh = config.store_url, "sqlite://", True
    elif url_scheme(config.store_url) == "nats":
        # A JetStream store keeps no tables: the read models go to a SQLite file.
        config.workdir.mkdir(parents=True, exist_ok=True)
        read_models_url = f"sqlite:///{config.workdir / 'read-models.db'}"
        store_url, fresh = config.store_url, config.fresh
    else:
        store_url, read_models_url, fresh = config.store_url, config.store_url, config.fresh
    return store_url, config.read_models_url or read_models_url, fresh


def _store_options(url: str, name: str) -> dict[str, str]:
    """Where the demo's events go in the store of ``url``: tables prefixed with
    ``name`` in a database, a JetStream stream and subjects named ``name``."""
    scheme = url_scheme(url)
    if scheme == "memory":
        return {}
    if scheme == "nats":
        return {"stream": name, "prefix": name}
    return {"table_prefix": f"{name}_"}


def _open_store(url: str, name: str) -> EventStore:
    return open_event_store(url, **_store_options(url, name))


def _drop_store_tables(store: EventStore) -> None:
    """Empty the store for a fresh start: drop a SQL store's tables, purge a JetStream
    store's stream and buckets; an in-memory store starts empty."""
    if isinstance(store, SqlEventStore):
        store.tables.metadata.drop_all(store.engine)
        return
    purge = getattr(store, "purge", None)  # esrc_nats.NatsEventStore, an optional extra
    if callable(purge):
        purge()


@dataclass
class _Demo:
    """The scripted story; each step prints what it did and what the read side shows."""

    store: EventStore
    commands: Commands
    pipeline: Pipeline
    read_models: ReadModels
    result: DemoResult
    out: Out
    timeout: float
    step: int = 0

    def say(self, text: str) -> None:
        self.step += 1
        self.out(f"\n{self.step}. {text}")

    def settle(self) -> None:
        self.result.relayed += self.pipeline.settle(self.timeout)

    def investor_line(self, name: str) -> str:
        view = self.read_models.investor(self.result.investors[name])
        return (
            f"   {name}: available {format_money(view.available)}, reserved "
            f"{format_money(view.reserved)}, committed {format_money(view.committed)}"
        )

    def invoice(self, number: str) -> InvoiceView:
        return self.read_models.invoice(self.result.invoices[number])

    def invoice_line(self, number: str) -> str:
        view = self.invoice(number)
        financed = f" by {view.investor}" if view.investor else ""
        return f"   invoice {number}: {view.status}{financed}"

    def run(self) -> None:
        self.open_the_market()
        self.bid_reject_and_reverse()
        self.withdraw_and_delete()
        self.race_for_one_invoice()
        self.race_on_one_investor()
        self.deliver_twice()
        self.forget_an_investor()
        self.read_an_old_event()
        self.result.conflicts = self.commands.conflicts

    def open_the_market(self) -> None:
        c, r = self.commands, self.result
        self.say("Register issuers and investors, deposit funds, put invoices up for sale")
        for name in ("Acme Tools", "Borealis Foods"):
            r.issuers[name] = c.register_issuer(name)
        for name, deposit in (("Ada", "60000"), ("Ben", "40000"), ("Cleo", "50000")):
            r.investors[name] = c.register_investor(name)
            c.deposit(r.investors[name], deposit)
        acme, borealis = r.issuers["Acme Tools"], r.issuers["Borealis Foods"]
        for issuer, number, face, asking in (
            (acme, "ACME-1001", "12000", "11400"),
            (acme, "ACME-1002", "20000", "19000"),
            (borealis, "BORE-2001", "8000", "7600"),
            (borealis, "BORE-2002", "15000", "14250"),
            (borealis, "BORE-2003", "15000", "14250"),
            (borealis, "BORE-2004", "15000", "14250"),
            (borealis, "BORE-2005", "15000", "14250"),
        ):
            r.invoices[number] = c.put_invoice_for_sale(issuer, number, face, asking)
        self.settle()
        investors = self.read_models.investors(r.investors.values())
        invoices = self.read_models.invoices(r.invoices.values())
        self.out(f"   the read models show {len(investors)} investors and {len(invoices)} invoices")

    def bid_reject_and_reverse(self) -> None:
        c, r = self.commands, self.result
        ada, ben = r.investors["Ada"], r.investors["Ben"]
        self.say("Ada bids 11,500.00 on ACME-1001 (asking 11,400.00)")
        c.place_bid(ada, r.invoices["ACME-1001"], "11500")
        self.settle()
        self.out(self.invoice_line("ACME-1001"))
        self.out(self.investor_line("Ada"))

        self.say("Ben bids 7,200.00 on BORE-2001 (asking 7,600.00): rejected, funds released")
        c.place_bid(ben, r.invoices["BORE-2001"], "7200")
        self.settle()
        rejected = self.invoice("BORE-2001").rejected_bids
        self.out(f"{self.invoice_line('BORE-2001')}, {rejected} bid rejected")
        self.out(self.investor_line("Ben"))

        self.say(
            "ACME-1001's financing is reversed in one unit of work: the invoice re-opens "
            "and Ada's funds return, saved together"
        )
        c.reverse_financing(r.invoices["ACME-1001"], "the debtor disputes the invoice")
        invoice = c.invoices.find_by_id(r.invoices["ACME-1001"])
        investor = c.investors.find_by_id(ada)
        self.out(
            f"   one commit: invoice {invoice.status.value}, Ada's committed funds "
            f"{format_money(investor.committed)}"
        )
        self.settle()
        self.out(self.invoice_line("ACME-1001"))
        self.out(self.investor_line("Ada"))

        self.say("Ben bids 11,600.00 on the re-opened ACME-1001")
        c.place_bid(ben, r.invoices["ACME-1001"], "11600")
        self.settle()
        self.out(self.invoice_line("ACME-1001"))
        self.out(self.investor_line("Ben"))

    def withdraw_and_delete(self) -> None:
        c, r = self.commands, self.result
        self.say("Acme puts ACME-1003 up for sale, then withdraws it: once the withdrawal")
        self.out("   is relayed (the read models drop the invoice), its stream is deleted")
        invoice = c.put_invoice_for_sale(r.issuers["Acme Tools"], "ACME-1003", "5000", "4750")
        self.settle()
        c.withdraw_invoice(invoice, "sold to the debtor's bank instead")
        self.settle()
        c.delete_withdrawn_invoice(invoice)
        r.deleted += 2
        listed = len(self.read_models.invoices())
        gone = "gone" if not c.invoices.contains(invoice) else "still there"
        self.out(f"   the stream is {gone}; the read models list {listed} invoices")

    def forget_an_investor(self) -> None:
        c, r = self.commands, self.result
        self.say("Cleo asks to be forgotten: her key is deleted, so her name, encrypted in")
        self.out("   the events and snapshots, can never be read again (crypto-shredding)")
        c.forget_investor(r.investors["Cleo"])
        self.settle()
        view = self.read_models.investor(r.investors["Cleo"])
        self.out(
            f"   the read models show her as {view.name!r}, available "
            f"{format_money(view.available)}, committed {format_money(view.committed)}"
        )

    def read_an_old_event(self) -> None:
        c, r = self.commands, self.result
        self.say("An issuer carried over from an older release: its IssuerSuspended was")
        self.out("   stored at schema version 1 (field 'why'); it is read as version 2 (field")
        self.out("   'reason') through the registry's upcaster, the stored bytes untouched")
        issuer_id = uuid.uuid4()
        r.issuers["Old Mill Ltd"] = issuer_id
        registered = registry.to_raw(IssuerRegistered(issuer_id, "Old Mill Ltd"))
        suspended_v1 = RawEvent("IssuerSuspended", b'{"why": "late filings"}', schema_version=1)
        self.store.add_aggregate("Issuer", issuer_id, [registered, suspended_v1])
        self.settle()
        stored = self.store.events("Issuer", issuer_id)[1]
        issuer = c.issuers.find_by_id(issuer_id)
        self.out(
            f"   stored: version {stored.schema_version} {stored.data.decode()}; "
            f"loaded: {'active' if issuer.active else 'suspended'} "
            f"({issuer.suspended_because}), read as {registry.from_raw(stored)!r}"
        )

    def race_for_one_invoice(self) -> None:
        r = self.result
        invoice = r.invoices["ACME-1002"]
        self.say("Race: Ada and Ben bid on ACME-1002 at the same moment, from two threads")
        self.race([(r.investors["Ada"], invoice, "19500"), (r.investors["Ben"], invoice, "19000")])
        self.settle()
        self.out(self.invoice_line("ACME-1002"))
        self.out(self.investor_line("Ada"))
        self.out(self.investor_line("Ben"))

    def race_on_one_investor(self) -> None:
        r = self.result
        self.say("Race: Cleo bids 15,000.00 on four invoices at once, from four threads")
        before = self.commands.conflicts
        numbers = ["BORE-2002", "BORE-2003", "BORE-2004", "BORE-2005"]
        self.race([(r.investors["Cleo"], r.invoices[n], "15000") for n in numbers])
        self.out(
            "   the four threads loaded the same version of Cleo, so all but one save hit "
            f"a concurrency conflict; {self.commands.conflicts - before} retries in all"
        )
        self.settle()
        financed = [n for n in numbers if self.invoice(n).status == "financed"]
        self.out(f"   financed by Cleo: {', '.join(financed)}")
        self.out(self.investor_line("Cleo"))

    def deliver_twice(self) -> None:
        self.say("Hand every event to the consumers a second time, as a redelivery would")
        before = {c.name: c.log.duplicates for c in self.pipeline.consumers}
        replayed = self.pipeline.redeliver(f"{self.pipeline.relay_name}-redelivery")
        self.result.replayed = replayed
        dropped = ", ".join(
            f"{c.name} dropped {c.log.duplicates - before[c.name]}" for c in self.pipeline.consumers
        )
        self.out(f"   {replayed} events again: {dropped}; nothing changed")

    def race(self, bids: Sequence[tuple[uuid.UUID, uuid.UUID, str]]) -> None:
        """Place ``bids`` from one thread each; every thread loads its investor, then
        all wait for each other before saving, so they race on the same versions."""
        barrier = threading.Barrier(len(bids))
        outcomes = [""] * len(bids)

        def together(attempt: int) -> None:
            if attempt == 1:
                with contextlib.suppress(threading.BrokenBarrierError):
                    barrier.wait(timeout=10)

        def bid(index: int, investor: uuid.UUID, invoice: uuid.UUID, amount: str) -> None:
            try:
                self.commands.place_bid(investor, invoice, amount, on_attempt=together)
                outcomes[index] = "placed"
            except FinancingError as err:
                self.result.refused.append(str(err))
                outcomes[index] = f"refused, {type(err).__name__} ({str(err).rpartition(': ')[2]})"
                barrier.abort()

        threads = [
            threading.Thread(target=bid, args=(i, *b), name=f"bid-{i}") for i, b in enumerate(bids)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        names = {v: k for k, v in self.result.investors.items()}
        numbers = {v: k for k, v in self.result.invoices.items()}
        for (investor, invoice, amount), outcome in zip(bids, outcomes, strict=True):
            self.out(
                f"   {names[investor]} {format_money(Decimal(amount))} on {numbers[invoice]}: "
                f"{outcome}"
            )


def check_read_models(commands: Commands, read_models: ReadModels) -> list[str]:
    """The differences between the read models and the aggregates as loaded from the
    event store; empty when they agree."""
    problems: list[str] = []
    investors: list[InvestorView] = read_models.investors()
    for view in investors:
        investor = commands.investors.find_by_id(view.investor_id)
        want = (investor.name, investor.available, investor.reserved, investor.committed)
        got = (view.name, view.available, view.reserved, view.committed)
        if got != want:
            problems.append(f"investor {view.investor_id}: read model {got}, store {want}")
    invoices: list[InvoiceView] = read_models.invoices()
    for inv in invoices:
        invoice = commands.invoices.find_by_id(inv.invoice_id)
        accepted = invoice.financed_by
        want_invoice = (
            invoice.number,
            invoice.status.value,
            accepted.investor_id if accepted else None,
            accepted.amount if accepted else None,
        )
        got_invoice = (inv.number, inv.status, inv.investor_id, inv.financed_amount)
        if got_invoice != want_invoice:
            problems.append(
                f"invoice {inv.invoice_id}: read model {got_invoice}, store {want_invoice}"
            )
    return problems


def _report(demo: _Demo) -> None:
    store, commands, pipeline = demo.store, demo.commands, demo.pipeline
    read_models, result, out = demo.read_models, demo.result, demo.out
    names = {
        aggregate_id: name
        for ids in (result.issuers, result.investors, result.invoices)
        for name, aggregate_id in ids.items()
    }
    streams = [
        *(("Issuer", i) for i in result.issuers.values()),
        *(("Investor", i) for i in result.investors.values()),
        *(("Invoice", i) for i in result.invoices.values()),
    ]
    rows: list[tuple[object, ...]] = []
    for aggregate_type, aggregate_id in streams:
        label = f"{aggregate_type} {names[aggregate_id]}"
        for version, raw in enumerate(store.events(aggregate_type, aggregate_id), start=1):
            rows.append(
                (
                    label if version == 1 else "",
                    version,
                    raw.name,
                    _details(raw, aggregate_id, names),
                    _why(raw, names),
                )
            )
        snapshot = store.latest_snapshot(aggregate_type, aggregate_id)
        if snapshot is not None:
            rows.append(("", "", f"(snapshot at version {snapshot.version})", "", ""))
    out("")
    out(
        render_table(
            ["stream", "v", "event", "details", "command (caused by)"],
            rows,
            right=[1],
            title=f"Event store: {len(streams)} streams",
        )
    )

    out("")
    consumer_rows = [
        (c.name, c.log.applied + c.log.duplicates, c.log.applied, c.log.duplicates)
        for c in pipeline.consumers
    ]
    out(
        f"Relay {pipeline.relay_name!r} -> {pipeline.publisher_url}: published "
        f"{result.relayed} events in {pipeline.batches} batches, {pipeline.unpublished()} "
        f"left unpublished"
    )
    out(
        render_table(
            ["consumer", "received", "applied", "duplicates dropped"],
            consumer_rows,
            right=[1, 2, 3],
        )
    )

    out("")
    out(
        render_table(
            ["investor", "available", "reserved", "committed", "total"],
            [
                (
                    v.name,
                    format_money(v.available),
                    format_money(v.reserved),
                    format_money(v.committed),
                    format_money(v.available + v.reserved + v.committed),
                )
                for v in read_models.investors(result.investors.values())
            ],
            right=[1, 2, 3, 4],
            title="Read model: investors",
        )
    )
    out("")
    out(
        render_table(
            [
                "invoice",
                "issuer",
                "face value",
                "asking",
                "status",
                "financed by",
                "amount",
                "rejected",
                "reversals",
            ],
            [
                (
                    v.number,
                    v.issuer,
                    format_money(v.face_value),
                    format_money(v.asking_price),
                    v.status,
                    v.investor,
                    format_money(v.financed_amount) if v.financed_amount is not None else None,
                    v.rejected_bids,
                    v.reversals,
                )
                for v in read_models.invoices(result.invoices.values())
            ],
            right=[2, 3, 6, 7, 8],
            title="Read model: invoices",
        )
    )
    result.mismatches = check_read_models(commands, read_models)
    out("")
    if result.mismatches:
        out("Read models DIFFER from the event store:")
        for problem in result.mismatches:
            out(f"  {problem}")
    else:
        out(
            f"Read models match the aggregates loaded from the event store (all "
            f"{len(read_models.investors())} investors and {len(read_models.invoices())} "
            f"invoices checked); {result.conflicts} concurrency conflicts were retried."
        )


def _details(raw: RawEvent, stream_id: uuid.UUID, names: dict[uuid.UUID, str]) -> str:
    """The event's fields, with ids of known aggregates shown by name."""
    event = registry.from_raw(raw)
    parts = []
    for f in dataclasses.fields(event):
        value = getattr(event, f.name)
        if value == stream_id:
            continue
        if f.name in ("investor_id", "issuer_id", "invoice_id") and value in names:
            parts.append(f"{f.name.removesuffix('_id')}={names[value]}")
        elif isinstance(value, uuid.UUID):
            parts.append(f"{f.name}={str(value)[:8]}")
        elif isinstance(value, Decimal):
            parts.append(f"{f.name}={format_money(value)}")
        else:
            parts.append(f"{f.name}={value}")
    return " ".join(parts)


def _why(raw: RawEvent, names: dict[uuid.UUID, str]) -> str:
    """The command that saved the event and, for a step of the choreography, the event
    that triggered it (``Investor Ada v3``)."""
    command = raw.metadata.get("command", "")
    cause = raw.metadata.get("causation_id")
    if not cause:
        return command
    aggregate_type, _, rest = cause.partition("/")
    encoded, _, version = rest.rpartition("/")
    with contextlib.suppress(ValueError):
        aggregate_id = decode_id(encoded)
        if isinstance(aggregate_id, uuid.UUID) and aggregate_id in names:
            cause = f"{aggregate_type} {names[aggregate_id]} v{version}"
    return f"{command} ({cause})"
