"""Prometheus text, parsed by prometheus_client's own parser: the one reader of /metrics pages."""

from __future__ import annotations

from collections import defaultdict

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[str, list[tuple[dict[str, str], float]]]


def samples(text: str) -> Samples:
    """Every sample of a /metrics page by its name (`x_total`, `x_count`): [(labels, value)]."""
    found: Samples = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name].append((dict(sample.labels), float(sample.value)))
    return dict(found)


def first(text: str, name: str, /, **labels: str) -> float | None:
    """The value of the first sample NAME{LABELS...} (more labels allowed), if any."""
    for found, value in samples(text).get(name, []):
        if all(found.get(k) == v for k, v in labels.items()):
            return value
    return None


def total(text: str, name: str) -> float:
    """The sum of every sample named NAME (0 when there is none)."""
    return sum(value for _, value in samples(text).get(name, []))
