"""The command line builds the one frozen configuration the operator runs with."""

from __future__ import annotations

import dataclasses

import pytest

from retool_operator.cli import build_parser, config_from
from retool_operator.config import Config


def test_run_arguments_become_one_frozen_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTNAME", "retool-operator-7d9f")
    arguments = "run -n a -n b --kubeconfig /k --metrics-port 9100 --peering p --peering-lifetime 7"
    args = build_parser().parse_args(arguments.split())
    config = config_from(args)
    assert config == Config(
        kubeconfig="/k",
        namespaces=("a", "b"),
        metrics_port=9100,
        peering="p",
        peering_lifetime=7,
        instance="retool-operator-7d9f",
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.metrics_port = 0  # type: ignore[misc]


def test_defaults_watch_every_namespace_without_peering(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HOSTNAME", raising=False)
    config = config_from(build_parser().parse_args(["run"]))
    assert config.namespaces == ()
    assert config.peering is None
    assert config.metrics_port == 8000
    assert config.instance == "retool-operator"
