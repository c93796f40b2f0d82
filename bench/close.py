"""``python -m bench close``: time to close one minute at the design scale.

On the query benchmark's dataset (bench/query_dataset.py: hours of per-minute rollups of
2 million ads at 700,000 clicks a minute), the minute closer first catches up to a
watermark set some minutes back, then the watermark advances one minute at a time, as
it does live, and each step is timed: refreshing the window index (which loads the
newly complete minute) and ranking, storing and publishing every list of the minute
(all windows, unfiltered and every configured filter).
"""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

from adclick.close.closer import MinuteCloser
from adclick.db.connect import connect
from adclick.db.migrate import upgrade
from adclick.kafka import create_topics
from adclick.settings import Settings

# The minutes the watermark is moved back before the timed steps.
STEPS = 10


def _shift_stream(settings: Settings, minutes: int) -> None:
    """Move every partition's event time (and so the watermark) by ``minutes``."""
    with connect(settings) as conn:
        conn.execute(
            "UPDATE partition_watermarks SET"
            " max_event_time = max_event_time + make_interval(mins => %(m)s),"
            " watermark = watermark + make_interval(mins => %(m)s), updated_at = now()"
            " WHERE topic = %(topic)s",
            {"m": minutes, "topic": settings.clicks_topic},
        )


def close_minutes(
    dataset_settings: Settings, filters: list[dict[str, list[str]]]
) -> dict[str, Any]:
    """Catch up, then time STEPS single-minute closes. Leaves the dataset as it found it."""
    settings = dataset_settings.model_copy(
        update={"close_filters": filters, "top_ads_topic": f"bench-top-ads-{time.time_ns()}"}
    )
    upgrade(settings)  # the closer's tables, if the dataset predates them
    create_topics(settings)
    with connect(settings) as conn:
        conn.execute("TRUNCATE top_ad_lists, top_ads")
    closer = MinuteCloser(settings)
    _shift_stream(settings, -STEPS)
    shifted = -STEPS
    steps: list[float] = []
    try:
        started = time.perf_counter()
        closer.run(threading.Event(), once=True)
        catch_up_s = time.perf_counter() - started
        caught_up_minutes = closer.totals.closed_minutes
        for _ in range(STEPS):
            _shift_stream(settings, 1)
            shifted += 1
            started = time.perf_counter()
            before = closer.totals.closed_minutes
            closer.run(threading.Event(), once=True)
            steps.append(time.perf_counter() - started)
            assert closer.totals.closed_minutes == before + 1, "one minute per step"
    finally:
        # Whatever happened, the dataset's clock ends where it was.
        _shift_stream(settings, -shifted)
    lists_per_minute = len(settings.close_windows) * (1 + len(filters))
    return {
        "run": "close",
        "windows": settings.close_windows,
        "filters": filters,
        "lists_per_minute": lists_per_minute,
        "catch_up_s": round(catch_up_s, 2),
        "catch_up_minutes": caught_up_minutes,
        "step_p50_s": round(statistics.median(steps), 3),
        "step_max_s": round(max(steps), 3),
        "steps": len(steps),
    }
