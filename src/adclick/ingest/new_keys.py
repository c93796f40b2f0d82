"""Which (minute, ad) rollup rows a writer knows are not in the database yet.

Adding a delta with ``INSERT ... ON CONFLICT DO UPDATE`` first looks the key up in the
unique index, then inserts speculatively. A key known to be new can skip both with a
plain INSERT, which was 26-36% cheaper per row (docs/benchmarks.md). With uniformly
popular ads nearly every (minute, ad) of a batch is new, and the per-minute rollups are
most of the database's work.

A key is known to be new when its minute is at or after ``floor_ms`` and this writer has
not written it since. ``floor_ms`` starts past the newest event time stored for the
partitions the writer was assigned: every stored row of their ads is older, because the
message key is the ad, so one partition carries all clicks of an ad. The writer
remembers the ads it writes per minute (as 64-bit hashes, sorted), forgets minutes
older than ``KEEP_MS`` behind the newest, and raises ``floor_ms`` past what it forgot.

A wrong claim costs time, never a count: the unique key refuses the plain INSERT and
the writer repeats the statement as an upsert (adclick.ingest.writer). Claims go wrong
only when something else wrote the key: a producer keyed by something other than the
ad, a worker that lost its partitions but had a batch in flight, a recalculation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from adclick.time_units import MINUTE_MS

# Minutes of stream time remembered behind the newest: later arrivals for older minutes
# (late events) take the upsert. Memory is 8 bytes per (minute, ad) in this window.
KEEP_MS = 3 * MINUTE_MS
# After a refused claim, how much stream time passes before claiming again.
BACKOFF_MS = 10 * MINUTE_MS

NO_CLAIMS = 2**63 - 1  # a floor no minute reaches
ANY_MINUTE = -(2**63)

Int64Array = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def floor_after(newest_ms: list[int | None]) -> int:
    """The first minute after the newest of these event times (any minute if none)."""
    known = [ms for ms in newest_ms if ms is not None]
    if not known:
        return ANY_MINUTE
    newest = max(known)
    return newest - newest % MINUTE_MS + MINUTE_MS


@dataclass(frozen=True)
class MinuteAdKeys:
    """A batch's (minute, ad) keys as arrays, built once for the look-up and the memory."""

    minute: Int64Array  # epoch ms
    ad: Int64Array  # 64-bit hashes of the ad ids

    @classmethod
    def of(cls, minutes: list[int], ads: list[str]) -> MinuteAdKeys:
        # Python's string hash: cached on each str (the batch's Counter computed it),
        # stable within the process. Two ads with one hash only make a new key look
        # written.
        return cls(
            np.array(minutes, dtype=np.int64),
            np.fromiter(map(hash, ads), dtype=np.int64, count=len(ads)),
        )


class NewKeyTracker:
    """The (minute, ad) keys one writer wrote since ``floor_ms``, to tell new keys.

    Starts claiming nothing until :meth:`reset` gives it a floor.
    """

    def __init__(self) -> None:
        self.floor_ms = NO_CLAIMS
        self._ads_by_minute: dict[int, Int64Array] = {}  # sorted ad hashes per minute
        self._newest_minute = ANY_MINUTE

    def reset(self, floor_ms: int) -> None:
        """Claim only minutes from ``floor_ms`` on and forget the keys remembered. The
        newest minute seen stays: :meth:`refused` backs off from it."""
        self.floor_ms = floor_ms
        self._ads_by_minute.clear()

    def refused(self, keys: MinuteAdKeys) -> None:
        """A claim about these keys was wrong: stop claiming for a while, then afresh."""
        if len(keys.minute):
            self._newest_minute = max(self._newest_minute, int(keys.minute.max()))
        self.reset(max(self.floor_ms, self._newest_minute + BACKOFF_MS))

    def new_mask(self, keys: MinuteAdKeys) -> BoolArray:
        """For each key: True when it is certainly not stored."""
        minute, ad = keys.minute, keys.ad
        mask = minute >= self.floor_ms
        if not mask.any():
            return mask
        for m in np.unique(minute[mask]).tolist():
            seen = self._ads_by_minute.get(m)
            if seen is None:
                continue
            of_minute = np.flatnonzero(minute == m)
            mask[of_minute] = ~_contains(seen, ad[of_minute])
        return mask

    def remember(self, keys: MinuteAdKeys) -> None:
        """These keys are in the database now (or about to be, in this transaction)."""
        minute, ad = keys.minute, keys.ad
        if not len(minute):
            return
        self._newest_minute = max(self._newest_minute, int(minute.max()))
        # Forget what fell out of the window; claims stop where memory stops.
        self.floor_ms = max(self.floor_ms, self._newest_minute - KEEP_MS)
        for m in [m for m in self._ads_by_minute if m < self.floor_ms]:
            del self._ads_by_minute[m]
        kept = minute >= self.floor_ms
        if not kept.any():
            return
        for m in np.unique(minute[kept]).tolist():
            added = np.unique(ad[minute == m])  # sorted; an ad repeats once per dimension value
            seen = self._ads_by_minute.get(m)
            # Two sorted runs: the stable sort (timsort) merges them in linear time.
            self._ads_by_minute[m] = (
                added if seen is None else np.sort(np.concatenate((seen, added)), kind="stable")
            )

    def __len__(self) -> int:
        return sum(len(ads) for ads in self._ads_by_minute.values())


def _contains(sorted_values: Int64Array, values: Int64Array) -> BoolArray:
    at = np.searchsorted(sorted_values, values)
    found = sorted_values[np.minimum(at, len(sorted_values) - 1)] == values
    return np.asarray(found & (at < len(sorted_values)), dtype=np.bool_)
