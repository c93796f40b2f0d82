"""Query windows: half-open, minute-aligned UTC ranges, and the stream's clock.

"Now" is stream time, the newest event time ingest has committed, not the wall clock:
that is what "the last M minutes" means for a replay of yesterday's logs, and for live
traffic the two are a few seconds apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from adclick.query.errors import ErrorCode, QueryError

# Re-exported: query code names the buckets through this module.
from adclick.time_units import HOUR_MS as HOUR_MS
from adclick.time_units import MINUTE_MS as MINUTE_MS


def to_ms(moment: datetime) -> int:
    """Epoch milliseconds of an aware datetime (floored); a naive one is taken as UTC.

    In integers: a float timestamp rounds 9999-12-31T23:59:59.9999 up into year 10000,
    which from_ms cannot make a datetime of.
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _ONE_MS


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def from_ms(ms: int) -> datetime:
    """The UTC datetime of epoch milliseconds."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


@dataclass(frozen=True)
class StreamClock:
    """Where the stream is: its newest committed event time and its global watermark.

    ``newest_ms`` is None before the first event; ``watermark_ms`` is the minimum of the
    partitions' watermarks, up to which results are complete.
    """

    newest_ms: int | None
    watermark_ms: int | None
    wall_ms: int

    @property
    def now_ms(self) -> int:
        """Stream time, or the wall clock while nothing has been ingested."""
        return self.newest_ms if self.newest_ms is not None else self.wall_ms

    @property
    def current_minute_ms(self) -> int:
        """Start of the minute stream time is in: the newest, incomplete minute."""
        return self.now_ms - self.now_ms % MINUTE_MS


@dataclass(frozen=True)
class Window:
    """The minutes [start_ms, end_ms)."""

    start_ms: int
    end_ms: int

    @property
    def minutes(self) -> int:
        return (self.end_ms - self.start_ms) // MINUTE_MS

    def minute_starts(self) -> range:
        return range(self.start_ms, self.end_ms, MINUTE_MS)

    def complete(self, clock: StreamClock) -> bool:
        """Whether the watermark has passed the window's end: no later event can change it."""
        return clock.watermark_ms is not None and clock.watermark_ms >= self.end_ms


# How far after stream time a window may end: far enough for a dashboard of the current
# day, near enough that every bound stays a valid datetime (a window ending in year 9999
# with a negative offset is not one).
MAX_AHEAD_MS = 24 * 60 * MINUTE_MS


def resolve_window(
    clock: StreamClock,
    *,
    last_minutes: int | None,
    start: datetime | None,
    end: datetime | None,
    retention: timedelta,
) -> Window:
    """The window a query asks for: ``last_minutes`` or ``start``/``end``, not both.

    ``last_minutes`` M means the M most recent complete minutes: those before the minute
    stream time is in. A window may start at most ``retention`` before that minute and end
    at most a day after it; messages quote the client's own values, since a bound out of
    range may not be a datetime at all.
    """
    now_ms = clock.current_minute_ms
    retention_ms = int(retention.total_seconds() * 1000)
    oldest_ms = now_ms - retention_ms
    if last_minutes is not None:
        if start is not None or end is not None:
            raise QueryError(ErrorCode.BAD_WINDOW, "give either lastMinutes or from/to, not both")
        if last_minutes < 1:
            raise QueryError(ErrorCode.BAD_WINDOW, "lastMinutes must be at least 1")
        if last_minutes * MINUTE_MS > retention_ms:
            raise QueryError(
                ErrorCode.WINDOW_OUT_OF_RANGE,
                f"lastMinutes {last_minutes:,} reaches back further than the retention of "
                f"per-minute rollups ({retention_ms // MINUTE_MS:,} minutes, "
                f"{retention.days} days)",
            )
        return Window(now_ms - last_minutes * MINUTE_MS, now_ms)
    if start is None or end is None:
        raise QueryError(ErrorCode.BAD_WINDOW, "a window needs lastMinutes, or both from and to")
    start_ms, end_ms = to_ms(start), to_ms(end)
    for name, given, ms in (("from", start, start_ms), ("to", end, end_ms)):
        if ms % MINUTE_MS:
            raise QueryError(
                ErrorCode.BAD_WINDOW,
                f"{name} must be a whole minute (seconds 0), got {given.isoformat()}",
            )
    if end_ms <= start_ms:
        raise QueryError(ErrorCode.BAD_WINDOW, "to must be after from (windows are half-open)")
    if start_ms < oldest_ms:
        raise QueryError(
            ErrorCode.WINDOW_OUT_OF_RANGE,
            f"the window starts at {start.isoformat()}, before the retention of per-minute "
            f"rollups ({retention.days} days) allows: the oldest start is "
            f"{from_ms(oldest_ms).isoformat()}",
        )
    if end_ms > now_ms + MAX_AHEAD_MS:
        raise QueryError(
            ErrorCode.WINDOW_OUT_OF_RANGE,
            f"the window ends at {end.isoformat()}, more than a day after stream time "
            f"({from_ms(now_ms).isoformat()})",
        )
    return Window(start_ms, end_ms)
