"""Documents that must stay complete: the Helm chart mapping covers every key of the chart."""

from __future__ import annotations

from pathlib import Path

from retool_operator.core import crd

ROOT = Path(__file__).resolve().parents[2]
KEYS = ROOT / "tests" / "data" / "helm-values-keys.txt"
MAPPING = ROOT / "docs" / "helm-migration.md"


def chart_keys() -> list[str]:
    lines = KEYS.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line and not line.startswith("#")]


def test_helm_migration_maps_every_key_of_the_charts_values() -> None:
    table = MAPPING.read_text(encoding="utf-8")
    keys = chart_keys()
    assert len(keys) > 400
    missing = [key for key in keys if f"`{key}`" not in table]
    assert missing == [], "docs/helm-migration.md has no row for these chart keys"


def test_helm_migration_names_only_fields_the_crd_has() -> None:
    # Every `spec.x.y` the mapping names (outside planned rows) is a field of the CRD.
    def paths(node: dict[str, object], prefix: str) -> set[str]:
        out = {prefix}
        props = node.get("properties")
        if isinstance(props, dict):
            for name, child in props.items():
                out |= paths(child, f"{prefix}.{name}")
        items = node.get("items")
        if isinstance(items, dict):
            out |= paths(items, prefix)
        return out

    known = paths(crd.spec_schema(), "spec")
    unknown = set()
    for line in MAPPING.read_text(encoding="utf-8").splitlines():
        if "planned" in line:
            continue
        for part in line.split("`")[1::2]:
            field = part.split(":")[0].split("[")[0].split(" ")[0].rstrip(".")
            if field.startswith("spec.") and not set("<{*") & set(field) and field not in known:
                unknown.add(field)
    assert unknown == set()
