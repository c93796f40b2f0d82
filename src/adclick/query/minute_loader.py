"""Loading rollup minutes into the window index: one COPY per run of minutes and table,
parsed by pyarrow and encoded in C++, then split by minute with numpy (the hour index
loads its hours with hour_index.load_hour).

Rows are sorted, within each minute, by ad code, and those of a filtered rollup first by
their first dimension's code: a filter on it (country = US) selects slices instead of
masking all rows, and an ad's rows are found by binary search (query/ad_reads.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from psycopg import sql

from adclick.db.connect import Connection
from adclick.db.rollups import FilteredRollup
from adclick.db.shards import copied
from adclick.query.vocabulary import Codes, Vocabulary
from adclick.query.window import MINUTE_MS, from_ms

Clicks = npt.NDArray[np.int64]

# Minutes per COPY: bounds the memory of one load (a minute at the design scale is a few
# hundred thousand rows per table).
RUN_MINUTES = 20


@dataclass(frozen=True)
class LoadedRows:
    """Rows of one table for one minute: ads, dimension value codes, clicks."""

    ads: Codes
    values: tuple[Codes, ...]
    clicks: Clicks


def runs(minutes: Sequence[int]) -> Iterator[tuple[int, int]]:
    """Contiguous [start, end) runs of at most RUN_MINUTES of the given minutes."""
    ordered = sorted(minutes)
    if not ordered:
        return
    start = end = ordered[0]
    for minute in ordered[1:]:
        if minute == end + MINUTE_MS and (minute - start) // MINUTE_MS < RUN_MINUTES:
            end = minute
        else:
            yield start, end + MINUTE_MS
            start = end = minute
    yield start, end + MINUTE_MS


def load_table(
    conns: Sequence[Connection],
    table: str,
    dimensions: Sequence[str],
    start_ms: int,
    end_ms: int,
    ads: Vocabulary,
    values: Vocabulary,
) -> dict[int, LoadedRows]:
    """Every minute in [start_ms, end_ms) of one per-minute rollup table, by minute, from
    every shard (each holds other ads: their rows are sorted together below)."""
    keys = [sql.Identifier("ad_id"), *[sql.Identifier(d) for d in dimensions]]
    statement = sql.SQL(
        "COPY (SELECT (extract(epoch FROM minute) * 1000)::bigint, {keys}, clicks "
        "FROM {table} WHERE minute >= {start} AND minute < {end}) TO STDOUT (FORMAT CSV)"
    ).format(
        keys=sql.SQL(", ").join(keys),
        table=sql.Identifier(table),
        start=sql.Literal(from_ms(start_ms)),
        end=sql.Literal(from_ms(end_ms)),
    )
    names = ["bucket_ms", "ad_id", *[f"d{i}" for i in range(len(dimensions))], "clicks"]
    types = {"bucket_ms": pa.int64(), "clicks": pa.int64()}
    types |= {n: pa.string() for n in names if n not in types}
    data = copied(conns, statement, None, {n: types[n] for n in names})
    bucket_of = np.asarray(data.column("bucket_ms").to_numpy(), dtype=np.int64)
    ad_codes = ads.encode(data.column("ad_id"))
    value_codes = [values.encode(data.column(f"d{i}")) for i in range(len(dimensions))]
    clicks_of = np.asarray(data.column("clicks").to_numpy(), dtype=np.int64)
    # By minute, then by the first dimension's code (for slicing by it), then by ad code
    # (for finding an ad's rows: ad_reads.py).
    minute_of = ((bucket_of - start_ms) // MINUTE_MS).astype(np.int32)
    sort_keys = np.stack([ad_codes, *value_codes[:1], minute_of])
    order = np.lexsort(sort_keys)
    bucket_of = bucket_of[order]
    loaded = {}
    for b in range(start_ms, end_ms, MINUTE_MS):
        lo, hi = np.searchsorted(bucket_of, [b, b + MINUTE_MS])
        rows = order[lo:hi]
        loaded[b] = LoadedRows(
            ads=ad_codes[rows],
            values=tuple(v[rows] for v in value_codes),
            clicks=clicks_of[rows],
        )
    return loaded


def load_rollups(
    conns: Sequence[Connection],
    rollups: Sequence[FilteredRollup],
    start_ms: int,
    end_ms: int,
    ads: Vocabulary,
    values: Vocabulary,
) -> tuple[dict[int, LoadedRows], dict[str, dict[int, LoadedRows]]]:
    """clicks_1m and every filtered rollup over [start_ms, end_ms)."""
    unfiltered = load_table(conns, "clicks_1m", (), start_ms, end_ms, ads, values)
    filtered = {
        r.table: load_table(conns, r.table, r.dimensions, start_ms, end_ms, ads, values)
        for r in rollups
    }
    return unfiltered, filtered
