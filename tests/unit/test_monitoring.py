"""The alerts and the dashboard only name metrics the operator really exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

from retool_operator import metrics  # noqa: F401 (registers the operator's metrics)

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
RUNBOOK = Path(__file__).resolve().parents[2] / "docs" / "runbook.md"
METRIC_NAME = re.compile(r"\bretool_operator_[a-z_]+")


def _exported() -> set[str]:
    names = set()
    for family in REGISTRY.collect():
        for sample in family.samples:
            names.add(sample.name)
        names.add(family.name)
        names.update(f"{family.name}{suffix}" for suffix in ("_bucket", "_sum", "_count", "_total"))
    return names


def _rules() -> list[dict[str, object]]:
    document = yaml.safe_load((MONITORING / "prometheus-rules.yaml").read_text())
    return [rule for group in document["spec"]["groups"] for rule in group["rules"]]


@pytest.mark.parametrize("rule", _rules(), ids=lambda r: str(r["alert"]))
def test_alert_names_real_metrics_and_a_runbook_section(rule: dict[str, object]) -> None:
    """Every alert's expression uses exported metrics and links a runbook section that exists."""
    used = set(METRIC_NAME.findall(str(rule["expr"])))
    assert used, rule
    assert used <= _exported(), used - _exported()
    annotations = rule["annotations"]
    assert isinstance(annotations, dict)
    anchor = str(annotations["runbook"]).split("#", 1)[1]
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in RUNBOOK.read_text().splitlines()
        if line.startswith("#")
    }
    assert anchor in headings
    assert str(rule["alert"]) in RUNBOOK.read_text()


def test_dashboard_queries_name_real_metrics() -> None:
    """Every dashboard query uses exported metrics."""
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert exprs
    for expr in exprs:
        used = set(METRIC_NAME.findall(expr))
        assert used
        assert used <= _exported(), (expr, used - _exported())
