"""Per-RetoolDeployment queueing: reconciles never overlap, triggers coalesce, wake-ups when due.

Any number of triggers that arrive while a reconcile of the same object runs lead to exactly one
more run, which reads the freshest state. After each run the reconcile says when a time-based
look is due (a wait running out, the periodic resync); `wait_until_due` sleeps until then.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import time
from collections.abc import Awaitable, Callable

from retool_operator.runtime.ports import Key


@dataclasses.dataclass
class _Slot:
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    requested: int = 0
    started: int = 0
    # When (monotonic) a time-based look is due; set after every run, which also sets
    # `rescheduled` so that a waiter takes the new time.
    due: float = math.inf
    rescheduled: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)


class KeyQueue:
    """Serialises and coalesces runs per key, and keeps each key's due time."""

    def __init__(self) -> None:
        self._slots: dict[Key, _Slot] = {}

    def forget(self, key: Key) -> None:
        """The object is gone: drop its slot."""
        self._slots.pop(key, None)

    def __contains__(self, key: object) -> bool:
        return key in self._slots

    async def run(self, key: Key, work: Callable[[], Awaitable[None]]) -> bool:
        """Run WORK for KEY unless a run that began after this call has covered it.

        Returns whether this call ran WORK. Whatever WORK does, it sets the next due time with
        `schedule` (until then, none is due).
        """
        slot = self._slots.setdefault(key, _Slot())
        slot.requested += 1
        ticket = slot.requested
        async with slot.lock:
            if slot.started >= ticket:
                return False  # a run that started after our request has covered it
            slot.started = slot.requested
            slot.due = math.inf
            await work()
            return True

    def schedule(self, key: Key, seconds: float) -> None:
        """A time-based look at KEY is due in SECONDS (unless KEY was forgotten meanwhile)."""
        slot = self._slots.get(key)
        if slot is None:
            return
        slot.due = time.monotonic() + seconds
        slot.rescheduled.set()

    async def wait_until_due(self, key: Key) -> None:
        """Return once a time-based look at KEY is due.

        Costs nothing while waiting: one timer in the event loop, moved whenever a run sets a
        new due time (instead of every object polling on an interval).
        """
        slot = self._slots.setdefault(key, _Slot())
        while (delay := slot.due - time.monotonic()) > 0:
            slot.rescheduled.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    slot.rescheduled.wait(), None if math.isinf(delay) else delay
                )
