"""ad_reads finds each ad's clicks in the window index's minutes, for any rows, ads and
filter: compared with a plain sum over the rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from adclick.db.rollups import FilteredRollup
from adclick.query import ad_reads
from adclick.query.filters import Filter, Plan, Source
from adclick.query.vocabulary import Vocabulary
from adclick.query.window import MINUTE_MS, StreamClock, Window
from adclick.query.window_index import FilteredRows, MinuteCounts, Snapshot

ROLLUP = FilteredRollup(("device", "os"))
ADS = [f"ad{i}" for i in range(6)]
VALUES = ["a", "b", "c"]

# One row: (minute, ad, device, os, clicks); the rollup has one row per key.
rows_strategy = st.dictionaries(
    st.tuples(
        st.integers(0, 2), st.sampled_from(ADS), st.sampled_from(VALUES), st.sampled_from(VALUES)
    ),
    st.integers(1, 10**6),
    max_size=60,
)


def _snapshot(rows: dict[tuple[Any, ...], int], ads: Vocabulary, values: Vocabulary) -> Snapshot:
    """Minutes as minute_loader makes them: sorted by ad code, filtered rows by their first
    dimension's code, then by ad code."""
    minutes = {}
    for minute in range(3):
        mine = [(k, c) for k, c in rows.items() if k[0] == minute]
        unfiltered: dict[int, int] = {}
        for (_m, ad, _d, _o), clicks in mine:
            code = _code(ads, ad)
            unfiltered[code] = unfiltered.get(code, 0) + clicks
        codes = np.array(sorted(unfiltered), dtype=np.int32)
        f_ads = np.array([_code(ads, k[1]) for k, _ in mine], dtype=np.int32)
        f_dev = np.array([_code(values, k[2]) for k, _ in mine], dtype=np.int32)
        f_os = np.array([_code(values, k[3]) for k, _ in mine], dtype=np.int32)
        f_clicks = np.array([c for _, c in mine], dtype=np.int64)
        order = np.lexsort((f_ads, f_dev))
        minutes[minute * MINUTE_MS] = MinuteCounts(
            revision=1,
            ads=codes,
            clicks=np.array([unfiltered[c] for c in codes], dtype=np.int64),
            filtered={
                ROLLUP.table: FilteredRows(
                    f_ads[order], (f_dev[order], f_os[order]), f_clicks[order]
                )
            },
        )
    clock = StreamClock(newest_ms=3 * MINUTE_MS, watermark_ms=3 * MINUTE_MS, wall_ms=0)
    return Snapshot(clock, 0, 3 * MINUTE_MS, minutes)


def _code(vocabulary: Vocabulary, name: str) -> int:
    return int(vocabulary.encode(pa.array([name]))[0])


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
    snapshot = _snapshot(rows, ads, values)
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
