"""Top-N of dense per-ad sums, ties broken by ad id (pure, numpy)."""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Sums = npt.NDArray[np.int64]


@dataclass(frozen=True)
class RankedAd:
    rank: int
    ad_id: str
    clicks: int


def top_n(sums: Sums, ad_ids: Sequence[str], limit: int) -> list[RankedAd]:
    """The ``limit`` ads with the most clicks (ads without clicks are never ranked).

    ``sums[i]`` are the clicks of ``ad_ids[i]``. Equal counts rank by ad id, so the
    answer is one list, whatever order the ads were first seen in. O(ads) to find the
    candidates; only the ties at the cut-off are compared by id.
    """
    clicked = np.flatnonzero(sums)
    if len(clicked) > limit:
        values = sums[clicked]
        cut = np.partition(values, len(values) - limit)[len(values) - limit]
        above = clicked[values > cut]
        tied = clicked[values == cut]
        chosen = [int(i) for i in above]
        chosen += heapq.nsmallest(
            limit - len(chosen), (int(i) for i in tied), key=ad_ids.__getitem__
        )
    else:
        chosen = [int(i) for i in clicked]
    chosen.sort(key=lambda i: (-int(sums[i]), ad_ids[i]))
    return [RankedAd(rank, ad_ids[i], int(sums[i])) for rank, i in enumerate(chosen, start=1)]
