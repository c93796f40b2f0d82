"""ad_reads finds each ad's clicks in the window index's minutes, for any rows, ads and
filter: compared with a plain sum over the rows."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from adclick.query import ad_reads
from adclick.query.filters import Filter, Plan, Source
from adclick.query.vocabulary import Vocabulary
from adclick.query.window import MINUTE_MS, Window
from tests.index_snapshots import ADS, ROLLUP, VALUES, rows_strategy, snapshot_of


@settings(max_examples=300, deadline=None)
@given(
    rows=rows_strategy,
    asked=st.lists(st.sampled_from([*ADS, "never"]), min_size=1, max_size=8),
    devices=st.none() | st.lists(st.sampled_from([*VALUES, "zz"]), min_size=1, max_size=3),
    oses=st.none() | st.lists(st.sampled_from([*VALUES, "zz"]), min_size=1, max_size=3),
    span=st.tuples(st.integers(0, 2), st.integers(1, 3)).filter(lambda s: s[0] < s[1]),
)
def test_each_ads_clicks_per_minute_equal_a_plain_sum(
    rows: dict[tuple[Any, ...], int],
    asked: list[str],
    devices: list[str] | None,
    oses: list[str] | None,
    span: tuple[int, int],
) -> None:
    ads, values = Vocabulary(), Vocabulary()
    snapshot = snapshot_of(rows, ads, values)
    conditions = {d: v for d, v in (("device", devices), ("os", oses)) if v is not None}
    query_filter = Filter.of(conditions, ["device", "os"])
    plan = Plan(Source.FILTERED_ROLLUP, ROLLUP) if conditions else Plan(Source.ROLLUP)
    window = Window(span[0] * MINUTE_MS, span[1] * MINUTE_MS)
    if not ad_reads.answerable(plan, query_filter):
        assert "device" not in conditions
        return
    codes = ad_reads.ad_codes(ads, asked)
    got = ad_reads.minute_counts(snapshot, window, plan, query_filter, codes, values)
    expected = [
        [
            sum(
                clicks
                for (m, ad, device, os_), clicks in rows.items()
                if m == minute and ad == name
                and all(v in conditions.get(d, [v]) for d, v in (("device", device), ("os", os_)))
            )
            for minute in range(span[0], span[1])
        ]
        for name in asked
    ]  # fmt: skip
    assert got.tolist() == expected
