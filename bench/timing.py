"""Timing work done by one or several threads that start together."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["Job", "timed_threads"]

Job = tuple[Callable[[], None], Callable[[], None]]
"""What a thread times: (the work, a clean-up that runs after the clock stopped)."""


def timed_threads(count: int, prepare: Callable[[int], Job]) -> float:
    """Run ``count`` threads and return the wall-clock seconds of their timed part.

    Thread ``i`` first calls ``prepare(i)`` (connect, warm up, build its data: not
    timed) and gets a :data:`Job` back. When every thread is prepared, the clock starts
    and all run their work at once; the clock stops when the last one finishes its work
    (clean-ups are not timed). The first exception any thread raised is raised here, after
    all threads have ended.
    """
    if count < 1:
        raise ValueError(f"need at least one thread, got {count}")
    start = threading.Barrier(count)
    errors: list[BaseException] = []
    started: list[float] = []
    finished: list[float] = []
    lock = threading.Lock()

    def fail(err: BaseException) -> None:
        with lock:
            errors.append(err)

    def worker(index: int) -> None:
        try:
            work, clean_up = prepare(index)
        except BaseException as err:
            fail(err)
            start.abort()
            return
        try:
            start.wait()
            began = time.perf_counter()
            work()
            done = time.perf_counter()
            with lock:
                started.append(began)
                finished.append(done)
        except threading.BrokenBarrierError:
            pass
        except BaseException as err:
            fail(err)
        finally:
            try:
                clean_up()
            except BaseException as err:
                fail(err)

    threads = [
        threading.Thread(target=worker, args=(i,), name=f"bench-{i}", daemon=True)
        for i in range(count)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return max(finished) - min(started)
