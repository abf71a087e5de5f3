"""The API models: durations, camelCase on the wire, the `from` alias, and their validators."""

from __future__ import annotations

import inspect
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from retool_operator.core import models
from retool_operator.core.models import (
    DURATION_PATTERN,
    VERSION_PATTERN,
    AutoscalingSpec,
    ComponentSpec,
    DatabaseSpec,
    EnvVar,
    HistoryEntry,
    JobsRunnerSpec,
    PodDisruptionBudgetSpec,
    ResourceRequirements,
    RetoolDeploymentSpec,
    RetoolDeploymentStatus,
    SecretKeyRef,
    SecretRef,
    UpgradeSpec,
    UpgradeStatus,
    cel_literal,
    cel_pattern,
    format_time,
    parse_duration,
)

UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

# --- parse_duration -------------------------------------------------------------------------

numbers = st.one_of(
    st.integers(0, 10**6).map(str),
    st.tuples(st.integers(0, 10**4), st.integers(0, 999)).map(lambda p: f"{p[0]}.{p[1]}"),
)
parts = st.lists(st.tuples(numbers, st.sampled_from(sorted(UNIT_SECONDS))), min_size=1, max_size=4)


@given(parts)
def test_parse_duration_adds_up_the_parts(duration: list[tuple[str, str]]) -> None:
    text = "".join(number + unit for number, unit in duration)
    expected = sum(float(number) * UNIT_SECONDS[unit] for number, unit in duration)
    assert parse_duration(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("30m", 1800), ("1h30m", 5400), ("1.5h", 5400), ("250ms", 0.25), ("0s", 0)],
)
def test_parse_duration_examples(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "1d", "-1s", "1h 30m", "1.s", "h", "1H", "1m30"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration such as 90s"):
        parse_duration(text)


@given(st.text(max_size=12))
def test_parse_duration_accepts_exactly_the_pattern(text: str) -> None:
    if re.fullmatch(DURATION_PATTERN, text):
        assert parse_duration(text) >= 0
    else:
        with pytest.raises(ValueError, match="is not a duration"):
            parse_duration(text)


def test_format_time_is_utc_to_the_second() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 999, tzinfo=UTC)
    assert format_time(moment) == "2026-01-02T03:04:05Z"


# --- camelCase on the wire ------------------------------------------------------------------

versions = st.from_regex(VERSION_PATTERN, fullmatch=True).filter(lambda v: len(v) <= 128)
# Timeouts: 1 to 4 parts of 1 to 40 units each, so always above zero and never above 168h.
timeouts = st.lists(
    st.tuples(st.integers(1, 40), st.sampled_from(sorted(UNIT_SECONDS))), min_size=1, max_size=4
).map(lambda ps: "".join(f"{n}{u}" for n, u in ps))


@st.composite
def specs(draw: st.DrawFn) -> RetoolDeploymentSpec:
    """Specs with the fields varied that have a camelCase name."""
    return RetoolDeploymentSpec.model_validate(
        {
            "version": draw(versions),
            "codeExecutorImage": draw(st.sampled_from(["a/b", "registry:5000/x/y"])),
            "imagePullSecrets": [{"name": "pull"}] * draw(st.integers(0, 2)),
            "database": {
                "host": "db",
                "passwordSecretRef": {"name": "db", "key": draw(st.sampled_from(["pw", "a.b"]))},
                "sslMode": draw(st.sampled_from(list(models.SslMode))).value,
                "migrationsTable": draw(st.sampled_from(["SequelizeMeta", "_m$1"])),
            },
            "secretRef": {"name": "retool"},
            "api": {
                "replicas": draw(st.integers(0, 1000)),
                "pod": {"annotations": {"a": "b"}},
                "autoscaling": draw(st.none() | st.just({"maxReplicas": 9})),
                "podDisruptionBudget": {"maxUnavailable": draw(st.integers(0, 5) | st.just("25%"))},
            },
            "jobsRunner": {"env": [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "a"}}}]},
            "workflowsBackend": draw(st.none() | st.just({"replicas": 0})),
            "temporal": {"host": "temporal.example.com"},
            "service": {"type": draw(st.sampled_from(list(models.ServiceType))).value},
            "upgrade": {
                "strategy": draw(st.sampled_from(list(models.UpgradeStrategy))).value,
                "migrationTimeout": draw(timeouts),
                "verifyTimeout": draw(timeouts),
                "autoRollback": draw(st.booleans()),
            },
            "paused": draw(st.booleans()),
        }
    )


