"""topAds over windows longer than the window index (up to a day), exactly.

A window [start, end) ending inside the window index splits into
- the minutes the index holds (exact, from its minute arrays),
- whole hours before them (exact, from the hour index), and
- at most two edge hours only partly inside the window (the start of the window, and the
  hour the index's first minute falls in, unless the window holds all of that hour, which
  is then taken whole from its hour array): their quarter hours give every ad's clicks
  in the partial range exactly where the range holds a quarter whole, and bound the
  quarters it cuts from above (hour_index.edge_bounds).

With ``base`` the exact part and ``bound`` the rest of the edges, let T be the K-th
largest base (K: the ranking kept, api_max_limit). At least K ads have at least T clicks,
so an ad whose base + bound is below T cannot be in the top K. Only the others (a few
thousand, at Zipf-skewed or uniform popularity) have the edge minutes their whole
quarters do not cover read from the rollup, by primary key (all of the edge where a
quarter is capped); their sums are then exact and the ranking is the exact one. Those
minutes are at most 14 at each end of an edge (which has up to 59), inside one
quarter-hour chunk of the rollup: one short range scan per candidate and end.
The edge read and a check that no hour changed since it was loaded share one snapshot.
A filter works the same way over a filtered rollup's minutes and hours.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from adclick.db.connect import Connection
from adclick.db.shards import snapshots
from adclick.query.filters import Filter, Plan, Source
from adclick.query.hour_index import (
    HourClicks,
    HourCounts,
    edge_bounds,
    floor_hour,
    hour_revisions,
    unknown_parts,
)
from adclick.query.ranking import RankedAd, Sums, top_n
from adclick.query.sql_source import ads_clicks_between
from adclick.query.window import HOUR_MS, Window
from adclick.query.window_index import FilteredRows, Snapshot, WindowIndex

log = logging.getLogger(__name__)

# More candidates than this (popularity close to uniform, or a window with no whole hour
# and no minute in the index) are left to SQL: one ANY() probe per candidate stops
# paying off against scanning the minutes.
MAX_CANDIDATES = 200_000


def rank_long_window(
    conns: Sequence[Connection],
    index: WindowIndex,
    snapshot: Snapshot,
    hours: Mapping[int, HourCounts],
    window: Window,
    plan: Plan,
    query_filter: Filter,
) -> list[RankedAd] | None:
    """The window's full ranking (index.max_limit ads), or None when SQL should answer.

    ``hours``: every hour overlapping the part of the window before the snapshot's first
    minute (HourIndex.hours_for). The window must end inside the snapshot.
    """
    ads = len(index.ads)  # after the snapshot and hours: no code they hold is newer
    base = np.zeros(ads, dtype=np.int64)
    minutes_from = _minutes_from(window, snapshot.start_ms)
    if window.end_ms > minutes_from:
        inner = Window(max(window.start_ms, minutes_from), window.end_ms)
        _add(base, index.sums(snapshot, inner, plan, query_filter))
    older_end = min(window.end_ms, minutes_from)
    whole: list[HourCounts] = []
    edges: dict[int, Window] = {}  # the minutes of the partial hours inside the window
    for hour_ms, counts in hours.items():
        start, end = max(window.start_ms, hour_ms), min(older_end, hour_ms + HOUR_MS)
        if end - start == HOUR_MS:
            whole.append(counts)
        elif end > start:
            edges[hour_ms] = Window(start, end)
    bound = np.zeros(ads, dtype=np.int64)
    # Per edge: the ads whose edge is read whole (a capped quarter), and what their
    # quarters told of it, which that read replaces.
    capped: dict[int, npt.NDArray[np.bool_]] = {}
    known: dict[int, Sums] = {}
    if plan.source is Source.ROLLUP:
        for counts in whole:
            _add(base, counts.clicks)
        for hour_ms, edge in edges.items():
            blocks = hours[hour_ms].blocks
            exact, rest, capped_ads = edge_bounds(blocks, hours[hour_ms].clicks, hour_ms, edge)
            known[hour_ms] = np.zeros(ads, dtype=np.int64)
            _add(known[hour_ms], exact)
            _add(bound, rest)
            capped[hour_ms] = _padded(capped_ads, ads)
    else:
        assert plan.rollup is not None
        table = plan.rollup.table
        _add(base, index.filtered_sums([c.filtered[table] for c in whole if c.filtered],
                                       plan, query_filter))  # fmt: skip
        for hour_ms, edge in edges.items():
            counts = hours[hour_ms]
            known[hour_ms] = np.zeros(ads, dtype=np.int64)
            capped[hour_ms] = np.zeros(ads, dtype=np.bool_)
            if not counts.filtered:
                continue  # an hour without rollups
            rows = counts.filtered[table]
            blocks = counts.filtered_blocks[table]
            exact, rest, capped_rows = edge_bounds(blocks, rows.clicks, hour_ms, edge)
            for into, per_row_clicks in ((known[hour_ms], exact), (bound, rest)):
                per_row = FilteredRows(rows.ads, rows.values, per_row_clicks)
                _add(into, index.filtered_sums([per_row], plan, query_filter))
            # An ad's edge is read whole when a row of it that the filter keeps is capped.
            per_row = FilteredRows(rows.ads, rows.values, capped_rows.astype(np.int64))
            capped[hour_ms] = _padded(index.filtered_sums([per_row], plan, query_filter) > 0, ads)
    for edge_known in known.values():
        base += edge_known  # a lower bound of each ad's clicks in the window

    candidates = _candidates(base, bound, index.max_limit)
    if len(candidates) > MAX_CANDIDATES:
        log.info("long window %s: %d candidates, left to SQL", window, len(candidates))
        return None
    with snapshots(conns):
        if not hours_unchanged(conns, hours):
            log.info("long window %s: an hour changed since it was loaded", window)
            return None
        names = index.ads.names
        # The candidates' unknown edge minutes are read by primary key and added to what
        # their quarters told: the minutes outside the edge's whole quarters or, for an
        # ad with a capped quarter, all of the edge in place of what its quarters told.
        for hour_ms, edge in edges.items() if len(candidates) else ():
            whole_edge = candidates[capped[hour_ms][candidates]]
            base[whole_edge] -= known[hour_ms][whole_edge]
            reads = [(edge, whole_edge)] if len(whole_edge) else []
            rest_only = candidates[~capped[hour_ms][candidates]]
            reads += [(part, rest_only) for part in unknown_parts(hour_ms, edge) if len(rest_only)]
            for part, codes in reads:
                wanted = [names[int(code)] for code in codes]
                for ad_id, clicks in ads_clicks_between(conns, wanted, part, plan, query_filter):
                    code = index.ads.code(ad_id)
                    assert code is not None  # every candidate was encoded
                    base[code] += clicks
    return top_n(base, names, index.max_limit)


def _minutes_from(window: Window, first_minute_ms: int) -> int:
    """Where the window's part read from the index's minutes starts: its first minute or,
    when the window holds the whole hour that minute falls in, the next hour. That hour
    is then one exact hour array instead of an edge whose minutes are read by SQL."""
    hour = floor_hour(first_minute_ms)
    if hour < first_minute_ms and window.start_ms <= hour and window.end_ms >= hour + HOUR_MS:
        return hour + HOUR_MS
    return first_minute_ms


def hours_unchanged(conns: Sequence[Connection], hours: Mapping[int, HourCounts]) -> bool:
    """Whether every hour is still at the revision it was loaded at: if one is not (a late
    click, a recalculation), what it holds is no longer the hour and SQL answers."""
    if not hours:
        return True
    current = hour_revisions(conns, min(hours), max(hours) + HOUR_MS)
    return all(current.get(h, 0) == c.revision for h, c in hours.items())


def hour_revision_key(hours: Mapping[int, HourCounts]) -> tuple[int, ...]:
    """What a cached long-window ranking depends on besides the index's minutes."""
    return tuple(c.revision for _, c in sorted(hours.items()))


def _candidates(base: Sums, bound: Sums, keep: int) -> Sums:
    """Ads whose edge clicks could still put them into the top ``keep``."""
    partial = np.flatnonzero(bound)
    if len(partial) == 0:
        return partial
    clicked = np.count_nonzero(base)
    threshold = np.partition(base, len(base) - keep)[len(base) - keep] if clicked >= keep else 0
    return partial[base[partial] + bound[partial] >= max(threshold, 1)]


def _padded(flags: npt.NDArray[np.bool_], size: int) -> npt.NDArray[np.bool_]:
    """``flags`` per ad code, False for the codes past its end (ads newer than its hour)."""
    out = np.zeros(size, dtype=np.bool_)
    out[: min(size, len(flags))] = flags[:size]
    return out


def _add(total: Sums, part: Sums | HourClicks) -> None:
    """total += part, over the codes both know (arrays grow with the vocabulary)."""
    size = min(len(total), len(part))
    total[:size] += part[:size]
