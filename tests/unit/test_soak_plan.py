"""The soak places its event time so that maintain exports a raw day chunk within the
run, whatever the time of day it starts (the short soak in CI saw no export between 06:00
and 12:00 UTC, and failed)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bench.soak import DAY_MS, SoakPlan
from tests.integration.test_soak import SHORT

NOW_MS = st.integers(min_value=1_700_000_000_000, max_value=1_900_000_000_000)


def _exportable_midnights(plan: SoakPlan, start_ms: int) -> list[int]:
    """Midnights after the run's first click whose day has passed its hot time by the
    middle of the run."""
    hot_ms = int(plan.hot_time.total_seconds() * 1000)
    middle_ms = start_ms + int(plan.seconds * plan.speedup * 1000) // 2
    first = start_ms // DAY_MS * DAY_MS + DAY_MS
    return [m for m in range(first, middle_ms + 1, DAY_MS) if m + hot_ms <= middle_ms]


@given(
    NOW_MS,
    st.floats(min_value=0.5, max_value=180),
    st.floats(min_value=1, max_value=2_000),
)
def test_event_time_ends_before_now_and_a_day_is_exported_half_way(
    now_ms: int, minutes: float, speedup: float
) -> None:
    plan = SoakPlan(minutes=minutes, speedup=speedup)
    start_ms = plan.event_start_ms(now_ms)
    span_ms = int(plan.seconds * plan.speedup * 1000)
    assert start_ms + span_ms <= now_ms - 300_000  # nothing from the future
    assert start_ms > now_ms - span_ms - 300_000 - DAY_MS  # at most a day earlier
    if span_ms // 2 >= plan.hot_time.total_seconds() * 1000:
        assert _exportable_midnights(plan, start_ms)


@given(NOW_MS)
def test_the_short_soak_in_ci_exports_at_any_time_of_day(now_ms: int) -> None:
    assert _exportable_midnights(SHORT, SHORT.event_start_ms(now_ms))
