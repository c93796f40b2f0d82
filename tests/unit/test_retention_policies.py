"""Retention durations: what operators type, and what the API shows back."""

from __future__ import annotations

from datetime import timedelta

import pytest

from adclick.lifecycle.policies import PolicyError, iso_duration, parse_retention


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("P7D", timedelta(days=7)),
        ("P400D", timedelta(days=400)),
        ("PT12H", timedelta(hours=12)),
        ("P0D", timedelta(0)),
        ("7 days", timedelta(days=7)),
        ("forever", None),
        (" Forever ", None),
    ],
)
def test_retention_durations_round_trip(text: str, value: timedelta | None) -> None:
    assert parse_retention(text) == value
    if value is not None:
        assert parse_retention(iso_duration(value)) == value


@pytest.mark.parametrize("text", ["soon", "-P1D", "7 fortnights"])
def test_bad_durations_are_refused_with_the_accepted_forms(text: str) -> None:
    with pytest.raises(PolicyError, match=r"ISO 8601|negative"):
        parse_retention(text)
