"""The wire format of a published top list: what the closer writes reads back the same,
and any other bytes are classified (ListFormatError with a reason), never raised past."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adclick.query.filters import Filter
from adclick.query.ranking import RankedAd
from adclick.settings import Settings
from adclick.top_lists.wire import BadList, ListFormatError, TopList, decode_list

SETTINGS = Settings(close_filters=[{"country": ["CA", "US"]}], close_top_n=100)
US_CA = Filter((("country", ("CA", "US")),))
END_MS = 1_795_000_020_000  # 2026-11-18, a whole minute


def top_list(**changes: Any) -> TopList:
    values: dict[str, Any] = {
        "window_minutes": 5,
        "query_filter": US_CA,
        "window_end_ms": END_MS,
        "revision": 2,
        "ads": [RankedAd(1, "ad-b", 9), RankedAd(2, "ad-a", 4), RankedAd(3, "ad-c", 4)],
    }
    return TopList(**{**values, **changes})


def message(**changes: Any) -> bytes:
    """A valid message with some JSON fields replaced (None: removed)."""
    data = orjson.loads(top_list().to_message())
    for name, value in changes.items():
        if value is None:
            del data[name]
        else:
            data[name] = value
    return orjson.dumps(data)


def reason_of(value: bytes | None) -> BadList:
    with pytest.raises(ListFormatError) as refused:
        decode_list(value, SETTINGS)
    return refused.value.reason


def test_a_published_list_reads_back_the_same() -> None:
    assert decode_list(top_list().to_message(), SETTINGS) == top_list()
    unfiltered = top_list(query_filter=Filter(), ads=[])
    assert decode_list(unfiltered.to_message(), SETTINGS) == unfiltered


AD = {"rank": 1, "ad_id": "ad-b", "clicks": 9}


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, BadList.EMPTY),
        (b"", BadList.EMPTY),
        (b"not json", BadList.NOT_JSON),
        (b'{"window_minutes": 5, "ad_id": "a\xff"}', BadList.NOT_JSON),
        (b"[" * 100_000, BadList.NOT_JSON),
        (b" " * 300_000, BadList.TOO_LARGE),
        (b"[]", BadList.BAD_SHAPE),
        (b"null", BadList.BAD_SHAPE),
        (message(ads=None), BadList.BAD_SHAPE),
        (message(filter=[]), BadList.BAD_SHAPE),  # once, this killed the feed's thread
        (message(filter={"country": "US"}), BadList.BAD_SHAPE),
        (message(filter={"country": []}), BadList.BAD_SHAPE),
        (message(window_minutes="5"), BadList.BAD_SHAPE),
        (message(window_minutes=5.0), BadList.BAD_SHAPE),
        (message(window_minutes=True), BadList.BAD_SHAPE),
        (message(revision=0), BadList.BAD_SHAPE),
        (message(revision=2**31), BadList.BAD_SHAPE),  # more than GraphQL's Int
        (message(ads=[{**AD, "rank": -1}]), BadList.BAD_SHAPE),
        (message(ads=[{**AD, "clicks": 0}]), BadList.BAD_SHAPE),
        (message(ads=[{**AD, "clicks": 2**63}]), BadList.BAD_SHAPE),
        (message(ads=[{**AD, "ad_id": "x" * 129}]), BadList.BAD_SHAPE),
        (message(ads=[{**AD, "ad_id": 7}]), BadList.BAD_SHAPE),
        (message(ads=[[1, "ad-b", 9]]), BadList.BAD_SHAPE),
        (message(window_end="2026-11-18T10:00:00"), BadList.BAD_SHAPE),  # no offset
        (message(window_end="tomorrow"), BadList.BAD_SHAPE),
        (message(window_minutes=7), BadList.UNKNOWN_WINDOW),
        (message(filter={"country": ["FR"]}), BadList.UNKNOWN_FILTER),
        (message(filter={"colour": ["red"]}), BadList.UNKNOWN_FILTER),
        (message(window_start="2026-11-18T10:00:00+00:00"), BadList.INCONSISTENT),
        (top_list(window_end_ms=END_MS + 1).to_message(), BadList.INCONSISTENT),
        (top_list(window_end_ms=60_000 * 5).to_message(), BadList.INCONSISTENT),  # 1970
        (message(ads=[{**AD, "rank": 2}]), BadList.INCONSISTENT),
        (message(ads=[AD, {**AD, "rank": 2, "clicks": 10}]), BadList.INCONSISTENT),
        (message(ads=[AD, {**AD, "rank": 2, "clicks": 8}]), BadList.INCONSISTENT),  # twice
        (
            message(ads=[{**AD, "rank": n, "ad_id": f"a{n:03}"} for n in range(1, 102)]),
            BadList.INCONSISTENT,
        ),  # more ads than the closer ranks
    ],
)
def test_a_malformed_or_implausible_list_is_refused_with_its_reason(
    value: bytes | None, reason: BadList
) -> None:
    assert reason_of(value) is reason


def test_unknown_fields_are_ignored_so_a_newer_closer_stops_no_reader() -> None:
    extended = orjson.loads(top_list().to_message()) | {"source": "closer-v2"}
    assert decode_list(orjson.dumps(extended), SETTINGS) == top_list()


# -- any input ---------------------------------------------------------------------------

FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
FIELDS = ["window_minutes", "filter", "window_start", "window_end", "revision", "ads"]


def classify(value: bytes) -> TopList | BadList:
    """The decoder's verdict; any exception but ListFormatError fails the property."""
    try:
        return decode_list(value, SETTINGS)
    except ListFormatError as exc:
        return exc.reason


@FUZZ
@given(st.binary(max_size=2000))
def test_any_bytes_are_a_list_or_refused_with_a_reason(value: bytes) -> None:
    assert isinstance(classify(value), TopList | BadList)


@FUZZ
@given(json_values)
def test_any_json_is_a_list_or_refused_with_a_reason(value: Any) -> None:
    assert isinstance(classify(json.dumps(value).encode()), TopList | BadList)


@FUZZ
@given(st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=len(FIELDS)))
def test_a_list_with_any_fields_replaced_is_a_list_or_refused(changes: dict[str, Any]) -> None:
    data = orjson.loads(top_list().to_message()) | changes
    verdict = classify(json.dumps(data).encode())
    if isinstance(verdict, TopList):  # then it is one the closer could have published
        assert verdict.window_minutes in SETTINGS.close_windows
        assert [ad.rank for ad in verdict.ads] == list(range(1, len(verdict.ads) + 1))


@FUZZ
@given(
    st.sampled_from(SETTINGS.close_windows),
    st.sampled_from([Filter(), US_CA]),
    st.integers(min_value=946_684_800_000 // 60_000 + 1440, max_value=4_102_444_800_000 // 60_000),
    st.integers(min_value=1, max_value=2**31 - 1),
    st.dictionaries(st.text(min_size=1, max_size=128), st.integers(1, 2**63 - 1), max_size=100),
)
def test_every_list_the_closer_can_publish_reads_back_the_same(
    minutes: int, query_filter: Filter, end_minute: int, revision: int, clicks: dict[str, int]
) -> None:
    ranked = sorted(clicks.items(), key=lambda item: (-item[1], item[0]))
    ads = [RankedAd(rank, ad, n) for rank, (ad, n) in enumerate(ranked, start=1)]
    published = TopList(minutes, query_filter, end_minute * 60_000, revision, ads)
    assert decode_list(published.to_message(), SETTINGS) == published
