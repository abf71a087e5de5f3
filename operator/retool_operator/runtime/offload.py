"""The thread pool that blocking calls (the Kubernetes client, psycopg) run on.

It is also the progress heartbeat: every call under way is known with its start, and each
one is bounded (API deadlines, the probe's), so a call much older than its bound means a
thread that no longer makes progress; `/healthz` then fails and Kubernetes restarts us.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

T = TypeVar("T")


class Offload:
    """Runs a blocking call on a bounded pool and awaits it; `close` ends the pool."""

    def __init__(self, workers: int) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reconcile")
        self._tickets = itertools.count()
        self._under_way: dict[int, float] = {}  # ticket -> when it was submitted (monotonic)
        self._closed = False

    async def __call__(self, fn: Callable[..., T], *args: Any) -> T:
        """FN(*ARGS) on the pool."""
        ticket = next(self._tickets)
        self._under_way[ticket] = time.monotonic()
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._executor, partial(fn, *args)
            )
        finally:
            del self._under_way[ticket]

    def oldest_call_age(self) -> float:
        """Seconds the oldest call under way (or waiting for a thread) has taken; 0 if none."""
        started = min(self._under_way.values(), default=None)
        return 0.0 if started is None else time.monotonic() - started

    @property
    def closed(self) -> bool:
        """Whether `close` was called: the process is stopping."""
        return self._closed

    def close(self) -> None:
        """Wait for the calls under way, then stop the threads."""
        self._closed = True
        self._executor.shutdown(wait=True)
