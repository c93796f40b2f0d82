"""The query limits (depth, aliases) and the validation cache that must not bypass them; the
checks of windows, ids and filter values, the request budget, and bounded metric labels."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from strawberry.extensions.validation_cache import _get_validate_cache

from adclick.api.errors import ApiErrorCode
from adclick.api.metrics import INTROSPECTION, INVALID, UNKNOWN, operation_label
from adclick.api.schema import build_schema
from adclick.query.arguments import check_value
from adclick.query.budget import RequestBudget
from adclick.query.errors import ErrorCode, QueryError
from adclick.query.filters import Filter, Source
from adclick.query.window import StreamClock, Window, from_ms, resolve_window
from adclick.settings import Settings
from graphql import GraphQLSchema, parse

# Deeper than api_max_depth: fragments nest the selection as deep as a client wants.
TOO_DEEP = (
    "query { topAds(window: {lastMinutes: 1}) { ...a } } "
    "fragment a on TopAds { window { ...b } } "
    "fragment b on Window { from }"
)


def codes(result: Any) -> list[str]:
    return [(e.extensions or {}).get("code", "") for e in result.errors or []]


def execute(settings: Settings, document: str) -> Any:
    return asyncio.run(build_schema(settings).execute(document))


@pytest.mark.parametrize("repeat", [1, 2])
def test_too_deep_and_too_many_aliases_are_refused_every_time(repeat: int) -> None:
    settings = Settings(api_max_depth=1, api_max_aliases=3)
    aliases = "{ " + " ".join(f"a{i}: topAds(window: {{lastMinutes: 1}}) {{ source }}"
                              for i in range(4)) + " }"  # fmt: skip
    schema = build_schema(settings)
    for _ in range(repeat):  # the second time, from the validation cache
        assert codes(asyncio.run(schema.execute(TOO_DEEP))) == ["QUERY_TOO_COMPLEX"]
        assert codes(asyncio.run(schema.execute(aliases))) == ["QUERY_TOO_COMPLEX"]


def test_a_repeated_document_is_validated_once() -> None:
    """Validation (limits included) was half of an adClicks request's time when the
    cache missed on every request."""
    schema = build_schema(Settings())
    document = "{ topAds(window: {lastMinutes: 7}) { source } }"
    validations = _get_validate_cache(1000)  # strawberry's shared ValidationCache
    before = validations.cache_info().misses
    for _ in range(5):
        asyncio.run(schema.execute(document))  # no context: fails after validation
    assert validations.cache_info().misses - before == 1


# -- windows, ids and filter values: any input is a window or a QueryError ----------

PROPERTY = hyp_settings(max_examples=300, deadline=None, derandomize=True)
_OFFSETS = st.timedeltas(min_value=timedelta(hours=-23, minutes=-59),
                         max_value=timedelta(hours=23, minutes=59)).map(timezone)  # fmt: skip
_MOMENTS = st.none() | st.datetimes(timezones=st.none() | _OFFSETS) | st.sampled_from(
    [datetime.min, datetime.max, datetime.min.replace(tzinfo=timezone(timedelta(hours=1))),
     datetime.max.replace(tzinfo=timezone(timedelta(hours=-1)))]
)  # fmt: skip
_NOW_MS = 1_795_000_000_000


@PROPERTY
@given(
    last_minutes=st.none() | st.integers() | st.integers(-(2**31), 2**31 - 1),
    start=_MOMENTS,
    end=_MOMENTS,
    newest_ms=st.none() | st.integers(0, 4_102_444_800_000),
)
def test_any_window_arguments_give_a_window_in_range_or_a_query_error(
    last_minutes: int | None, start: datetime | None, end: datetime | None, newest_ms: int | None
) -> None:
    clock = StreamClock(newest_ms, None, _NOW_MS)
    retention = timedelta(days=90)
    try:
        window = resolve_window(
            clock, last_minutes=last_minutes, start=start, end=end, retention=retention
        )
    except QueryError:
        return
    assert window.start_ms < window.end_ms
    assert window.start_ms >= clock.current_minute_ms - retention.total_seconds() * 1000
    assert window.end_ms <= clock.current_minute_ms + 24 * 3_600_000
    from_ms(window.start_ms), from_ms(window.end_ms)  # both are datetimes


@PROPERTY
@given(
    given_filter=st.dictionaries(
        st.sampled_from(["app", "country", "os", "city"]),
        st.none() | st.lists(st.text(alphabet=st.characters(codec=None), max_size=140)),
    )
)
def test_any_filter_is_normalised_or_refused_with_a_code(
    given_filter: dict[str, list[str] | None],
) -> None:
    try:
        query_filter = Filter.of(given_filter, ["app", "country", "os"])
    except QueryError as exc:
        assert exc.code in {ErrorCode.BAD_FILTER, ErrorCode.ARGUMENT_TOO_LONG}
        return
    for _dim, values in query_filter.conditions:
        for value in values:
            assert len(value) <= 128
            value.encode()  # no lone surrogate: PostgreSQL can take it
            assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in value)


@PROPERTY
@given(ad_id=st.text(alphabet=st.characters(codec=None), max_size=200))
def test_an_ad_id_is_accepted_only_if_an_event_could_carry_it(ad_id: str) -> None:
    try:
        check_value(ad_id, "adId", ErrorCode.BAD_AD_ID)
    except QueryError as exc:
        assert exc.code in {ErrorCode.BAD_AD_ID, ErrorCode.ARGUMENT_TOO_LONG}
        return
    assert len(ad_id) <= 128 and "\x00" not in ad_id
    ad_id.encode()


def test_a_request_budget_counts_every_field_and_raw_minutes_more() -> None:
    budget = RequestBudget(max_cost=1000, raw_filter_cost=10, max_filter_values=3)
    hour = Window(0, 60 * 60_000)
    budget.charge("topAds", hour, Source.ROLLUP)
    budget.charge("topAds", hour, Source.RAW)  # 60 + 600
    with pytest.raises(QueryError) as refused:
        budget.charge("adClicks", hour, Source.RAW)
    assert refused.value.code is ErrorCode.QUERY_TOO_EXPENSIVE
    budget.charge("adClicks", hour, Source.FILTERED_ROLLUP)  # what was refused is not kept
    budget.charge_filter({"country": ["US", "DE"], "os": None})
    with pytest.raises(QueryError) as refused:
        budget.charge_filter({"os": ["1", "2"]})
    assert refused.value.code is ErrorCode.TOO_MANY_FILTER_VALUES


# -- metric labels: only the schema's root fields ------------------------------------


@cache
def _default_schema() -> GraphQLSchema:
    return build_schema(Settings())._schema


_NAMES = st.from_regex(r"[_A-Za-z][_0-9A-Za-z]{0,30}", fullmatch=True)


@PROPERTY
@given(fields=st.lists(_NAMES | st.sampled_from(["topAds", "adClicks", "__typename"]),
                       min_size=1, max_size=4))  # fmt: skip
def test_metric_labels_come_only_from_root_fields(fields: list[str]) -> None:
    schema = _default_schema()
    root = set(schema.query_type.fields) if schema.query_type else set()
    document = parse("{ " + " ".join(fields) + " }")
    label = operation_label(schema, document, None)
    allowed = {UNKNOWN, INVALID, INTROSPECTION}
    assert label in allowed or set(label.split("+")) <= root


def test_a_document_that_does_not_parse_is_labelled_invalid() -> None:
    schema = _default_schema()
    assert operation_label(schema, None, None) == INVALID
    fragment = parse("{ ...f } fragment f on Query { topAds(window: {lastMinutes: 1}) { source } }")
    assert operation_label(schema, fragment, None) == "topAds"


def test_every_error_code_is_documented() -> None:
    """docs/api.md lists each code clients can get, with when it is given."""
    documented = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    table = [line for line in documented.splitlines() if line.startswith("| `")]
    for code in [*ErrorCode, *ApiErrorCode]:
        assert any(f"`{code.value}`" in line.split(" | ")[0] for line in table), code


def test_a_limit_is_told_by_where_it_was_reached_not_by_words_in_the_message() -> None:
    """A variable whose value says "more than" is a validation failure like any other; the
    token limit, the depth and the alias limits are QUERY_TOO_COMPLEX."""
    settings = Settings(api_max_tokens=50)
    document = "query ($n: Int!) { topAds(window: {lastMinutes: $n}) { source } }"
    schema = build_schema(settings)
    worded = asyncio.run(schema.execute(document, variable_values={"n": "more than 9000"}))
    assert codes(worded) == ["GRAPHQL_VALIDATION_FAILED"]
    assert "more than" in worded.errors[0].message
    too_long = "{ " + "__typename " * 60 + "}"
    assert codes(asyncio.run(schema.execute(too_long))) == ["QUERY_TOO_COMPLEX"]
    assert codes(asyncio.run(schema.execute("{ topAds("))) == ["GRAPHQL_PARSE_FAILED"]
