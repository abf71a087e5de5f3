"""The thread pool that blocking calls (the Kubernetes client, psycopg) run on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

T = TypeVar("T")


class Offload:
    """Runs a blocking call on a bounded pool and awaits it; `close` ends the pool."""

    def __init__(self, workers: int) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reconcile")

    async def __call__(self, fn: Callable[..., T], *args: Any) -> T:
        """FN(*ARGS) on the pool."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, partial(fn, *args))

    def close(self) -> None:
        """Wait for the calls under way, then stop the threads."""
        self._executor.shutdown(wait=True)
