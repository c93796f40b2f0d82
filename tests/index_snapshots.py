"""Window-index snapshots built from plain rows, for the query core's unit tests: three
minutes of a rollup by (device, os), as adclick.query.minute_loader lays them out."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
from hypothesis import strategies as st

from adclick.db.rollups import FilteredRollup
from adclick.query.vocabulary import Vocabulary
from adclick.query.window import MINUTE_MS, StreamClock
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


def snapshot_of(rows: dict[tuple[Any, ...], int], ads: Vocabulary, values: Vocabulary) -> Snapshot:
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
