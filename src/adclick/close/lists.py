"""A top list as stored and published, and the canonical key of its filter (pure)."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from adclick.query.filters import Filter
from adclick.query.ranking import RankedAd
from adclick.query.window import MINUTE_MS, Window, from_ms


def filter_key(query_filter: Filter) -> str:
    """'' for no filter, else e.g. 'country=CA|US;device=1' (sorted: one key per filter)."""
    return ";".join(f"{dim}={'|'.join(values)}" for dim, values in query_filter.conditions)


def parse_filter_key(key: str) -> Filter:
    """The filter a key names (the inverse of filter_key)."""
    if not key:
        return Filter()
    conditions = []
    for part in key.split(";"):
        dim, _, values = part.partition("=")
        conditions.append((dim, tuple(values.split("|"))))
    return Filter(tuple(conditions))


@dataclass(frozen=True)
class TopList:
    """The top ads of the window of ``window_minutes`` ending at ``window_end_ms``."""

    window_minutes: int
    query_filter: Filter
    window_end_ms: int
    revision: int
    input_revision: int
    ads: list[RankedAd]

    @property
    def window(self) -> Window:
        return Window(self.window_end_ms - self.window_minutes * MINUTE_MS, self.window_end_ms)

    @property
    def filter_key(self) -> str:
        return filter_key(self.query_filter)

    @property
    def message_key(self) -> bytes:
        """Kafka key: one key per (window, filter, minute), whatever the revision, so a
        compacted topic keeps each list's newest revision."""
        end = from_ms(self.window_end_ms).strftime("%Y-%m-%dT%H:%MZ")
        return f"{self.window_minutes}m|{self.filter_key}|{end}".encode()

    def to_message(self) -> bytes:
        return orjson.dumps(
            {
                "window_minutes": self.window_minutes,
                "filter": {dim: list(values) for dim, values in self.query_filter.conditions},
                "window_start": from_ms(self.window.start_ms).isoformat(),
                "window_end": from_ms(self.window_end_ms).isoformat(),
                "revision": self.revision,
                "ads": [
                    {"rank": ad.rank, "ad_id": ad.ad_id, "clicks": ad.clicks} for ad in self.ads
                ],
            }
        )
