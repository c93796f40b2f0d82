"""Query windows: half-open, minute-aligned UTC ranges, and the stream's clock.

"Now" is stream time, the newest event time ingest has committed, not the wall clock:
that is what "the last M minutes" means for a replay of yesterday's logs, and for live
traffic the two are a few seconds apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from adclick.query.errors import ErrorCode, QueryError

MINUTE_MS = 60_000
HOUR_MS = 3_600_000


def to_ms(moment: datetime) -> int:
    """Epoch milliseconds of an aware datetime; a naive one is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


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
    stream time is in.
    """
    if last_minutes is not None:
        if start is not None or end is not None:
            raise QueryError(ErrorCode.BAD_WINDOW, "give either lastMinutes or from/to, not both")
        if last_minutes < 1:
            raise QueryError(ErrorCode.BAD_WINDOW, "lastMinutes must be at least 1")
        window_end = clock.current_minute_ms
        window = Window(window_end - last_minutes * MINUTE_MS, window_end)
    else:
        if start is None or end is None:
            raise QueryError(
                ErrorCode.BAD_WINDOW, "a window needs lastMinutes, or both from and to"
            )
        start_ms, end_ms = to_ms(start), to_ms(end)
        for name, ms in (("from", start_ms), ("to", end_ms)):
            if ms % MINUTE_MS:
                raise QueryError(
                    ErrorCode.BAD_WINDOW,
                    f"{name} must be a whole minute (seconds 0), got {from_ms(ms).isoformat()}",
                )
        if end_ms <= start_ms:
            raise QueryError(ErrorCode.BAD_WINDOW, "to must be after from (windows are half-open)")
        window = Window(start_ms, end_ms)
    oldest_ms = clock.current_minute_ms - int(retention.total_seconds() * 1000)
    if window.start_ms < oldest_ms:
        raise QueryError(
            ErrorCode.WINDOW_OUT_OF_RANGE,
            f"the window starts at {from_ms(window.start_ms).isoformat()}, before the "
            f"retention of per-minute rollups ({retention.days} days) allows: the oldest "
            f"start is {from_ms(oldest_ms).isoformat()}",
        )
    return window
