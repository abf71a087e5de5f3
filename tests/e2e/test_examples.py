"""deploy/examples/ are admitted by the API server and parse with the models."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from retool_operator.core.models import RetoolDeploymentSpec
from tests.support import retool

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "deploy" / "examples").glob("*.yaml"))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
@pytest.mark.usefixtures("kube_api")
def test_example_is_admitted(example: Path, kubeconfig: str, namespace: str) -> None:
    """A server-side dry run of the whole file succeeds; the spec parses with the models."""
    documents = [d for d in yaml.safe_load_all(example.read_text()) if d]
    specs = [d["spec"] for d in documents if d["kind"] == "RetoolDeployment"]
    assert len(specs) == 1
    RetoolDeploymentSpec.model_validate(specs[0])
    result = retool.kubectl(
        kubeconfig, "-n", namespace, "apply", "--dry-run=server", "-f", str(example), check=False
    )
    assert result.returncode == 0, result.stderr
    assert "retooldeployment.retool-operator.dev/retool created (server dry run)" in result.stdout
