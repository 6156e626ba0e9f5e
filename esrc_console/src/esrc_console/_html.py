"""The console's HTML: one function per page, every value escaped on its way in.

Pages work without JavaScript; ``static/console.js`` only redraws the relays page's
charts and table from ``/api/relays``.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import urllib.parse
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from esrc_core.events import EventRegistry, RawSnapshot
from esrc_core.ids import AggregateId, encode_id
from esrc_core.inspection import RecordedEvent, RelayProgress, StreamInfo

from esrc_console._reading import Chain, RelaySample, StreamsPage, decode_payload, per_minute

__all__ = [
    "error_page",
    "event_page",
    "relays_page",
    "show_id",
    "stream_page_html",
    "stream_path",
    "streams_page",
    "when",
]


def h(value: object) -> str:
    """``value`` as text, escaped for HTML content and attribute values."""
    return html.escape(str(value), quote=True)


def show_id(aggregate_id: AggregateId) -> str:
    """An aggregate id as people read it."""
    return aggregate_id if isinstance(aggregate_id, str) else str(aggregate_id)


def id_kind(aggregate_id: AggregateId) -> str:
    """The id's type: uuid, int or str."""
    if isinstance(aggregate_id, uuid.UUID):
        return "uuid"
    return "int" if isinstance(aggregate_id, int) else "str"


def when(moment: dt.datetime | None) -> str:
    """A time in UTC to the millisecond, or an em dash."""
    if moment is None:
        return "\u2014"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def stream_path(aggregate_type: str, aggregate_id: AggregateId) -> str:
    """The path of a stream's page: the type and the URL-quoted encoded id."""
    quote = urllib.parse.quote
    return f"/streams/{quote(aggregate_type, safe='')}/{quote(encode_id(aggregate_id), safe='')}"


def _query(base: str, params: Mapping[str, str | None]) -> str:
    kept = {k: v for k, v in params.items() if v}
    return f"{base}?{urllib.parse.urlencode(kept)}" if kept else base


_STYLE = """
body{font-family:system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:.6rem 1.2rem;display:flex;gap:1.5rem;
align-items:baseline}
header a{color:#cfe0ff;text-decoration:none;font-weight:600}
header .store{margin-left:auto;color:#aab;font-size:.85rem}
main{padding:1rem 1.2rem}
h1{font-size:1.3rem;margin:.2rem 0 .8rem}
h2{font-size:1.05rem;margin:1.2rem 0 .4rem}
table{border-collapse:collapse;background:#fff;width:100%;font-size:.88rem}
th,td{border-bottom:1px solid #e3e6eb;padding:.3rem .5rem;text-align:left;
vertical-align:top}
th{background:#eef0f4}
td.version,td.position,td.pending,td.number{text-align:right;
font-variant-numeric:tabular-nums}
td.payload,td.metadata,dd pre,td pre{font-family:ui-monospace,monospace;font-size:.8rem;
white-space:pre-wrap;word-break:break-all;margin:0}
form{margin:.4rem 0 .8rem;display:flex;gap:.5rem}
.muted{color:#667}
a#next-page{display:inline-block;margin:.8rem 0}
dl#event{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;
background:#fff;padding:.6rem}
dt{font-weight:600}
dd{margin:0}
svg{background:#fff;border:1px solid #e3e6eb;width:100%;max-width:900px;height:auto}
.legend span{margin-right:1rem;font-size:.85rem}
"""

_COLORS = ("#2f6fde", "#d9480f", "#2b8a3e", "#862e9c", "#e67700", "#0b7285", "#c2255c")


def _layout(title: str, body: str, *, store_label: str, script: bool = False) -> str:
    js = '<script src="/static/console.js" defer></script>' if script else ""
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{h(title)} \u2014 esrc console</title><style>{_STYLE}</style>{js}</head>"
        '<body><header><a href="/streams">Streams</a><a href="/relays">Relays</a>'
        f'<span class="store">{h(store_label)}</span></header>'
        f"<main>{body}</main></body></html>\n"
    )


def error_page(status: int, message: str, *, store_label: str) -> str:
    """A page saying what went wrong."""
    body = f'<h1>{h(status)}</h1><p class="error">{h(message)}</p>'
    return _layout(f"Error {status}", body, store_label=store_label)