@given(specs())
def test_spec_round_trips_through_its_wire_form(spec: RetoolDeploymentSpec) -> None:
    wire = spec.to_api()
    assert RetoolDeploymentSpec.model_validate(wire) == spec
    assert {"codeExecutorImage", "imagePullSecrets", "secretRef", "jobsRunner"} <= wire.keys()
    assert {"passwordSecretRef", "sslMode", "migrationsTable"} <= wire["database"].keys()
    assert {"migrationTimeout", "verifyTimeout", "autoRollback"} <= wire["upgrade"].keys()
    assert wire["api"]["pod"]["annotations"] == {"a": "b"}


def test_snake_case_names_are_accepted_in_python() -> None:
    database = DatabaseSpec(host="db", password_secret_ref=SecretKeyRef(name="pw"), port=6432)
    assert database.to_api()["passwordSecretRef"] == {"name": "pw", "key": "password"}
    assert DatabaseSpec.model_validate(database.to_api()) == database


def test_to_api_leaves_out_unset_optional_fields() -> None:
    spec = RetoolDeploymentSpec.model_validate(_minimal_spec())
    wire = spec.to_api()
    assert "workflowsBackend" not in wire
    assert "autoscaling" not in wire["api"]


def test_unknown_fields_are_ignored() -> None:
    spec = RetoolDeploymentSpec.model_validate({**_minimal_spec(), "fromTheFuture": 1})
    assert "fromTheFuture" not in spec.to_api()


def _minimal_spec() -> dict[str, Any]:
    return {
        "version": "3.196.1-stable",
        "database": {"host": "db", "passwordSecretRef": {"name": "db"}},
        "secretRef": {"name": "retool"},
    }


# --- `from` in the status -------------------------------------------------------------------

MOMENT = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


def _upgrade() -> UpgradeStatus:
    return UpgradeStatus(
        from_version="3.148.0",
        to="3.196.1",
        kind=models.ChangeKind.MINOR,
        strategy=models.UpgradeStrategy.RECREATE,
        step=models.Step.PREFLIGHT,
        started_at=MOMENT,
        step_started_at=MOMENT,
    )


def _history() -> HistoryEntry:
    return HistoryEntry(
        from_version="3.148.0",
        to="3.196.1",
        started_at=MOMENT,
        finished_at=MOMENT,
        result=models.UpgradeResult.ROLLED_BACK,
    )


@pytest.mark.parametrize("model", [_upgrade(), _history()], ids=["upgrade", "history"])
def test_from_is_the_wire_name_of_from_version(model: BaseModel) -> None:
    wire = model.model_dump(mode="json", by_alias=True)
    assert wire["from"] == "3.148.0"
    assert "fromVersion" not in wire
    assert "from_version" not in wire
    assert type(model).model_validate(wire) == model


def test_from_is_read_from_the_wire() -> None:
    wire = {"from": "3.1.0", "to": "3.2.0", "startedAt": "2026-03-04T05:06:07Z"}
    entry = HistoryEntry.model_validate(
        {**wire, "finishedAt": wire["startedAt"], "result": "Failed"}
    )
    assert entry.from_version == "3.1.0"
    assert entry.started_at == MOMENT


def test_status_round_trips_through_its_wire_form() -> None:
    status = RetoolDeploymentStatus(
        observed_generation=2,
        phase=models.Phase.UPGRADING,
        upgrade=_upgrade(),
        history=[_history()],
        api=models.ComponentStatus(replicas=3, ready_replicas=2, selector="a=b"),
    )
    wire = status.to_api()
    assert wire["upgrade"]["from"] == "3.148.0"
    assert wire["upgrade"]["startedAt"] == "2026-03-04T05:06:07Z"
    assert wire["history"][0]["from"] == "3.148.0"
    assert wire["api"]["readyReplicas"] == 2
    assert wire["observedGeneration"] == 2
    assert RetoolDeploymentStatus.model_validate(wire) == status


def test_history_is_limited_to_ten() -> None:
    with pytest.raises(ValidationError, match="at most 10 items"):
        RetoolDeploymentStatus(history=[_history()] * 11)


# --- validators (the pydantic side of the CRD's admission rules) ----------------------------

