"""What to do about a failed call: its class, the back-off, the condition a refusal shows.

Pure policy; the runtime maps exceptions to an HTTP status (None: no answer) at the edge.
- conflict (409): the view was stale: re-read and decide again, at once.
- transient (no answer, 408, 429, 5xx): the API server or the path to it is sick: back off
  with jitter (many objects failing together must not retry in lock-step).
- refused (any other 4xx: a webhook, a quota, a policy): it will not pass by itself: a
  condition names the object and the server's message (`Stalled`: a person must act), and
  the write is retried with back-off in case the person already did.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from enum import StrEnum

from retool_operator.core import conditions as cond
from retool_operator.core.statemachine import Decision

BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 300.0
WRITE_REFUSED = "WriteRefused"


class ErrorClass(StrEnum):
    """How a failed call is handled."""

    CONFLICT = "conflict"
    TRANSIENT = "transient"
    REFUSED = "refused"


def classify(status: int | None) -> ErrorClass:
    """The class of a call that failed with HTTP STATUS (None: no answer in time)."""
    if status == 409:
        return ErrorClass.CONFLICT
    if status is None or status in {408, 429} or status >= 500:
        return ErrorClass.TRANSIENT
    return ErrorClass.REFUSED


def backoff(attempt: int, jitter: float) -> float:
    """Seconds to wait before retry ATTEMPT (1, 2, ...): doubling, capped, with JITTER in
    [0, 1) spreading it over its upper half (never zero, never above the cap)."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2.0 ** max(0, attempt - 1))
    return ceiling * (0.5 + 0.5 * jitter)


@dataclasses.dataclass(frozen=True)
class Refusal:
    """A write the API server refused: which object, with what status and message."""

    kind: str
    name: str
    status: int
    message: str

    def describe(self) -> str:
        """One line for the condition and the Event: the object and the server's words."""
        return f"{self.kind} {self.name}: HTTP {self.status}: {self.message}"[:1024]


def with_refusal(
    decision: Decision, refusal: Refusal, *, generation: int | None, now: datetime
) -> Decision:
    """DECISION's status, stalled on REFUSAL (unless it already waits for a person)."""
    status = decision.status
    recorded = cond.find(status.conditions, cond.STALLED)
    if recorded is not None and recorded.status == "True" and recorded.reason != WRITE_REFUSED:
        return decision
    states = [
        cond.true(cond.STALLED, WRITE_REFUSED, refusal.describe()),
        cond.false(cond.RECONCILING, WRITE_REFUSED, "waiting for a person to act"),
    ]
    fresh = cond.apply(status.conditions, states, generation=generation, now=now)
    replaced = {c.type: c for c in fresh if c.type in {cond.STALLED, cond.RECONCILING}}
    kept = [replaced.pop(c.type, c) for c in status.conditions]
    conditions = kept + list(replaced.values())
    updated = status.model_copy(update={"conditions": conditions})
    return dataclasses.replace(decision, status=updated)