def streams_page(
    page: StreamsPage,
    types: Sequence[str],
    aggregate_type: str | None,
    search: str | None,
    *,
    store_label: str,
) -> str:
    """The streams list with its filter form, count and next-page link."""
    options = ['<option value="">all types</option>']
    for name in types:
        chosen = " selected" if name == aggregate_type else ""
        options.append(f'<option value="{h(name)}"{chosen}>{h(name)}</option>')
    form = (
        '<form id="stream-filter" method="get" action="/streams">'
        f'<select name="type">{"".join(options)}</select>'
        f'<input name="q" type="search" placeholder="id contains" value="{h(search or "")}">'
        '<button type="submit">Filter</button></form>'
    )
    rows = []
    for info in page.streams:
        rows.append(
            '<tr class="stream">'
            f'<td class="type">{h(info.aggregate_type)}</td>'
            f'<td class="id"><a class="stream-link" '
            f'href="{h(stream_path(info.aggregate_type, info.aggregate_id))}">'
            f"{h(show_id(info.aggregate_id))}</a> "
            f'<span class="muted">{id_kind(info.aggregate_id)}</span></td>'
            f'<td class="version">{info.version:,}</td>'
            f'<td class="last-event">{h(when(info.last_recorded_at))}</td></tr>'
        )
    of = " of type " + aggregate_type if aggregate_type else ""
    matching = f" with an id containing \u201c{search}\u201d" if search else ""
    noun = "stream" if page.total == 1 else "streams"
    count = f'<p id="stream-count">{page.total:,} {noun}{h(of)}{h(matching)}</p>'
    table = (
        '<table id="streams"><thead><tr><th>type</th><th>id</th><th>version</th>'
        f"<th>last event</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    more = ""
    if page.next_cursor is not None:
        href = _query("/streams", {"type": aggregate_type, "q": search, "after": page.next_cursor})
        more = f'<a id="next-page" href="{h(href)}">Next {len(page.streams)} streams \u2192</a>'
    body = f"<h1>Streams</h1>{form}{count}{table}{more}"
    return _layout("Streams", body, store_label=store_label)


def _metadata(metadata: Mapping[str, str]) -> str:
    if not metadata:
        return '<span class="muted">\u2014</span>'
    return "<br>".join(f"{h(k)}={h(v)}" for k, v in metadata.items())


def _payload(registry: EventRegistry | None, event: RecordedEvent) -> str:
    shown = decode_payload(registry, event)
    if shown is None:
        data = event.event.data
        return f'<pre class="raw">{h(repr(data[:500]))}</pre>' + (
            f' <span class="muted">({len(data):,} bytes)</span>' if len(data) > 500 else ""
        )
    kind, value = shown
    if kind == "decoded":
        return f'<pre class="decoded">{h(value)}</pre>'
    text = json.dumps(value, ensure_ascii=False, indent=1)
    return f'<pre class="json">{h(text)}</pre>'


def stream_page_html(
    aggregate_type: str,
    aggregate_id: AggregateId,
    events: Sequence[RecordedEvent],
    *,
    snapshot: RawSnapshot | None,
    registry: EventRegistry | None,
    next_href: str | None,
    store_label: str,
) -> str:
    """One stream: its events (one page) and its latest snapshot."""
    rows = []
    for e in events:
        rows.append(
            '<tr class="event">'
            f'<td class="version"><a class="event-link" href="/events/{e.position}">'
            f"{e.version}</a></td>"
            f'<td class="name">{h(e.event.name)}</td>'
            f'<td class="recorded-at">{h(when(e.recorded_at))}</td>'
            f'<td class="metadata">{_metadata(e.event.metadata)}</td>'
            f'<td class="payload">{_payload(registry, e)}</td></tr>'
        )
    table = (
        '<table id="events"><thead><tr><th>version</th><th>name</th><th>recorded</th>'
        f"<th>metadata</th><th>payload</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    more = f'<a id="next-page" href="{h(next_href)}">Next events \u2192</a>' if next_href else ""
    if snapshot is None:
        snap = "<p>No snapshot.</p>"
    else:
        try:
            data = json.dumps(json.loads(snapshot.data), ensure_ascii=False, indent=1)
        except (ValueError, RecursionError):
            data = repr(snapshot.data[:500])
        snap = (
            f"<p>Latest snapshot at version {snapshot.version:,} "
            f"({len(snapshot.data):,} bytes)</p><pre>{h(data)}</pre>"
        )
    title = f"{aggregate_type} {show_id(aggregate_id)}"
    body = (
        f"<h1>{h(aggregate_type)} {h(show_id(aggregate_id))} "
        f'<span class="muted">({id_kind(aggregate_id)} id)</span></h1>'
        f"{table}{more}"
        f'<section id="snapshots"><h2>Snapshots</h2>{snap}</section>'
    )
    return _layout(title, body, store_label=store_label)


def _event_item(e: RecordedEvent, *, current: bool = False) -> str:
    mark = ' class="current"' if current else ""
    return (
        f"<li{mark}>"
        f'<a class="event-link" href="/events/{e.position}">{h(e.event.name)} '
        f"#{e.position}</a> in "
        f'<a class="stream-link" href="{h(stream_path(e.aggregate_type, e.aggregate_id))}">'
        f"{h(e.aggregate_type)} {h(show_id(e.aggregate_id))}</a> v{e.version}</li>"
    )


def event_page(
    event: RecordedEvent, chain: Chain, registry: EventRegistry | None, *, store_label: str
) -> str:
    """One event, its fields and its correlation."""
    fields = [
        ("position", h(event.position)),
        (
            "stream",
            f'<a class="stream-link" href="'
            f'{h(stream_path(event.aggregate_type, event.aggregate_id))}">'
            f"{h(event.aggregate_type)} {h(show_id(event.aggregate_id))}</a>",
        ),
        ("version", h(event.version)),
        ("name", h(event.event.name)),
        ("schema version", h(event.event.schema_version)),
        ("recorded", h(when(event.recorded_at))),
        ("metadata", _metadata(event.event.metadata)),
        ("payload", _payload(registry, event)),
    ]
    dl = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in fields)
    if not chain.has_metadata:
        correlation = (
            "<p>This event has no correlation metadata (correlation_id, causation_id).</p>"
        )
    else:
        parts = []
        if chain.correlation_id:
            parts.append(f"<p>correlation id <code>{h(chain.correlation_id)}</code></p>")
        if chain.missing:
            parts.append(
                f'<p class="muted">The cause <code>{h(chain.missing)}</code> is not in the '
                "store.</p>"
            )
        items = "".join(_event_item(e, current=e.position == event.position) for e in chain.causes)
        parts.append(f'<h2>Causation chain</h2><ol id="causation-chain">{items}</ol>')
        caused = "".join(_event_item(e) for e in chain.caused)
        parts.append(f'<h2>Caused events</h2><ul id="caused-events">{caused}</ul>')
        if not chain.caused:
            parts.append('<p class="muted">No event caused by this one was found.</p>')
        correlation = "".join(parts)
    body = (
        f'<h1>Event #{event.position}: {h(event.event.name)}</h1><dl id="event">{dl}</dl>'
        f'<section id="correlation"><h2>Correlation</h2>{correlation}</section>'
    )
    return _layout(f"Event {event.position}", body, store_label=store_label)


def _polyline(points: Iterable[tuple[float, float]], color: str) -> str:
    text = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    return f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{text}"/>'


def chart_svg(
    chart_id: str, series: Mapping[str, Sequence[tuple[float, float]]], samples: int, unit: str
) -> str:
    """An SVG line chart of ``series`` (name to (time, value) pairs); the same drawing
    ``console.js`` redraws."""
    width, height, pad = 900.0, 220.0, 36.0
    xs = [x for points in series.values() for x, _ in points]
    ys = [y for points in series.values() for _, y in points]
    x0, x1 = (min(xs), max(xs)) if xs else (0.0, 1.0)
    top = max(ys, default=0.0) or 1.0
    span = (x1 - x0) or 1.0
    lines = []
    legend = []
    for n, (name, points) in enumerate(series.items()):
        color = _COLORS[n % len(_COLORS)]
        scaled = [
            (pad + (x - x0) / span * (width - 2 * pad), height - pad - y / top * (height - 2 * pad))
            for x, y in points
        ]
        lines.append(_polyline(scaled, color))
        legend.append(f'<tspan fill="{color}">\u25a0 {h(name)} </tspan>')
    return (
        f'<svg id="{chart_id}" data-samples="{samples}" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'role="img" xmlns="http://www.w3.org/2000/svg">'
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" '
        'stroke="#99a"/>'
        f'<text x="4" y="14" font-size="12">{h(f"{top:,.0f}")} {h(unit)}</text>'
        f'<text x="{pad}" y="{height - 8}" font-size="12">{"".join(legend)}</text>'
        f'<g class="lines">{"".join(lines)}</g></svg>'
    )


def lag_series(samples: Sequence[RelaySample]) -> dict[str, list[tuple[float, float]]]:
    """Each relay's pending events over time."""
    series: dict[str, list[tuple[float, float]]] = {}
    for sample in samples:
        for name, (pending, _) in sample.relays.items():
            series.setdefault(name, []).append((sample.at, float(pending)))
    return series


def relays_page(
    relays: Sequence[RelayProgress],
    samples: Sequence[RelaySample],
    holders: Mapping[str, str | None],
    refresh_seconds: float,
    *,
    store_label: str,
) -> str:
    """The relays table and the two charts, refreshed by ``console.js``."""
    now = dt.datetime.now(dt.UTC)
    rows = []
    for relay in relays:
        lag = relay.lag_seconds(now)
        rows.append(
            '<tr class="relay">'
            f'<td class="name">{h(relay.name)}</td>'
            f'<td class="position">{relay.published:,}</td>'
            f'<td class="pending">{relay.pending:,}</td>'
            f'<td class="oldest-pending-age">{h(_age(lag))}</td>'
            f'<td class="lock-holder">{h(holder_text(holders, relay.name))}</td></tr>'
        )
    table = (
        '<table id="relays"><thead><tr><th>relay</th><th>published</th><th>pending</th>'
        "<th>oldest pending</th><th>lock holder</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )
    if not relays:
        table += "<p>No relay has marked progress in this store.</p>"
    seq = samples[-1].seq if samples else 0
    rates = {"events": per_minute(samples)}
    body = (
        f'<h1>Relays</h1><div id="relays-view" data-refresh="{refresh_seconds}">{table}'
        "<h2>Lag (pending events)</h2>"
        f"{chart_svg('lag-chart', lag_series(samples), seq, 'pending')}"
        f"<h2>Events appended per minute</h2>"
        f"{chart_svg('rate-chart', rates, seq, 'events/min')}</div>"
    )
    return _layout("Relays", body, store_label=store_label, script=True)


def holder_text(holders: Mapping[str, str | None], name: str) -> str:
    """Who holds relay ``name``'s lock: the holder, ``free``, or an em dash when the
    store cannot tell."""
    if name not in holders:
        return "\u2014"
    return holders[name] or "free"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "\u2014"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def relay_document(
    relays: Sequence[RelayProgress],
    samples: Sequence[RelaySample],
    holders: Mapping[str, str | None],
) -> dict[str, Any]:
    """``/api/relays``: the relays now, with their lag and age text, and the history."""
    now = dt.datetime.now(dt.UTC)
    return {
        "relays": [
            {
                "name": r.name,
                "position": r.published,
                "published": r.published,
                "pending": r.pending,
                "oldest_pending_at": r.oldest_pending_at.isoformat()
                if r.oldest_pending_at
                else None,
                "lag_seconds": r.lag_seconds(now),
                "oldest_pending_age": _age(r.lag_seconds(now)),
                "lock_holder": holder_text(holders, r.name),
            }
            for r in relays
        ],
        "samples": [s.document() for s in samples],
        "seq": samples[-1].seq if samples else 0,
        "rates": [
            {"at": dt.datetime.fromtimestamp(at, dt.UTC).isoformat(), "per_minute": rate}
            for at, rate in per_minute(samples)
        ],
    }


def stream_info_document(info: StreamInfo) -> dict[str, Any]:
    """A stream as JSON."""
    return {
        "aggregate_type": info.aggregate_type,
        "aggregate_id": json_id(info.aggregate_id),
        "encoded_id": encode_id(info.aggregate_id),
        "id_type": id_kind(info.aggregate_id),
        "version": info.version,
        "last_recorded_at": info.last_recorded_at.isoformat() if info.last_recorded_at else None,
        "href": stream_path(info.aggregate_type, info.aggregate_id),
    }


def json_id(aggregate_id: AggregateId) -> str | int:
    """An id as JSON: a UUID as text, an int or str as it is."""
    return str(aggregate_id) if isinstance(aggregate_id, uuid.UUID) else aggregate_id


def event_document(event: RecordedEvent, registry: EventRegistry | None) -> dict[str, Any]:
    """An event as JSON; ``payload`` is the decoded value's text or the JSON data."""
    shown = decode_payload(registry, event)
    return {
        "position": event.position,
        "aggregate_type": event.aggregate_type,
        "aggregate_id": json_id(event.aggregate_id),
        "encoded_id": encode_id(event.aggregate_id),
        "version": event.version,
        "name": event.event.name,
        "schema_version": event.event.schema_version,
        "recorded_at": event.recorded_at.isoformat() if event.recorded_at else None,
        "metadata": dict(event.event.metadata),
        "payload_kind": shown[0] if shown else "bytes",
        "payload": shown[1] if shown else None,
        "data_hex": None if shown else event.event.data.hex(),
        "href": f"/events/{event.position}",
    }
