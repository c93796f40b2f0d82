"""The stream clock read from standbys (ADCLICK_DATABASE_READ_URL, a shard's read_url):
a standby that lags must never make its partitions look idle.

A partition is idle when its last batch is older than the newest batch of any partition
by more than ADCLICK_IDLE_PARTITION_TIMEOUT; idle, it stops holding the watermark back.
Read from a standby that lags, every partition of its shard looks that old, so windows
were answered as complete without its clicks. With the primaries' clocks, a partition is
idle only if its primary says so and the standby has its last batch.
"""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from adclick.query.window_index import PartitionClock, stream_clock_of

IDLE = timedelta(seconds=30)
IDLE_MS = 30_000
NOW_MS = 10_000_000


@st.composite
def primaries_and_standbys(
    draw: st.DrawFn,
) -> tuple[list[PartitionClock], list[PartitionClock]]:
    """Every partition's clock on its primary, and as a standby that may lag shows it:
    the same, an older batch of it (any lag), or none yet."""
    primary, standby = [], []
    for partition in range(draw(st.integers(1, 6))):
        updated = NOW_MS - draw(st.integers(0, 4 * IDLE_MS))
        watermark = updated - draw(st.integers(0, 60_000))
        clock = PartitionClock(partition, watermark + 5_000, watermark, updated)
        primary.append(clock)
        seen = draw(st.sampled_from(["current", "behind", "nothing"]))
        if seen == "current":
            standby.append(clock)
        elif seen == "behind":
            lag = draw(st.integers(1, 4 * IDLE_MS))
            older = draw(st.integers(1, 60_000))
            standby.append(
                PartitionClock(
                    partition, watermark - older + 5_000, watermark - older, updated - lag
                )
            )
    return primary, standby


@given(primaries_and_standbys())
def test_a_partition_the_standby_lags_on_always_holds_the_watermark_back(
    clocks: tuple[list[PartitionClock], list[PartitionClock]],
) -> None:
    primary, standby = clocks
    if not standby:
        return
    clock = stream_clock_of(standby, NOW_MS, IDLE, primary)
    current = set(primary)
    shown = {c.partition for c in standby}
    for seen in standby:
        if seen not in current and seen.watermark_ms is not None:
            # Complete only up to what the standby has of it.
            assert clock.watermark_ms is not None and clock.watermark_ms <= seen.watermark_ms
    if {c.partition for c in primary} - shown:
        assert clock.watermark_ms is not None and clock.watermark_ms <= 0


@given(primaries_and_standbys())
def test_a_current_standby_answers_as_its_primary(
    clocks: tuple[list[PartitionClock], list[PartitionClock]],
) -> None:
    primary, _standby = clocks
    assert stream_clock_of(primary, NOW_MS, IDLE, primary) == stream_clock_of(primary, NOW_MS, IDLE)


def test_a_lagging_shard_does_not_look_idle() -> None:
    # Shard A (partitions 0, 1) is read from a standby 40 s behind; shard B (2, 3) is
    # current. A's partitions were busy on the primary all along.
    primary = [PartitionClock(p, NOW_MS - 1_000, NOW_MS - 2_000, NOW_MS - 500) for p in range(4)]
    behind = [PartitionClock(p, NOW_MS - 41_000, NOW_MS - 42_000, NOW_MS - 40_500) for p in (0, 1)]
    standby = [*behind, *primary[2:]]
    assert stream_clock_of(standby, NOW_MS, IDLE).watermark_ms == NOW_MS - 2_000  # idle!
    assert stream_clock_of(standby, NOW_MS, IDLE, primary).watermark_ms == NOW_MS - 42_000
    # Partitions idle on the primary, their last batch replayed, stay idle.
    idle_primary = [
        PartitionClock(p, NOW_MS - 91_000, NOW_MS - 92_000, NOW_MS - 90_000) for p in (0, 1)
    ]
    quiet = [*idle_primary, *primary[2:]]
    assert stream_clock_of(quiet, NOW_MS, IDLE, quiet).watermark_ms == NOW_MS - 2_000
