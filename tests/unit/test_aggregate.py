"""Rollup deltas computed in the worker: clicks per (minute, ad, every dimension)."""

from __future__ import annotations

from collections import Counter

from adclick.db.rollups import FilteredRollup
from adclick.ingest.aggregate import aggregate, delta_dimensions

T0 = 1_720_483_200_000  # 2024-07-09 00:00 UTC, an hour boundary
MIN = 60_000


def row(ts_ms: int, ad: str, country: str) -> tuple[int, str, str, str, str, str, str, int, int]:
    return (ts_ms, f"c{ts_ms}{ad}", ad, "u", "1.2.3.4", country, "{}", 0, 0)


def test_the_deltas_hold_every_dimension_of_every_filtered_rollup_once() -> None:
    rollups = [
        FilteredRollup(("country",)),
        FilteredRollup(("country", "device")),
        FilteredRollup(("device",)),
    ]
    assert delta_dimensions(rollups) == ("country", "device")
    assert delta_dimensions([]) == ()


def test_deltas_per_minute_ad_and_dimension_values() -> None:
    rows = [
        row(T0 + 1_000, "a", "US"),
        row(T0 + 59_999, "a", "US"),  # same minute, same values: summed
        row(T0 + 30_000, "a", "DE"),
        row(T0 + MIN, "a", "US"),  # next minute
        row(T0 + 5, "b", "US"),
    ]
    attributes = [{"device": "ios"}, {"device": "ios"}, {}, {"device": "web"}, {"os": "x"}]
    deltas = aggregate(rows, attributes, ("country", "device"))
    # A missing attribute counts under '' (as the SQL of the filtered rollups does).
    assert deltas.clicks == Counter(
        {
            (T0, "a", "US", "ios"): 2,
            (T0, "a", "DE", ""): 1,
            (T0 + MIN, "a", "US", "web"): 1,
            (T0, "b", "US", ""): 1,
        }
    )
    columns = deltas.columns()
    assert len(columns.minutes) == len(columns.ads) == len(columns.clicks) == 4
    assert [len(values) for values in columns.dimensions] == [4, 4]
    # Element i of every column is one delta.
    rebuilt = zip(columns.minutes, columns.ads, *columns.dimensions, strict=True)
    assert dict(zip(rebuilt, columns.clicks, strict=True)) == deltas.clicks


def test_without_filtered_rollups_the_deltas_are_per_minute_and_ad() -> None:
    deltas = aggregate([row(T0, "a", "US"), row(T0 + 1, "a", "DE")], [{}, {}], ())
    assert deltas.clicks == Counter({(T0, "a"): 2})
    assert deltas.columns().dimensions == []


def test_nothing_inserted_means_no_deltas() -> None:
    deltas = aggregate([], [], ("country",))
    assert not deltas.clicks
    columns = deltas.columns()
    assert columns.minutes == [] and columns.dimensions == [[]] and columns.clicks == []
