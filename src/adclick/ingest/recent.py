"""A bounded memory of recently committed clicks, so most duplicates never reach the database.

A hit is certain: the click is committed (or in the batch being committed, which the
worker clears on failure), so the copy is dropped as a duplicate. A miss proves nothing
(the original may be older than the memory, or from before a restart); the database's
unique key still decides, on the slower path. The memory is two generations of sets:
lookups check both, and when the newer fills up the older is dropped whole, which bounds
memory without per-entry bookkeeping.
"""

from __future__ import annotations

from collections.abc import Iterable

ClickKey = tuple[int, str]  # (event time in ms, click_id): the raw table's unique key


class RecentClicks:
    """The keys of up to ``2 * generation_size`` recent clicks."""

    def __init__(self, generation_size: int) -> None:
        self.generation_size = generation_size
        self._newer: set[ClickKey] = set()
        self._older: set[ClickKey] = set()

    def __contains__(self, key: ClickKey) -> bool:
        return key in self._newer or key in self._older

    def add_all(self, keys: Iterable[ClickKey]) -> None:
        """Remember these keys (clicks of a batch about to be committed)."""
        if self.generation_size <= 0:
            return
        self._newer.update(keys)
        if len(self._newer) >= self.generation_size:
            self._older, self._newer = self._newer, set()

    def discard_all(self, keys: Iterable[ClickKey]) -> None:
        """Forget these keys (clicks that were not committed after all)."""
        for key in keys:
            self._newer.discard(key)
            self._older.discard(key)

    def clear(self) -> None:
        """Forget everything (after a failed batch, whose keys may be in here)."""
        self._newer.clear()
        self._older.clear()

    def __len__(self) -> int:
        return len(self._newer) + len(self._older)
