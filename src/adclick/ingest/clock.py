"""Per-partition event-time clocks: lateness and the dedup horizon, by stream time.

Both are measured against the newest event time seen on the partition, never the wall
clock, so replaying yesterday's logs classifies every event the way live traffic did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Timeliness(Enum):
    """How an event's time relates to its partition's newest event time."""

    ON_TIME = "on_time"
    LATE = "late"  # still counted
    BEYOND_HORIZON = "beyond_horizon"  # cannot be deduplicated: dead-lettered


@dataclass
class PartitionClocks:
    """Newest event time (epoch ms) per partition, and the rules that use it."""

    lateness_ms: int
    horizon_ms: int
    newest_ms: dict[int, int] = field(default_factory=dict)

    def observe(self, partition: int, ts_ms: int) -> Timeliness:
        """Classify an event and advance the partition's clock if it is the newest."""
        newest = self.newest_ms.get(partition)
        if newest is None or ts_ms >= newest:
            self.newest_ms[partition] = ts_ms
            return Timeliness.ON_TIME
        if ts_ms < newest - self.horizon_ms:
            return Timeliness.BEYOND_HORIZON
        if ts_ms < newest - self.lateness_ms:
            return Timeliness.LATE
        return Timeliness.ON_TIME

    def watermark_ms(self, partition: int) -> int | None:
        """Event time up to which the partition is complete (newest minus lateness)."""
        newest = self.newest_ms.get(partition)
        return None if newest is None else newest - self.lateness_ms

    def copy(self) -> PartitionClocks:
        """An independent copy, so a batch that fails to commit leaves no trace."""
        return PartitionClocks(self.lateness_ms, self.horizon_ms, dict(self.newest_ms))
