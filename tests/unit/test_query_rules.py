"""Windows, filters and ranking: the rules every answer follows (pure, no services)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from adclick.db.rollups import FilteredRollup
from adclick.events.parse import EARLIEST_TS_MS, LATEST_TS_MS
from adclick.query.errors import ErrorCode, QueryError
from adclick.query.filters import Filter, Source, plan_filter
from adclick.query.ranking import top_n
from adclick.query.window import MINUTE_MS, StreamClock, Window, from_ms, resolve_window, to_ms
from adclick.top_lists.history import history_range

NOW = to_ms(datetime(2026, 11, 23, 12, 30, 42, tzinfo=UTC))
CLOCK = StreamClock(newest_ms=NOW, watermark_ms=NOW - 60_000, wall_ms=NOW + 5_000)
RETENTION = timedelta(days=90)


def window(**args: object) -> Window:
    return resolve_window(CLOCK, retention=RETENTION, **{  # type: ignore[arg-type]
        "last_minutes": None, "start": None, "end": None, **args
    })  # fmt: skip


def test_last_minutes_are_the_complete_minutes_before_stream_time() -> None:
    five = window(last_minutes=5)
    assert (five.start_ms, five.end_ms) == (
        to_ms(datetime(2026, 11, 23, 12, 25, tzinfo=UTC)),
        to_ms(datetime(2026, 11, 23, 12, 30, tzinfo=UTC)),
    )
    # The watermark (12:29:42) has not passed 12:30: the last minute may still change.
    assert not five.complete(CLOCK)
    assert window(last_minutes=1).minutes == 1


def test_ranges_are_half_open_whole_minutes_and_naive_times_are_utc() -> None:
    ranged = window(start=datetime(2026, 11, 23, 12, 0), end=datetime(2026, 11, 23, 12, 29))
    assert ranged.minutes == 29
    assert ranged.complete(CLOCK)  # 12:29 <= watermark 12:29:42


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ({"last_minutes": 0}, ErrorCode.BAD_WINDOW),
        ({"last_minutes": 5, "start": datetime(2026, 11, 23)}, ErrorCode.BAD_WINDOW),
        ({"start": datetime(2026, 11, 23)}, ErrorCode.BAD_WINDOW),
        ({"start": datetime(2026, 11, 23, 0, 0, 1), "end": datetime(2026, 11, 23, 1)},
         ErrorCode.BAD_WINDOW),
        ({"start": datetime(2026, 11, 23, 1), "end": datetime(2026, 11, 23, 1)},
         ErrorCode.BAD_WINDOW),
        ({"start": datetime(2026, 8, 1), "end": datetime(2026, 8, 2)},
         ErrorCode.WINDOW_OUT_OF_RANGE),
    ],
)  # fmt: skip
def test_bad_windows_are_refused_with_their_code(args: dict[str, object], code: ErrorCode) -> None:
    with pytest.raises(QueryError) as refused:
        window(**args)
    assert refused.value.code is code


def test_the_smallest_covering_rollup_answers_a_filter() -> None:
    by_country = FilteredRollup(("country",))
    by_country_device = FilteredRollup(("country", "device"))
    rollups = [by_country_device, by_country]
    allowed = ["country", "device", "os"]
    assert plan_filter(Filter(), rollups).source is Source.ROLLUP
    assert plan_filter(Filter.of({"country": ["US"]}, allowed), rollups).rollup == by_country
    both = Filter.of({"device": ["1"], "country": ["US"]}, allowed)
    assert plan_filter(both, rollups).rollup == by_country_device
    assert plan_filter(Filter.of({"os": ["13"]}, allowed), rollups).source is Source.RAW
    assert Filter.of({"os": None}, allowed) == Filter()  # null means "not filtered"
    with pytest.raises(QueryError, match="cannot filter by 'city'"):
        Filter.of({"city": ["Paris"]}, allowed)


def test_top_n_ranks_by_clicks_then_ad_id_like_a_full_sort() -> None:
    rng = np.random.default_rng(7)
    names = [f"ad{n:05d}" for n in rng.permutation(20_000)]  # codes not in id order
    sums = rng.zipf(1.6, size=len(names)).astype(np.int64) - 1  # many ties, many zeros
    for limit in (1, 10, 100, 1000, 30_000):
        expected = sorted(
            ((names[i], int(c)) for i, c in enumerate(sums) if c > 0),
            key=lambda pair: (-pair[1], pair[0]),
        )[:limit]
        ranked = top_n(sums, names, limit)
        assert [(r.ad_id, r.clicks) for r in ranked] == expected
        assert [r.rank for r in ranked] == list(range(1, len(expected) + 1))


client_times = st.one_of(
    st.datetimes(),
    st.builds(
        lambda moment, minutes: moment.replace(tzinfo=timezone(timedelta(minutes=minutes))),
        st.datetimes(),
        st.integers(-23 * 60 - 59, 23 * 60 + 59),
    ),
    st.datetimes(datetime(1999, 12, 31), datetime(2100, 1, 2)),
)


@settings(max_examples=1000)
@given(client_times, client_times)
@example(datetime(9999, 12, 31, 23, tzinfo=timezone(-timedelta(hours=14))),
         datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(-timedelta(hours=14))))  # fmt: skip
@example(datetime(9999, 12, 31, 23, 59, 59), datetime(9999, 12, 31, 23, 59, 59, 999999))
def test_any_history_range_is_lists_of_clicks_or_refused(start: datetime, end: datetime) -> None:
    """topAdsHistory's from/to, any datetimes a client can send: a range of at most a day
    within the years of clicks, the instants given, or a coded refusal (never a 500)."""
    try:
        start_ms, end_ms = history_range(start, end, max_lists=1440)
    except QueryError as exc:
        assert exc.code in {ErrorCode.BAD_WINDOW, ErrorCode.WINDOW_OUT_OF_RANGE}
        return
    assert EARLIEST_TS_MS <= start_ms < end_ms <= LATEST_TS_MS
    assert end_ms - start_ms <= 1440 * MINUTE_MS
    assert from_ms(start_ms) <= (start if start.tzinfo else start.replace(tzinfo=UTC))


@given(st.integers(EARLIEST_TS_MS, LATEST_TS_MS), st.integers(0, 999))
def test_epoch_milliseconds_are_exact(ms: int, microseconds: int) -> None:
    moment = from_ms(ms)
    assert to_ms(moment) == ms
    assert to_ms(moment + timedelta(microseconds=microseconds)) == ms  # floored
