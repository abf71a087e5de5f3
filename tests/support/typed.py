"""The kubernetes client's models declare every field Optional: `present` says "this one is set"."""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


def present(value: T | None, what: str = "a field the API server always sets") -> T:
    """VALUE, failing the test when it is None."""
    assert value is not None, f"{what} is missing"
    return value
