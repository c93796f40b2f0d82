"""The hour index's quarter hours bound a window's edge inside an hour (hour_index.edge_bounds):
what they call known is exact, and known + rest is never below the edge's clicks; and
the known part plus the minutes outside the whole quarters (unknown_parts) is the edge's
exact count, except where a quarter is capped (edge_bounds says so), whose edge is read whole."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from adclick.query.hour_index import BLOCK_CAP, BLOCKS, edge_bounds, unknown_parts
from adclick.query.window import HOUR_MS, MINUTE_MS, Window

HOUR = 1_000 * HOUR_MS  # some whole hour


def quarters_of(per_minute: np.ndarray) -> np.ndarray:
    """(ads, 60) clicks per minute -> (BLOCKS, ads) clicks per quarter hour."""
    return per_minute.reshape(len(per_minute), BLOCKS, -1).sum(axis=2).T


minutes = st.integers(min_value=2, max_value=30).flatmap(
    lambda ads: arrays(
        np.int64,
        (ads, 60),
        # Mostly small counts, some large enough to cap a quarter (15 x 40 > 255).
        elements=st.one_of(st.integers(0, 3), st.integers(0, 40)),
    )
)
edges = st.tuples(st.integers(0, 59), st.integers(1, 60)).filter(lambda e: e[0] < e[1])


@given(per_minute=minutes, edge=edges)
def test_known_is_exact_and_known_plus_rest_bounds_the_edge(
    per_minute: np.ndarray, edge: tuple[int, int]
) -> None:
    first, end = edge
    quarters = quarters_of(per_minute)
    blocks = np.minimum(quarters, BLOCK_CAP).astype(np.uint8)
    totals = per_minute.sum(axis=1)
    window = Window(HOUR + first * MINUTE_MS, HOUR + end * MINUTE_MS)
    known, rest, _capped = edge_bounds(blocks, totals, HOUR, window)
    in_edge = per_minute[:, first:end].sum(axis=1)
    whole_quarters = [j for j in range(BLOCKS) if first <= 15 * j and 15 * (j + 1) <= end]
    assert (known <= in_edge).all()
    assert (in_edge <= known + rest).all()
    for ad in range(len(per_minute)):
        involved = [j for j in range(BLOCKS) if 15 * j < end and first < 15 * (j + 1)]
        if all(quarters[j, ad] < BLOCK_CAP for j in involved):
            # Nothing capped: the whole quarters are the known part, exactly.
            assert known[ad] == quarters[whole_quarters, ad].sum()
            assert rest[ad] == quarters[[j for j in involved if j not in whole_quarters], ad].sum()
        else:
            assert (known[ad], rest[ad]) == (0, totals[ad])


def test_an_edge_of_whole_quarters_is_known_exactly() -> None:
    per_minute = np.arange(3 * 60, dtype=np.int64).reshape(3, 60) % 5
    blocks = quarters_of(per_minute).astype(np.uint8)
    known, rest, _capped = edge_bounds(
        blocks, per_minute.sum(axis=1), HOUR, Window(HOUR + 15 * MINUTE_MS, HOUR + HOUR_MS)
    )
    assert known.tolist() == per_minute[:, 15:].sum(axis=1).tolist()
    assert rest.tolist() == [0, 0, 0]


@given(per_minute=minutes, edge=edges)
def test_known_plus_the_unknown_minutes_is_the_edge_unless_capped(
    per_minute: np.ndarray, edge: tuple[int, int]
) -> None:
    first, end = edge
    blocks = np.minimum(quarters_of(per_minute), BLOCK_CAP).astype(np.uint8)
    window = Window(HOUR + first * MINUTE_MS, HOUR + end * MINUTE_MS)
    known, _, capped = edge_bounds(blocks, per_minute.sum(axis=1), HOUR, window)
    parts = unknown_parts(HOUR, window)
    read = np.zeros(len(per_minute), dtype=np.int64)
    for part in parts:
        assert window.start_ms <= part.start_ms < part.end_ms <= window.end_ms
        read += per_minute[
            :, (part.start_ms - HOUR) // MINUTE_MS : (part.end_ms - HOUR) // MINUTE_MS
        ].sum(axis=1)
    in_edge = per_minute[:, first:end].sum(axis=1)
    assert (known + read == in_edge)[~capped].all()
    assert (known == 0)[capped].all()
    # At most a cut quarter's 14 minutes at each end are read, where nothing is capped.
    assert all(part.minutes <= 14 for part in parts) or parts == [window]
