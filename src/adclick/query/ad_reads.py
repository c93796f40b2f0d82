"""Clicks of given ads, minute by minute, from the window index: adClicks and adsClicks
without SQL for windows the index holds.

Dashboards ask for the latest counts of every ad every minute (2 million ads: over
30,000 ad reads a second at the design scale); each such read by SQL is an index probe
per minute chunk and a pooled connection. The window index already holds every complete
minute of the last hours as arrays sorted by ad code (minute_loader.py), so an ad's
clicks in a minute are a binary search, and a thousand ads' a vectorised one.

Filtered reads find the rows of the filter's values of the rollup's first dimension (a
slice, sorted by ad code within it), then each ad's rows in the slice; with more
dimensions in the rollup, an ad has several rows in a slice, summed after the other
conditions. A filter that leaves the first dimension free would need every row of the
minute: such reads are left to SQL (``answerable`` says which).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from adclick.query.filters import Filter, Plan, Source
from adclick.query.vocabulary import Codes, Vocabulary
from adclick.query.window import Window
from adclick.query.window_index import FilteredRows, MinuteCounts, Snapshot

Counts = npt.NDArray[np.int64]  # (ads, minutes) or (ads,)


def answerable(plan: Plan, query_filter: Filter) -> bool:
    """Whether the window index can find the plan's rows of an ad without a scan."""
    if plan.source is Source.ROLLUP:
        return True
    if plan.source is Source.RAW or plan.rollup is None:
        return False
    return plan.rollup.dimensions[0] in dict(query_filter.conditions)


def ad_codes(ads: Vocabulary, ad_ids: Sequence[str]) -> Codes:
    """The codes of ``ad_ids``; -1 for an ad the index has never seen (no clicks)."""
    return np.array([_code(ads.code(a)) for a in ad_ids], dtype=np.int32)


def minute_counts(
    snapshot: Snapshot,
    window: Window,
    plan: Plan,
    query_filter: Filter,
    codes: Codes,
    values: Vocabulary,
) -> Counts:
    """Clicks of each ad code (rows) in each minute of the window (columns); the snapshot
    must cover the window and ``answerable`` must hold."""
    wanted = _wanted(plan, query_filter, values)
    out = np.zeros((len(codes), window.minutes), dtype=np.int64)
    for column, minute_ms in enumerate(window.minute_starts()):
        minute = snapshot.minutes[minute_ms]
        out[:, column] = _in_minute(minute, plan, wanted, codes)
    return out


def _in_minute(minute: MinuteCounts, plan: Plan, wanted: dict[int, Codes], codes: Codes) -> Counts:
    if plan.rollup is None:
        return _lookup(minute.ads, minute.clicks, codes)
    rows = minute.filtered.get(plan.rollup.table)
    if rows is None:  # a minute without clicks
        return np.zeros(len(codes), dtype=np.int64)
    total = np.zeros(len(codes), dtype=np.int64)
    for first_value in wanted[0]:
        lo, hi = np.searchsorted(rows.values[0], [first_value, first_value + 1])
        if hi > lo:
            total += _in_slice(rows, slice(int(lo), int(hi)), wanted, codes)
    return total


def _in_slice(rows: FilteredRows, part: slice, wanted: dict[int, Codes], codes: Codes) -> Counts:
    """Clicks of each code among the rows ``part`` (one first-dimension value, sorted by
    ad code) that meet the conditions on the other dimensions."""
    ads = rows.ads[part]
    clicks = np.asarray(rows.clicks[part], dtype=np.int64)
    if len(rows.values) == 1:  # one row per ad at most
        return _lookup(ads, clicks, codes)
    keep = np.ones(len(ads), dtype=bool)
    for position, value_codes in wanted.items():
        if position:
            keep &= np.isin(rows.values[position][part], value_codes)
    running = np.concatenate(([0], np.cumsum(np.where(keep, clicks, 0))))
    lo = np.searchsorted(ads, codes, side="left")
    hi = np.searchsorted(ads, codes, side="right")
    return np.asarray(running[hi] - running[lo], dtype=np.int64)


def _lookup(ads: Codes, clicks: npt.NDArray[np.integer], codes: Codes) -> Counts:
    """clicks[i] of the row whose ad is each code (ads sorted, unique), else 0."""
    if len(ads) == 0:
        return np.zeros(len(codes), dtype=np.int64)
    at = np.minimum(np.searchsorted(ads, codes), len(ads) - 1)
    return np.where(ads[at] == codes, clicks[at], 0).astype(np.int64)


def _wanted(plan: Plan, query_filter: Filter, values: Vocabulary) -> dict[int, Codes]:
    """Per position in the plan's rollup, the codes of the values its condition lists
    (values never seen have no code and no rows)."""
    if plan.rollup is None:
        return {}
    conditions = dict(query_filter.conditions)
    return {
        position: np.array(
            sorted(c for v in conditions[dim] if (c := values.code(v)) is not None),
            dtype=np.int32,
        )
        for position, dim in enumerate(plan.rollup.dimensions)
        if dim in conditions
    }


def _code(code: int | None) -> int:
    return -1 if code is None else code
