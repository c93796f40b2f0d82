"""The wire formats of a click: what parses, what is refused and why."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from adclick.errors import InvalidEventError
from adclick.events import derive_click_id, parse_json_event, parse_log_line, parse_timestamp_ms
from adclick.events.parse import event_from_dict

GOOD = {
    "ad_id": "ad001",
    "timestamp": "2024-07-09 00:00:01",
    "user_id": "user-1",
    "ip": "207.148.22.22",
    "country": "USA",
}


BAD = [
    (b"not json", "malformed"),
    (b"[1, 2]", "malformed"),
    (b'"ad001"', "malformed"),
    (orjson.dumps({k: v for k, v in GOOD.items() if k != "ad_id"}), "missing_field"),
    (orjson.dumps({k: v for k, v in GOOD.items() if k != "timestamp"}), "missing_field"),
    (orjson.dumps({k: v for k, v in GOOD.items() if k != "user_id"}), "missing_field"),
    (orjson.dumps({k: v for k, v in GOOD.items() if k != "ip"}), "missing_field"),
    (orjson.dumps({k: v for k, v in GOOD.items() if k != "country"}), "missing_field"),
    (orjson.dumps({**GOOD, "ad_id": ""}), "invalid_field"),
    (orjson.dumps({**GOOD, "ad_id": "x" * 129}), "invalid_field"),
    (orjson.dumps({**GOOD, "ad_id": ["ad001"]}), "invalid_field"),
    (orjson.dumps({**GOOD, "user_id": "a\x00b"}), "invalid_field"),
    (orjson.dumps({**GOOD, "ip": "999.1.1.1"}), "invalid_field"),
    (orjson.dumps({**GOOD, "ip": "not-an-ip"}), "invalid_field"),
    (orjson.dumps({**GOOD, "country": "U1"}), "invalid_field"),
    (orjson.dumps({**GOOD, "country": "UNITED"}), "invalid_field"),
    (orjson.dumps({**GOOD, "timestamp": "yesterday"}), "invalid_field"),
    (orjson.dumps({**GOOD, "timestamp": True}), "invalid_field"),
    (orjson.dumps({**GOOD, "timestamp": 1.5}), "invalid_field"),
    (orjson.dumps({**GOOD, "timestamp": 17204832}), "invalid_field"),  # seconds, not ms
    (orjson.dumps({**GOOD, "device": {"os": "ios"}}), "invalid_field"),
    (orjson.dumps({**GOOD, **{f"a{i}": "x" for i in range(33)}}), "invalid_field"),
]


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def test_the_design_sample_log_line_parses() -> None:
    event = parse_log_line("[AdClickEvent] ad001, 2024-07-09 00:00:01, user-1, 207.148.22.22, USA")
    assert event.ad_id == "ad001"
    assert event.timestamp == datetime(2024, 7, 9, 0, 0, 1, tzinfo=UTC)
    assert (event.user_id, event.ip, event.country) == ("user-1", "207.148.22.22", "USA")
    assert event.attributes == {}
    assert len(event.click_id) == 32


def test_log_line_and_json_of_the_same_click_get_the_same_click_id() -> None:
    from_log = parse_log_line(
        "[AdClickEvent] ad001, 2024-07-09 00:00:01, user-1, 207.148.22.22, USA"
    )
    assert parse_json_event(orjson.dumps(GOOD)).click_id == from_log.click_id


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-07-09 00:00:01", "2024-07-09T00:00:01+00:00"),  # no offset means UTC
        ("2024-07-09T00:00:01Z", "2024-07-09T00:00:01+00:00"),
        ("2024-07-09T02:00:01+02:00", "2024-07-09T00:00:01+00:00"),
        ("2024-07-09T00:00:01.250-01:00", "2024-07-09T01:00:01.250+00:00"),
        (1720483201000, "2024-07-09T00:00:01+00:00"),  # epoch milliseconds
    ],
)
def test_timestamps_in_every_accepted_form(value: object, expected: str) -> None:
    assert parse_timestamp_ms(value) == ms(expected)


@pytest.mark.parametrize(("payload", "reason"), BAD)
def test_bad_input_is_refused_with_a_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(InvalidEventError) as refused:
        parse_json_event(payload)
    assert refused.value.reason == reason


@pytest.mark.parametrize(
    "line",
    [
        "ad001, 2024-07-09 00:00:01, user-1, 207.148.22.22, USA",  # no prefix
        "[AdClickEvent] ad001, 2024-07-09 00:00:01, user-1, 207.148.22.22",  # 4 fields
        "[AdClickEvent] ad001, 2024-07-09 00:00:01, user-1, 207.148.22.22, USA, extra",
        "[AdClickEvent] ad001, 2024-13-09 00:00:01, user-1, 207.148.22.22, USA",
    ],
)
def test_bad_log_lines_are_refused(line: str) -> None:
    with pytest.raises(InvalidEventError):
        parse_log_line(line)


def test_further_attributes_are_kept_as_text() -> None:
    event = parse_json_event(orjson.dumps({**GOOD, "device": "ios", "os": 17, "bot": False}))
    assert event.attributes == {"device": "ios", "os": "17", "bot": "false"}


def test_country_is_normalised_to_upper_case() -> None:
    assert parse_json_event(orjson.dumps({**GOOD, "country": "de"})).country == "DE"


def test_explicit_click_id_wins_over_the_derived_one() -> None:
    event = parse_json_event(orjson.dumps({**GOOD, "click_id": "c-42"}))
    assert event.click_id == "c-42"


def test_derived_click_id_depends_on_every_field() -> None:
    base = ("ad001", 1720483201000, "user-1", "1.2.3.4", "US", {"device": "ios"})
    reference = derive_click_id(*base)
    assert derive_click_id(*base) == reference  # deterministic
    for index, changed in enumerate(
        ["ad002", 1720483201001, "user-2", "1.2.3.5", "DE", {"device": "android"}]
    ):
        variant = list(base)
        variant[index] = changed
        assert derive_click_id(*variant) != reference  # type: ignore[arg-type]


def test_event_round_trips_through_its_wire_format() -> None:
    event = parse_json_event(orjson.dumps({**GOOD, "device": "ios"}))
    assert parse_json_event(event.to_json()) == event


ODD_BUT_GOOD = [
    {**GOOD, "timestamp": 1720483201000},
    {**GOOD, "click_id": "c-1"},
    {**GOOD, "click_id": None},
    {**GOOD, "ad_id": 1001, "user_id": 7},  # numeric ids become text
    {**GOOD, "device": "ios", "premium": True, "score": 1.5, "gone": None},
    {**GOOD, "ad_id": "  padded  ", "country": "us"},
    {**GOOD, "ad_id": "ünïcødé ✓"},
    {**GOOD, "ip": "2001:db8::1"},
]


@pytest.mark.parametrize(
    "payload",
    [orjson.dumps(data) for data in [GOOD, *ODD_BUT_GOOD]]
    + [payload for payload, _reason in BAD if payload.startswith(b"{")],
)
def test_the_fast_path_and_the_general_path_agree(payload: bytes) -> None:
    # Plain clicks are decoded by msgspec, everything else by orjson into a dict: whichever
    # path a payload takes, the click (or the refusal) is the one the dict path gives.
    try:
        expected: object = event_from_dict(orjson.loads(payload))
    except InvalidEventError as exc:
        expected = exc.reason
    try:
        parsed: object = parse_json_event(payload)
    except InvalidEventError as exc:
        parsed = exc.reason
    assert parsed == expected
