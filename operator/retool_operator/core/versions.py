"""Retool version tags and what a change between two of them implies (docs/design.md §1).

Retool tags its images `MAJOR.MINOR.PATCH[-suffix]`: `3.196.1-stable`, `3.200.0-edge`, or plain
`2.115.2` for older releases. The suffix is a release channel, not a semver pre-release, so it
carries no ordering meaning. A MAJOR.MINOR change runs database migrations; a patch change does not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from retool_operator.core.models import MAX_TAG_LENGTH, ChangeKind

# As models.VERSION_PATTERN: no leading zeros, so that every accepted tag formats back to exactly
# itself (`03.1.0` would otherwise equal `3.1.0` but name another image).
_NUMBER = r"(0|[1-9][0-9]*)"
_SUFFIX = r"[0-9A-Za-z][0-9A-Za-z.-]*"
_TAG = re.compile(rf"{_NUMBER}\.{_NUMBER}\.{_NUMBER}(?:-({_SUFFIX}))?")
_SUFFIX_RE = re.compile(_SUFFIX)
# The same shape with leading zeros allowed: tells which rule a tag broke.
_LOOSE_TAG = re.compile(rf"[0-9]+\.[0-9]+\.[0-9]+(?:-{_SUFFIX})?")
_EXAMPLE = "expected MAJOR.MINOR.PATCH[-suffix], e.g. 3.196.1-stable"


@dataclass(frozen=True, order=True)
class RetoolVersion:
    """A parsed Retool tag, ordered by (major, minor, patch) with the suffix as a tie-break.

    The tie-break compares suffixes as plain strings, no suffix first (`3.196.1` < `3.196.1-edge`
    < `3.196.1-stable`). It only makes the order total and consistent with equality, so sorting is
    deterministic; nothing else depends on it. Downgrades are judged on the numbers alone.
    """

    major: int
    minor: int
    patch: int
    suffix: str = ""

    def __post_init__(self) -> None:
        """Refuse values that would not format to a valid tag."""
        if min(self.major, self.minor, self.patch) < 0:
            raise ValueError(f"version numbers must not be negative: {self.release}")
        if self.suffix and not _SUFFIX_RE.fullmatch(self.suffix):
            raise ValueError(
                f"{self.suffix!r} is not a valid tag suffix (letters, digits, . and -)"
            )

    @classmethod
    def parse(cls, tag: str) -> RetoolVersion:
        """The version a tag names; ValueError naming the tag if it is invalid."""
        return parse(tag)

    @property
    def release(self) -> tuple[int, int, int]:
        """(major, minor, patch): the numbers that decide upgrades and downgrades."""
        return (self.major, self.minor, self.patch)

    @property
    def series(self) -> tuple[int, int]:
        """(major, minor): versions in one series share a database schema."""
        return (self.major, self.minor)

    @property
    def tag(self) -> str:
        """The image tag, exactly as parsed."""
        numbers = f"{self.major}.{self.minor}.{self.patch}"
        return f"{numbers}-{self.suffix}" if self.suffix else numbers

    def __str__(self) -> str:
        """The image tag."""
        return self.tag


def parse(tag: str) -> RetoolVersion:
    """The version a tag such as `3.196.1-stable` names; ValueError naming the tag if invalid."""
    if len(tag) > MAX_TAG_LENGTH:
        raise ValueError(f"{tag!r} is not a Retool version tag: longer than {MAX_TAG_LENGTH} chars")
    match = _TAG.fullmatch(tag)
    if match is None:
        if _LOOSE_TAG.fullmatch(tag):
            raise ValueError(f"{tag!r} is not a Retool version tag: numbers have leading zeros")
        raise ValueError(f"{tag!r} is not a Retool version tag: {_EXAMPLE}")
    major, minor, patch, suffix = match.groups()
    return RetoolVersion(int(major), int(minor), int(patch), suffix or "")


@dataclass(frozen=True)
class Change:
    """What moving from one version to another implies; `kind` is None when they are equal."""

    from_: RetoolVersion
    to: RetoolVersion
    kind: ChangeKind | None
    downgrade: bool

    @property
    def changed(self) -> bool:
        """Whether the tags differ at all (a suffix-only change still rolls out a new image)."""
        return self.kind is not None

    @property
    def runs_migrations(self) -> bool:
        """Whether MAJOR.MINOR changed, so the new jobs-runner migrates the database."""
        return self.kind in (ChangeKind.MAJOR, ChangeKind.MINOR)

    @property
    def refused_downgrade(self) -> bool:
        """A MAJOR.MINOR downgrade: refused unless the allow-downgrade annotation is set."""
        return self.downgrade and self.runs_migrations


def _as_version(value: RetoolVersion | str) -> RetoolVersion:
    """Accept a parsed version or a tag."""
    return value if isinstance(value, RetoolVersion) else parse(value)


def classify(from_: RetoolVersion | str, to: RetoolVersion | str) -> Change:
    """Classify the change from `from_` to `to`.

    Equal tags give kind None. Tags that differ only in the suffix give kind Patch and no
    downgrade: the image changes, the schema does not. `downgrade` compares the numbers only.
    """
    old, new = _as_version(from_), _as_version(to)
    kind: ChangeKind | None
    if old == new:
        kind = None
    elif old.major != new.major:
        kind = ChangeKind.MAJOR
    elif old.minor != new.minor:
        kind = ChangeKind.MINOR
    else:
        kind = ChangeKind.PATCH
    return Change(from_=old, to=new, kind=kind, downgrade=new.release < old.release)
