"""The streaming-memory figure: how much memory loading one very long stream through the
:class:`~esrc_core.Repository` takes.

The stream (``--big-stream`` events, 1,000,000 in a full run) is written through the
store in writes of a few thousand events. Then a fresh process (``python -m
bench.stream``, reading its request as JSON on stdin) opens the store, loads a small
aggregate once (connections, statement caches), takes its peak resident set size as
the baseline, loads the long stream with ``find_by_id``, and reports how far the peak
rose above the baseline. On Linux the peak (``VmHWM``) is first reset to the current
resident set size (``/proc/self/clear_refs``), so that what the process allocated and
freed before (imports, the first load) does not hide the load's own peak; elsewhere the
baseline is ``ru_maxrss`` so far. Whatever the loading path holds at once (every event, or one
page of them) shows in that figure. There is no raw side: the target is absolute.
"""

from __future__ import annotations

import gc
import json
import resource
import subprocess
import sys
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

from bench.model import AGGREGATE_TYPE, Basket, raw_history, registry
from bench.results import Figure
from bench.workloads import Context, target_for, write_stream
from esrc_core import Repository, open_event_store

__all__ = ["KEY", "main", "stream_figures"]

KEY = "repository_load_big_stream_memory"
"""The figure's key in the results."""

_CHUNK = 2_000
"""Events per write when writing the long stream (the store's statement stays well
under every database's parameter limit)."""
_WARM_EVENTS = 10
"""Events of the aggregate the fresh process loads before taking its baseline."""
_ROOT = Path(__file__).resolve().parents[1]


_STATUS = Path("/proc/self/status")


def _status_kib(field: str) -> int | None:
    """A ``/proc/self/status`` field in KiB (``VmRSS``, ``VmHWM``), or ``None``."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _reset_peak() -> str:
    """Reset the process's peak resident set size to the current one where the system
    allows it; return how the peak is measured (``VmHWM`` or ``ru_maxrss``)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return "ru_maxrss"
    return "VmHWM" if _status_kib("VmHWM") is not None else "ru_maxrss"


def _peak_kib(method: str) -> int:
    """The process's peak resident set size, in KiB."""
    if method == "VmHWM":
        peak = _status_kib("VmHWM")
        if peak is not None:
            return peak
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def main() -> int:
    """The fresh process's side: read the request from stdin, measure, print the
    result as JSON on stdout. Returns the exit status (1 when the load went wrong)."""
    request: dict[str, Any] = json.load(sys.stdin)
    store = open_event_store(request["url"], **request["store_options"])
    try:
        repository = Repository(store, Basket, registry, aggregate_type=AGGREGATE_TYPE)
        repository.find_by_id(uuid.UUID(request["warm"]))
        gc.collect()
        method = _reset_peak()
        baseline = _peak_kib(method)
        began = time.perf_counter()
        basket = repository.find_by_id(uuid.UUID(request["aggregate"]))
        seconds = time.perf_counter() - began
        peak = _peak_kib(method)
        version = basket.version
        del basket
    finally:
        store.close()
    json.dump(
        {
            "baseline_kib": baseline,
            "peak_kib": peak,
            "method": method,
            "seconds": seconds,
            "version": version,
        },
        sys.stdout,
    )
    return 0 if version == request["events"] else 1


def _measure_once(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.stream"],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        cwd=_ROOT,
        timeout=3_600,
        check=False,
    )
    if done.returncode != 0:
        detail = done.stderr.strip().splitlines()[-1:] or [done.stdout.strip()]
        raise RuntimeError(
            f"the loading process for {request['events']:,} events exited with "
            f"{done.returncode}: {ctx.backend.scrub(detail[0] if detail else '')}"
        )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def stream_figures(ctx: Context) -> list[Figure]:
    """The streaming-memory figure on the context's backend: nothing when
    ``--big-stream`` is 0 or the backend is the in-memory store (which lives in one
    process)."""
    events = ctx.settings.big_stream
    if events == 0 or ctx.backend.raw is None:
        return []
    figure = Figure(
        key=KEY,
        title=f"load {events:,} events, peak RSS above baseline",
        unit="MiB",
        higher_is_better=False,
        work={"events": events, "loads": 1},
        target=target_for(ctx, KEY),
        level="repository",
    )
    figure.raw_skipped = "the target is absolute (memory above the process's baseline)"
    try:
        ctx.backend.reset()
        store = ctx.backend.open_store()
        try:
            aggregate, warm = uuid.uuid4(), uuid.uuid4()
            write_stream(store, None, warm, raw_history(warm, _WARM_EVENTS))
            ctx.say(f"writing a stream of {events:,} events")
            metadata = {"correlation_id": str(uuid.uuid4()), "user": "bench"}
            for first in range(1, events + 1, _CHUNK):
                count = min(_CHUNK, events - first + 1)
                chunk = raw_history(aggregate, count, metadata, first=first)
                write_stream(store, None, aggregate, chunk, first_version=first, chunk=_CHUNK)
        finally:
            store.close()
        request = {
            "url": ctx.backend.url,
            "store_options": ctx.backend.store_options,
            "aggregate": str(aggregate),
            "warm": str(warm),
            "events": events,
        }
        for run in range(ctx.settings.repeat):
            result = _measure_once(ctx, request)
            above = (result["peak_kib"] - result["baseline_kib"]) / 1024
            figure.esrc_runs.append(above)
            figure.notes.append(
                f"run {run + 1}: baseline {result['baseline_kib'] / 1024:,.0f} MiB, peak "
                f"{result['peak_kib'] / 1024:,.0f} MiB ({result['method']}), load "
                f"{result['seconds']:,.1f} s"
            )
            ctx.say(f"{figure.title}: run {run + 1}/{ctx.settings.repeat}: {above:,.1f} MiB")
    except Exception as err:
        figure.error = ctx.backend.scrub(f"{type(err).__name__}: {err}")
        ctx.say(f"{figure.title}: failed: {figure.error}")
        print(ctx.backend.scrub(traceback.format_exc()), file=sys.stderr, end="")
    return [figure]


if __name__ == "__main__":
    sys.exit(main())
