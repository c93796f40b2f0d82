"""Windows, filters and ranking: the rules every answer follows (pure, no services)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from adclick.db.rollups import FilteredRollup
from adclick.query.errors import ErrorCode, QueryError
from adclick.query.filters import Filter, Source, plan_filter
from adclick.query.ranking import top_n
from adclick.query.window import StreamClock, Window, resolve_window, to_ms

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
