"""Rollup deltas computed in the worker: the same sums the SQL rollups used to compute."""

from __future__ import annotations

from collections import Counter

from adclick.db.rollups import FilteredRollup
from adclick.ingest.aggregate import aggregate

T0 = 1_720_483_200_000  # 2024-07-09 00:00 UTC, an hour boundary
MIN = 60_000


def row(ts_ms: int, ad: str, country: str) -> tuple[int, str, str, str, str, str, str, int, int]:
    return (ts_ms, f"c{ts_ms}{ad}", ad, "u", "1.2.3.4", country, "{}", 0, 0)


def test_deltas_per_minute_hour_and_dimension_set() -> None:
    rows = [
        row(T0 + 1_000, "a", "US"),
        row(T0 + 59_999, "a", "DE"),  # same minute
        row(T0 + MIN, "a", "US"),  # next minute, same hour
        row(T0 + 60 * MIN, "a", "US"),  # next hour
        row(T0 + 5, "b", "US"),
    ]
    attributes = [{"device": "ios"}, {}, {"device": "ios"}, {"device": "web"}, {"os": "x"}]
    by_country = FilteredRollup(("country",))
    by_device = FilteredRollup(("device",))
    by_both = FilteredRollup(("country", "device"))
    deltas = aggregate(rows, attributes, [by_country, by_device, by_both])
    assert deltas.per_minute == Counter(
        {(T0, "a"): 2, (T0 + MIN, "a"): 1, (T0 + 60 * MIN, "a"): 1, (T0, "b"): 1}
    )
    assert deltas.per_hour == Counter({(T0, "a"): 3, (T0 + 60 * MIN, "a"): 1, (T0, "b"): 1})
    country, device, both = deltas.filtered
    assert country == Counter(
        {
            (T0, "a", "US"): 1,
            (T0, "a", "DE"): 1,
            (T0 + MIN, "a", "US"): 1,
            (T0 + 60 * MIN, "a", "US"): 1,
            (T0, "b", "US"): 1,
        }
    )
    # A missing attribute counts under '' (as the SQL of the filtered rollups does).
    assert device[(T0, "a", "ios")] == 1 and device[(T0, "a", "")] == 1
    assert device[(T0, "b", "")] == 1
    assert both[(T0 + 60 * MIN, "a", "US", "web")] == 1
    for counter in (deltas.per_minute, deltas.per_hour, *deltas.filtered):
        assert sum(counter.values()) == len(rows)


def test_nothing_inserted_means_no_deltas() -> None:
    deltas = aggregate([], [], [FilteredRollup(("country",))])
    assert not deltas.per_minute and not deltas.per_hour and deltas.filtered == [Counter()]
