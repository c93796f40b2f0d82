"""The window index's rankings, for any rows, window, filter and limit: compared with a
plain sum over the rows ranked by clicks, then ad id (what topAds promises)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from adclick.query.filters import Filter, Plan, Source
from adclick.query.window import MINUTE_MS, Window
from adclick.query.window_index import WindowIndex
from tests.index_snapshots import ROLLUP, VALUES, rows_strategy, snapshot_of
from tests.truth_ranking import truth_top


@settings(max_examples=300, deadline=None)
@given(
    rows=rows_strategy,
    devices=st.none() | st.lists(st.sampled_from([*VALUES, "zz"]), min_size=1, max_size=3),
    oses=st.none() | st.lists(st.sampled_from([*VALUES, "zz"]), min_size=1, max_size=3),
    span=st.tuples(st.integers(0, 2), st.integers(1, 3)).filter(lambda s: s[0] < s[1]),
    limit=st.integers(1, 8),
)
def test_top_ads_of_a_window_equal_a_plain_ranking(
    rows: dict[tuple[Any, ...], int],
    devices: list[str] | None,
    oses: list[str] | None,
    span: tuple[int, int],
    limit: int,
) -> None:
    index = WindowIndex([ROLLUP], cache_minutes=3, max_limit=8)
    snapshot = snapshot_of(rows, index.ads, index.values)
    conditions = {d: v for d, v in (("device", devices), ("os", oses)) if v is not None}
    query_filter = Filter.of(conditions, ["device", "os"])
    plan = Plan(Source.FILTERED_ROLLUP, ROLLUP) if conditions else Plan(Source.ROLLUP)
    window = Window(span[0] * MINUTE_MS, span[1] * MINUTE_MS)
    clicks: Counter[str] = Counter()
    for (minute, ad, device, os_), n in rows.items():
        wanted = all(v in conditions.get(d, [v]) for d, v in (("device", device), ("os", os_)))
        if span[0] <= minute < span[1] and wanted:
            clicks[ad] += n
    expected = truth_top(clicks, limit)
    got = index.top(snapshot, window, plan, query_filter, limit)
    assert [{"rank": a.rank, "adId": a.ad_id, "clicks": a.clicks} for a in got] == expected
    # A second ask is answered from the cached ranking, the same.
    assert index.top(snapshot, window, plan, query_filter, limit) == got
