"""Retool version tags: parsing, ordering and change classification."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retool_operator.core.models import MAX_TAG_LENGTH, VERSION_PATTERN, ChangeKind
from retool_operator.core.versions import (
    Change,
    RetoolVersion,
    classify,
    parse,
)

# --- strategies -------------------------------------------------------------------------------

numbers = st.integers(min_value=0, max_value=10_000)
suffixes = st.one_of(
    st.just(""),
    st.sampled_from(["stable", "edge", "rc.1", "beta-2", "0", "neverready"]),
    st.from_regex(r"[0-9A-Za-z][0-9A-Za-z.-]{0,20}", fullmatch=True),
)
versions = st.builds(RetoolVersion, numbers, numbers, numbers, suffixes)
# Small numbers so that equal majors, minors and patches come up often.
close_versions = st.builds(
    RetoolVersion,
    st.integers(0, 2),
    st.integers(0, 2),
    st.integers(0, 2),
    st.sampled_from(["", "stable", "edge"]),
)


def outcome(text: str) -> tuple[RetoolVersion | None, str]:
    """The parsed version, or None and the error message."""
    try:
        return parse(text), ""
    except ValueError as error:
        return None, str(error)


def key(version: RetoolVersion) -> tuple[int, int, int, str]:
    """The documented order: numbers, then the suffix as a plain string."""
    return (version.major, version.minor, version.patch, version.suffix)


# --- parsing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("3.196.1-stable", RetoolVersion(3, 196, 1, "stable")),
        ("3.200.0-edge", RetoolVersion(3, 200, 0, "edge")),
        ("2.115.2", RetoolVersion(2, 115, 2)),
        ("0.0.0", RetoolVersion(0, 0, 0)),
        ("10.20.30-rc.1", RetoolVersion(10, 20, 30, "rc.1")),
        ("3.1.0-a-b.c", RetoolVersion(3, 1, 0, "a-b.c")),
        ("3.1.0-neverready", RetoolVersion(3, 1, 0, "neverready")),
        ("3.1.0-1", RetoolVersion(3, 1, 0, "1")),
    ],
)
def test_parse_examples(tag: str, expected: RetoolVersion) -> None:
    version = parse(tag)
    assert version == expected
    assert str(version) == tag
    assert version.tag == tag
    assert RetoolVersion.parse(tag) == expected


@pytest.mark.parametrize(
    "tag",
    [
        "",
        "3",
        "3.196",
        "3.196.1.2",
        "v3.196.1",
        "3.196.1-",
        "3.196.1--stable",
        "3.196.1-.stable",
        "3.196.1_stable",
        " 3.196.1",
        "3.196.1 ",
        "3.196.x",
        "3.-1.0",
        "latest",
        "3.196.1-stable\n",
        "3.196.1-st@ble",
    ],
)
def test_parse_rejects_malformed_tags_naming_them(tag: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(tag))) as error:
        parse(tag)
    assert "MAJOR.MINOR.PATCH" in str(error.value)


@pytest.mark.parametrize("tag", ["03.1.0", "3.01.0", "3.1.00", "3.1.01-stable"])
def test_parse_rejects_leading_zeros(tag: str) -> None:
    with pytest.raises(ValueError, match="leading zeros") as error:
        parse(tag)
    assert repr(tag) in str(error.value)


def test_parse_rejects_tags_docker_cannot_hold() -> None:
    tag = "3.196.1-" + "x" * MAX_TAG_LENGTH
    with pytest.raises(ValueError, match="longer than 128"):
        parse(tag)


def test_parse_accepts_the_longest_docker_tag() -> None:
    tag = "3.196.1-" + "x" * (MAX_TAG_LENGTH - len("3.196.1-"))
    assert str(parse(tag)) == tag


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((-1, 0, 0, ""), "negative"),
        ((0, 0, -3, ""), "negative"),
        ((1, 2, 3, "-edge"), "suffix"),
        ((1, 2, 3, "a b"), "suffix"),
    ],
)
def test_constructor_refuses_unformattable_values(
    args: tuple[int, int, int, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        RetoolVersion(*args)


def test_versions_are_frozen_and_hashable() -> None:
    version = parse("3.196.1-stable")
    with pytest.raises(AttributeError):
        version.major = 4  # type: ignore[misc]
    assert {version, parse("3.196.1-stable")} == {version}


def test_release_and_series() -> None:
    version = parse("3.196.1-stable")
    assert version.release == (3, 196, 1)
    assert version.series == (3, 196)


@given(versions)
def test_format_parse_round_trip(version: RetoolVersion) -> None:
    assert parse(str(version)) == version


@given(versions)
def test_every_formatted_tag_matches_the_crd_pattern(version: RetoolVersion) -> None:
    assert re.fullmatch(VERSION_PATTERN, str(version))


@given(st.from_regex(VERSION_PATTERN, fullmatch=True))
def test_crd_tags_parse_to_themselves_or_fail_clearly(tag: str) -> None:
    # The CRD admits leading zeros and very long tags; parse refuses those with a clear message.
    version, message = outcome(tag)
    if version is None:
        assert repr(tag) in message
        assert "leading zeros" in message or "longer than" in message
    else:
        assert str(version) == tag


@given(st.text(max_size=30))
def test_arbitrary_text_parses_or_raises_value_error(text: str) -> None:
    version, message = outcome(text)
    if version is None:
        assert repr(text) in message
    else:
        assert str(version) == text


# --- ordering ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ordered",
    [
        ["2.115.2", "3.148.0-stable", "3.196.1-stable", "3.196.2-stable", "3.200.0-edge"],
        ["3.9.0", "3.10.0", "3.100.0"],
        ["3.196.1", "3.196.1-edge", "3.196.1-stable"],
        ["1.999.999", "2.0.0"],
    ],
)
def test_order_examples(ordered: list[str]) -> None:
    parsed = [parse(tag) for tag in ordered]
    rotated = parsed[1:] + parsed[:1]
    assert sorted(rotated) == parsed


@given(versions, versions)
def test_order_is_the_tuple_order(a: RetoolVersion, b: RetoolVersion) -> None:
    assert (a < b) == (key(a) < key(b))
    assert (a <= b) == (key(a) <= key(b))
    assert (a == b) == (key(a) == key(b))


@given(close_versions, close_versions)
def test_order_is_total_and_consistent_with_equality(a: RetoolVersion, b: RetoolVersion) -> None:
    assert sum([a < b, a == b, a > b]) == 1
    if a == b:
        assert hash(a) == hash(b)


# --- classification ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "kind", "downgrade", "migrations"),
    [
        ("3.148.0-stable", "3.196.1-stable", ChangeKind.MINOR, False, True),
        ("3.196.1-stable", "3.196.2-stable", ChangeKind.PATCH, False, False),
        ("2.115.2", "3.0.0-stable", ChangeKind.MAJOR, False, True),
        ("3.196.1-stable", "3.148.0-stable", ChangeKind.MINOR, True, True),
        ("3.196.2-stable", "3.196.1-stable", ChangeKind.PATCH, True, False),
        ("3.0.0", "2.999.999", ChangeKind.MAJOR, True, True),
        ("3.196.1-edge", "3.196.1-stable", ChangeKind.PATCH, False, False),
        ("3.196.1-stable", "3.196.1", ChangeKind.PATCH, False, False),
        ("3.196.1-stable", "3.197.0-edge", ChangeKind.MINOR, False, True),
    ],
)
def test_classify_examples(
    old: str, new: str, kind: ChangeKind, downgrade: bool, migrations: bool
) -> None:
    change = classify(old, new)
    assert change.kind is kind
    assert change.changed
    assert change.downgrade is downgrade
    assert change.runs_migrations is migrations
    assert change.refused_downgrade is (downgrade and migrations)
    assert change.from_ == parse(old)
    assert change.to == parse(new)


def test_classify_equal_tags_is_no_change() -> None:
    change = classify("3.196.1-stable", parse("3.196.1-stable"))
    assert change == Change(parse("3.196.1-stable"), parse("3.196.1-stable"), None, False)
    assert not change.changed
    assert not change.runs_migrations
    assert not change.refused_downgrade


def test_patch_downgrade_is_allowed_and_minor_downgrade_refused() -> None:
    assert not classify("3.196.2", "3.196.1").refused_downgrade
    assert classify("3.196.2", "3.148.9").refused_downgrade
    assert classify("4.0.0", "3.999.0").refused_downgrade


def test_classify_names_a_bad_tag() -> None:
    with pytest.raises(ValueError, match=re.escape("'3.196'")):
        classify("3.196", "3.196.1")
    with pytest.raises(ValueError, match="'next'"):
        classify("3.196.1", "next")


@given(close_versions | versions, close_versions | versions)
def test_classify_is_antisymmetric(a: RetoolVersion, b: RetoolVersion) -> None:
    forward, backward = classify(a, b), classify(b, a)
    assert forward.kind is backward.kind
    assert forward.runs_migrations == backward.runs_migrations
    assert not (forward.downgrade and backward.downgrade)
    assert (forward.downgrade or backward.downgrade) == (a.release != b.release)


@given(close_versions | versions, close_versions | versions)
def test_classify_kind_follows_the_numbers(a: RetoolVersion, b: RetoolVersion) -> None:
    change = classify(a, b)
    assert (change.kind is ChangeKind.MAJOR) == (a.major != b.major)
    assert (change.kind is ChangeKind.MINOR) == (a.major == b.major and a.minor != b.minor)
    assert (change.kind is ChangeKind.PATCH) == (a.series == b.series and a != b)
    assert (change.kind is None) == (a == b)
    assert change.runs_migrations == (a.series != b.series)
    assert change.downgrade == (b.release < a.release)
    assert change.refused_downgrade == (b.series < a.series)


@given(close_versions | versions, close_versions | versions)
def test_classify_accepts_tags_and_versions_alike(a: RetoolVersion, b: RetoolVersion) -> None:
    assert classify(str(a), str(b)) == classify(a, b)
