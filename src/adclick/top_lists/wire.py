"""A top list as stored and published, the canonical key of its filter, and the wire
format of the top-ads topic: ``TopList.to_message`` writes it, ``decode_list`` reads it
back (pure).

The topic is an input like any other: any Kafka client that may write to it can put any
bytes there. ``decode_list`` accepts only what the closer could have published under the
reader's settings, and raises ListFormatError (with a stable reason) for anything else,
so one bad message can never reach a subscriber.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from itertools import pairwise
from typing import Annotated

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from adclick.errors import AdclickError
from adclick.events.parse import EARLIEST_TS_MS, LATEST_TS_MS, MAX_ID_LENGTH
from adclick.query.errors import QueryError
from adclick.query.filters import Filter
from adclick.query.ranking import RankedAd
from adclick.query.window import MINUTE_MS, Window, from_ms, to_ms
from adclick.settings import Settings


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
    ads: list[RankedAd]
    # What the closer ranked it from: the sum of its window's minute revisions, which
    # tells the closer when late clicks changed the window. Only the closer knows it: a
    # list read back (history, the topic) has None.
    input_revision: int | None = None

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


# -- reading a published list back ------------------------------------------------------


class BadList(StrEnum):
    """Why a message of the top-ads topic is not a list (the metric's ``reason`` label)."""

    EMPTY = "empty"  # no value (a tombstone) or zero bytes
    TOO_LARGE = "too_large"  # more bytes than the longest list the closer can write
    NOT_JSON = "not_json"  # not JSON (or not UTF-8, or nested too deep)
    BAD_SHAPE = "bad_shape"  # JSON, but a field is missing or of the wrong type or range
    UNKNOWN_WINDOW = "unknown_window"  # a window length the closer does not rank
    UNKNOWN_FILTER = "unknown_filter"  # a filter the closer does not rank
    INCONSISTENT = "inconsistent"  # times, ranks or order no closer would publish


class ListFormatError(AdclickError):
    """A message of the top-ads topic that is not a list the closer could have published."""

    def __init__(self, reason: BadList, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


_INT32 = 2**31 - 1  # GraphQL's Int: ranks, revisions and window lengths are sent as one
_INT64 = 2**63 - 1  # the Long of click counts (a bigint in the database)
_ENVELOPE_BYTES = 64 * 1024
_BYTES_PER_AD = 1024  # {"rank":…,"ad_id":…,"clicks":…} with 128 escaped characters < 1 KiB


class _Ad(BaseModel):
    model_config = ConfigDict(strict=True)

    rank: Annotated[int, Field(ge=1, le=_INT32)]
    ad_id: Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]
    clicks: Annotated[int, Field(ge=1, le=_INT64)]


class _Message(BaseModel):
    # Unknown fields are ignored: a newer closer may add one without stopping older APIs.
    model_config = ConfigDict(strict=True)

    window_minutes: Annotated[int, Field(ge=1, le=_INT32)]
    filter: dict[
        Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)],
        Annotated[
            list[Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]], Field(min_length=1)
        ],
    ]
    window_start: AwareDatetime
    window_end: AwareDatetime
    revision: Annotated[int, Field(ge=1, le=_INT32)]
    ads: list[_Ad]


def max_message_bytes(settings: Settings) -> int:
    """The largest list message the closer can write under ``settings``."""
    filters = len(orjson.dumps(settings.close_filters))
    return _ENVELOPE_BYTES + filters + settings.close_top_n * _BYTES_PER_AD


def decode_list(value: bytes | None, settings: Settings) -> TopList:
    """A published list (``TopList.to_message``) read back and checked against what the
    closer under ``settings`` publishes: its windows, filters and list length, one window
    of whole minutes, ranks 1..n by clicks (ties by ad id). Raises ListFormatError only."""
    if not value:
        raise ListFormatError(BadList.EMPTY, "no value")
    limit = max_message_bytes(settings)
    if len(value) > limit:
        raise ListFormatError(BadList.TOO_LARGE, f"{len(value):,} bytes, at most {limit:,}")
    try:
        message = _Message.model_validate_json(value)
    except ValidationError as exc:
        return _refuse_shape(exc)
    if message.window_minutes not in settings.close_windows:
        raise ListFormatError(
            BadList.UNKNOWN_WINDOW,
            f"window of {message.window_minutes} minutes; ranked: {settings.close_windows}",
        )
    query_filter = _closed_filter(message.filter, settings)
    end_ms = _window_end_ms(message.window_start, message.window_end, message.window_minutes)
    if len(message.ads) > settings.close_top_n:
        raise ListFormatError(
            BadList.INCONSISTENT,
            f"{len(message.ads):,} ads; the closer ranks {settings.close_top_n}",
        )
    ads = [RankedAd(ad.rank, ad.ad_id, ad.clicks) for ad in message.ads]
    _check_ranking(ads)
    return TopList(message.window_minutes, query_filter, end_ms, message.revision, ads)


def _refuse_shape(exc: ValidationError) -> TopList:
    first = exc.errors(include_url=False, include_context=False, include_input=False)[0]
    if first["type"] == "json_invalid":
        raise ListFormatError(BadList.NOT_JSON, str(first["msg"])[:200])
    where = ".".join(str(part) for part in first["loc"])[:200]
    raise ListFormatError(BadList.BAD_SHAPE, f"{where or 'message'}: {first['msg']}"[:300])


def _closed_filter(given: dict[str, list[str]], settings: Settings) -> Filter:
    try:
        query_filter = Filter.of(given, settings.filter_dimensions)
        closed = [
            Filter(),
            *(Filter.of(f, settings.filter_dimensions) for f in settings.close_filters),
        ]
    except QueryError as exc:
        raise ListFormatError(BadList.UNKNOWN_FILTER, str(exc)[:300]) from None
    if query_filter not in closed:
        raise ListFormatError(
            BadList.UNKNOWN_FILTER, f"{filter_key(query_filter)[:200]!r} is not ranked"
        )
    return query_filter


def _window_end_ms(start: datetime, end: datetime, minutes: int) -> int:
    start_ms, end_ms = to_ms(start), to_ms(end)
    # Event times are 2000..2100, so are the windows of their lists.
    if end_ms % MINUTE_MS or not EARLIEST_TS_MS <= end_ms <= LATEST_TS_MS:
        raise ListFormatError(
            BadList.INCONSISTENT, "window_end is not a whole minute of 2000..2100"
        )
    if end_ms - start_ms != minutes * MINUTE_MS:
        raise ListFormatError(
            BadList.INCONSISTENT, f"window_start is not {minutes} minutes before window_end"
        )
    return end_ms


def _check_ranking(ads: list[RankedAd]) -> None:
    if [ad.rank for ad in ads] != list(range(1, len(ads) + 1)):
        raise ListFormatError(BadList.INCONSISTENT, "ranks are not 1, 2, 3, …")
    order = [(-ad.clicks, ad.ad_id) for ad in ads]
    distinct = len({ad.ad_id for ad in ads}) == len(ads)
    if not distinct or any(a >= b for a, b in pairwise(order)):
        raise ListFormatError(
            BadList.INCONSISTENT, "ads are not by clicks, then ad id, each ad once"
        )
