"""Retention durations: what operators type, and what the API shows back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adclick.lifecycle.policies import PolicyError, check_policy, iso_duration, parse_retention
from adclick.settings import Settings


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


# -- which policies are refused, and why -------------------------------------------------

SETTINGS = Settings()  # dedup horizon 7 days, minute-rollup retention 90 days
DAY = timedelta(days=1)
RELATIONS = ["raw_clicks", "clicks_1m", "clicks_1m_by_country", "clicks_1h", "top_ads"]


@pytest.mark.parametrize(
    ("relation", "hot", "cold", "why"),
    [
        ("raw_clicks", 6 * DAY, None, "dedup horizon"),
        ("clicks_1m", DAY, timedelta(0), "MINUTE_ROLLUP_RETENTION"),
        ("clicks_1m_by_country", 89 * DAY, timedelta(0), "MINUTE_ROLLUP_RETENTION"),
        ("clicks_1h", 30 * DAY, None, "MINUTE_ROLLUP_RETENTION"),
        ("clicks_1h", 400 * DAY, timedelta(0), "only long-term data"),
        ("raw_clicks", timedelta(days=999_999_999), None, "100 years"),
        ("raw_clicks", 7 * DAY, timedelta(days=36_526), "100 years"),
        ("top_ads", timedelta(0), None, "positive"),
        ("top_ads", -DAY, None, "negative"),
        ("top_ads", DAY, -DAY, "negative"),
        ("top_ads", timedelta(hours=1), timedelta(0), "revision horizon"),
        ("nope", DAY, None, "no policy for 'nope'"),
    ],
)
def test_policies_that_break_answers_or_maintenance_are_refused_with_the_reason(
    relation: str, hot: timedelta | None, cold: timedelta | None, why: str
) -> None:
    with pytest.raises(PolicyError, match=why) as refused:
        check_policy(relation, hot, cold, SETTINGS, relations=RELATIONS)
    # Only dropping the hourly counts can be forced; nothing else, whatever the operator says.
    if why == "only long-term data":
        assert refused.value.forceable
        check_policy(relation, hot, cold, SETTINGS, relations=RELATIONS, force=True)
    else:
        assert not refused.value.forceable
        with pytest.raises(PolicyError, match=why):
            check_policy(relation, hot, cold, SETTINGS, relations=RELATIONS, force=True)


@pytest.mark.parametrize(
    ("relation", "hot", "cold"),
    [
        ("raw_clicks", 7 * DAY, 365 * DAY),
        ("raw_clicks", None, None),
        ("raw_clicks", 14 * DAY, timedelta(0)),
        ("clicks_1m", 90 * DAY, timedelta(0)),
        ("clicks_1m_by_country", 120 * DAY, 30 * DAY),
        ("clicks_1h", None, None),
        ("clicks_1h", 400 * DAY, 3650 * DAY),
        ("clicks_1h", None, timedelta(0)),  # never leaves the database: nothing is dropped
        ("top_ads", timedelta(hours=2), timedelta(0)),
        ("raw_clicks", timedelta(days=36_525), timedelta(days=36_525)),
    ],
)
def test_sound_policies_are_accepted(
    relation: str, hot: timedelta | None, cold: timedelta | None
) -> None:
    check_policy(relation, hot, cold, SETTINGS, relations=RELATIONS)


# -- any input ---------------------------------------------------------------------------

FUZZ = settings(max_examples=400, deadline=None, derandomize=True)
# What maintenance computes: "now" is the newest event time, 2000..2100 (events.parse).
NOWS = [datetime(2000, 1, 1, tzinfo=UTC), datetime(2099, 12, 31, 23, 59, tzinfo=UTC)]
durations = st.one_of(
    st.sampled_from(["forever", "P0D", "P7D", "P90D", "P36525D", "P36526D", "P999999999D"]),
    st.from_regex(r"\A-?P(\d{1,12}[YMWD]){0,3}(T(\d{1,12}(\.\d{1,6})?[HMS]){1,3})?\Z"),
    st.text(max_size=30),
)


def maintenance_arithmetic(hot: timedelta | None, cold: timedelta | None) -> None:
    """What adclick maintain and recalculation compute from a policy."""
    for now in NOWS:
        if hot is not None:
            before = now - hot
            if cold is not None:
                assert before - cold <= now
        iso = [iso_duration(value) for value in (hot, cold) if value is not None]
        assert [parse_retention(text) for text in iso] == [v for v in (hot, cold) if v is not None]


@FUZZ
@given(st.sampled_from(RELATIONS), durations, durations, st.booleans())
def test_any_hot_and_cold_are_refused_with_bad_policy_or_safe_for_maintenance(
    relation: str, hot_text: str, cold_text: str, force: bool
) -> None:
    try:
        hot, cold = parse_retention(hot_text), parse_retention(cold_text)
        check_policy(relation, hot, cold, SETTINGS, relations=RELATIONS, force=force)
    except PolicyError:
        return  # BAD_POLICY, with its message
    maintenance_arithmetic(hot, cold)


@FUZZ
@given(
    st.sampled_from(RELATIONS),
    st.none() | st.timedeltas(),
    st.none() | st.timedeltas(),
)
def test_any_stored_policy_is_refused_or_safe_for_maintenance(
    relation: str, hot: timedelta | None, cold: timedelta | None
) -> None:
    """As maintenance checks stored rows: the rules that hold whatever the settings."""
    try:
        check_policy(relation, hot, cold)
    except PolicyError:
        return
    maintenance_arithmetic(hot, cold)