REFUSED: list[tuple[type[BaseModel], dict[str, Any], str]] = [
    (JobsRunnerSpec, {"replicas": 2}, "spec.jobsRunner.replicas must be 1"),
    (UpgradeSpec, {"migrationTimeout": "0s"}, "is not longer than zero"),
    (UpgradeSpec, {"verifyTimeout": "1d"}, "should match pattern"),
    (UpgradeSpec, {"verifyTimeout": "99999999999999h"}, "at most 168h"),
    (AutoscalingSpec, {"minReplicas": 5, "maxReplicas": 3}, "must not be greater than"),
    (PodDisruptionBudgetSpec, {"minAvailable": 1, "maxUnavailable": 1}, "not both"),
    (PodDisruptionBudgetSpec, {"minAvailable": "101%"}, "percentage such as 50%"),
    (PodDisruptionBudgetSpec, {"maxUnavailable": -1}, "number of pods"),
    (EnvVar, {"name": "A", "value": "x", "valueFrom": {}}, "both value and valueFrom"),
    (EnvVar, {"name": "A B"}, "should match pattern"),
    (ComponentSpec, {"env": [{"name": "A"}, {"name": "B"}, {"name": "A"}]}, "repeated: A"),
    (ResourceRequirements, {"requests": {"memory": "1 GB"}}, "is not a quantity"),
    (ResourceRequirements, {"limits": {"cpu": "1" * 65}}, "is not a quantity"),
    (SecretRef, {"name": "Retool"}, "should match pattern"),
    (SecretKeyRef, {"name": "db", "key": ""}, "should match pattern"),
    (DatabaseSpec, {"host": "db host", "passwordSecretRef": {"name": "x"}}, "should match"),
]


@pytest.mark.parametrize(
    ("model", "data", "says"), REFUSED, ids=[f"{m.__name__}-{d}" for m, d, _ in REFUSED]
)
def test_validators_refuse(model: type[BaseModel], data: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(says)):
        model.model_validate(data)


ACCEPTED: list[tuple[type[BaseModel], dict[str, Any]]] = [
    (PodDisruptionBudgetSpec, {"minAvailable": "100%"}),
    (PodDisruptionBudgetSpec, {"maxUnavailable": 0}),
    (PodDisruptionBudgetSpec, {}),
    (EnvVar, {"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}),
    (EnvVar, {"name": "a.b-c_D"}),
    (ResourceRequirements, {"requests": {"cpu": "0.5", "memory": "512Mi", "x": 1, "y": "1e3"}}),
    (AutoscalingSpec, {"minReplicas": 4, "maxReplicas": 4}),
    (UpgradeSpec, {"migrationTimeout": "1h30m", "verifyTimeout": "250ms"}),
    (UpgradeSpec, {"migrationTimeout": "168h", "verifyTimeout": "167h60m"}),
    (DatabaseSpec, {"host": "fd00::1", "passwordSecretRef": {"name": "a.b-c"}}),
]


@pytest.mark.parametrize(
    ("model", "data"), ACCEPTED, ids=[f"{m.__name__}-{d}" for m, d in ACCEPTED]
)
def test_validators_accept(model: type[BaseModel], data: dict[str, Any]) -> None:
    model.model_validate(data)


@pytest.mark.parametrize(
    "image", ["tryretool/backend", "backend", "registry.example.com:5000/retool/backend"]
)
def test_image_repositories_are_accepted(image: str) -> None:
    RetoolDeploymentSpec.model_validate({**_minimal_spec(), "image": image})


@pytest.mark.parametrize(
    "image", ["", "tryretool/backend:3.1.0", "tryretool/backend@sha256:00", "a b", "repo/"]
)
def test_image_with_tag_or_junk_is_refused(image: str) -> None:
    with pytest.raises(ValidationError, match="image"):
        RetoolDeploymentSpec.model_validate({**_minimal_spec(), "image": image})


def test_jobs_runner_defaults_to_its_one_replica() -> None:
    assert JobsRunnerSpec().replicas == 1


# --- CEL helpers ----------------------------------------------------------------------------


def test_cel_literal_is_a_raw_string() -> None:
    assert cel_literal(r"^a\.b$") == r"r'^a\.b$'"
    with pytest.raises(ValueError, match="raw string"):
        cel_literal("it's")


def test_cel_pattern_replaces_the_pattern_by_a_rule() -> None:
    schema: dict[str, Any] = {"type": "string", "pattern": "^x$"}
    cel_pattern("must be x", and_rule="self.size() == 1")(schema)
    assert schema == {
        "type": "string",
        "x-kubernetes-validations": [
            {"rule": "self.matches(r'^x$') && self.size() == 1", "message": "must be x"}
        ],
    }


def test_component_field_names() -> None:
    assert [c.field for c in models.Component] == [
        "api",
        "jobs_runner",
        "workflows_backend",
        "workflows_worker",
        "code_executor",
        "db_connector",
        "multiplayer",
        "agent_worker",
        "agent_eval_worker",
    ]
    assert all(c.field in RetoolDeploymentSpec.model_fields for c in models.Component)


def test_every_model_is_complete_at_import() -> None:
    # A model whose annotations name something defined later is built lazily, and until then
    # its fields report no alias: the CRD and the wire form would disagree.
    incomplete = [
        name
        for name, value in vars(models).items()
        if inspect.isclass(value)
        and issubclass(value, models.ApiModel)
        and not value.__pydantic_complete__
    ]
    assert incomplete == []
