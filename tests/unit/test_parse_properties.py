"""Property-based tests of the two click parsers: any input is classified, nothing escapes.

A message the parser raises an unforeseen exception on stops the worker that reads it, and
every worker the partition moves to after it (issue 13, item 1), so the property that
matters is total: for any bytes, the parser returns a click or raises InvalidEventError.
The runs are derandomized (pyproject's hypothesis profile) so CI is reproducible.
"""

from __future__ import annotations

import ipaddress
import json
import unicodedata
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from adclick.errors import InvalidEventError
from adclick.events import parse_json_event, parse_log_line
from adclick.events.model import ClickEvent
from adclick.events.parse import event_from_dict

FIELDS = ("ad_id", "timestamp", "user_id", "ip", "country", "click_id")
GOOD: dict[str, Any] = {
    "ad_id": "ad001",
    "timestamp": 1720483201000,
    "user_id": "user-1",
    "ip": "207.148.22.22",
    "country": "USA",
}

# Values as hostile producers send them: any JSON scalar or nesting, text of any code points.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=140),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
near_valid_text = st.one_of(
    st.sampled_from(["ad001", "user-1", "207.148.22.22", "USA", "2024-07-09 00:00:01"]),
    st.text(max_size=20),
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=130),
    st.sampled_from(
        ["\u3000", " a ", "a\x1fb", "\x1b[31mred", "a\u200bb", "a\x85", "\t", "x" * 128]
    ),
)
click_objects = st.fixed_dictionaries(
    {},
    optional={name: near_valid_text | json_values for name in FIELDS}
    | {"device": near_valid_text | json_values, "a\x1fb": near_valid_text},
)


def classify(payload: bytes) -> ClickEvent | str:
    """The parser's verdict: the click, or the dead-letter reason."""
    try:
        return parse_json_event(payload)
    except InvalidEventError as exc:
        assert exc.reason in {"malformed", "missing_field", "invalid_field"}
        return exc.reason


def assert_clean(event: ClickEvent) -> None:
    """What every accepted click keeps: no control character, no edge space, bounded."""
    texts = [event.ad_id, event.user_id, event.ip, event.country, event.click_id]
    texts += [*event.attributes, *event.attributes.values()]
    for text in texts:
        assert not any(unicodedata.category(c) == "Cc" for c in text), text
        assert len(text) <= 128
    for text in (event.ad_id, event.user_id, event.ip, event.country, event.click_id):
        assert text and text == text.strip()


@settings(max_examples=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
@example(b'{"ad_id":"a\xff","timestamp":1720483201000,"user_id":"u","ip":"1.1.1.1","country":"US"}')
@example(b'{"ad_id":"a","timestamp":"2025\xfe-01-01","user_id":"u","ip":"1.1.1.1","country":"US"}')
@example(b'{"ad_id":"a","timestamp":1,"user_id":"\xed\xa0\x80","ip":"1.1.1.1","country":"US"}')
def test_any_bytes_are_a_click_or_a_reason(payload: bytes) -> None:
    verdict = classify(payload)
    if isinstance(verdict, ClickEvent):
        assert_clean(verdict)


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(click_objects, st.binary(max_size=4))
def test_any_json_object_is_a_click_or_a_reason(data: dict[str, Any], junk: bytes) -> None:
    # The standard library's encoder: it writes integers of any size, as a hostile
    # producer may.
    payload = json.dumps({**GOOD, **data}, ensure_ascii=False).encode()
    verdict = classify(payload)
    if isinstance(verdict, ClickEvent):
        assert_clean(verdict)
    # Invalid UTF-8 spliced into a valid message anywhere is refused, never raised.
    cut = len(payload) // 2
    classify(payload[:cut] + b"\xff" + junk + payload[cut:])


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(st.fixed_dictionaries({name: near_valid_text for name in FIELDS[:5] if name != "timestamp"}))
def test_both_decoding_paths_give_the_same_verdict(fields: dict[str, str]) -> None:
    """The fast path (msgspec, plain clicks) and the general path agree on every click.

    They used to trim differently: the fast path kept ``"a\\u3000"``, the general path made
    it ``"a"``, so the same click got two click_ids depending on its other fields.
    """
    data = {**GOOD, **fields}
    fast = classify(json.dumps(data, ensure_ascii=False).encode())
    try:
        general: ClickEvent | str = event_from_dict(data)
    except InvalidEventError as exc:
        general = exc.reason
    assert fast == general


@settings(max_examples=2000)
@given(st.text(max_size=200))
@example("[AdClickEvent] \u3000, 2024-07-09 00:00:01, user-1, 207.148.22.22, USA")
@example("[AdClickEvent] ad\x1b[2J, 2024-07-09 00:00:01, user-1, 207.148.22.22, USA")
def test_any_log_line_is_a_click_or_a_reason(line: str) -> None:
    try:
        event = parse_log_line(line)
    except InvalidEventError as exc:
        assert exc.reason in {"malformed", "missing_field", "invalid_field"}
    else:
        assert_clean(event)


@pytest.mark.parametrize(
    "value",
    ["\u3000", " ", "\x1b[31mad", "ad\x1f", "a\x7fb", "a\x85b", "ad\n", "\u2028"],
)
def test_whitespace_only_and_control_characters_are_refused_on_both_paths(value: str) -> None:
    for data in ({**GOOD, "ad_id": value}, {**GOOD, "ad_id": value, "device": "ios"}):
        with pytest.raises(InvalidEventError) as refused:
            parse_json_event(orjson.dumps(data))
        assert refused.value.reason == "invalid_field"


def test_an_attribute_holding_the_click_id_separator_is_refused() -> None:
    """Two different clicks must never derive one click_id.

    The derived click_id joins fields with U+001F; ``{"a": "x\\x1fb\\x1fy"}`` and
    ``{"a": "x", "b": "y"}`` joined to the same text and were counted once.
    """
    one = orjson.dumps({**GOOD, "a": "x\x1fb\x1fy"})
    other = parse_json_event(orjson.dumps({**GOOD, "a": "x", "b": "y"}))
    with pytest.raises(InvalidEventError):
        parse_json_event(one)
    assert other.attributes == {"a": "x", "b": "y"}


def test_the_derived_click_id_of_a_plain_click_is_unchanged() -> None:
    """Stored clicks are deduplicated against new ones by click_id: it must never drift.

    The value is the click_id main derived for this click before this change.
    """
    event = parse_json_event(orjson.dumps(GOOD))
    assert event.click_id == "9bb9b2214095a3a62f3371206985bf0f"
    # Inner white space that is not a control character is kept, on both paths.
    spaced = parse_json_event(orjson.dumps({**GOOD, "user_id": "user\u30001"}))
    assert spaced.user_id == "user\u30001"
    assert event_from_dict({**GOOD, "user_id": "user\u30001"}) == spaced


@example("ß")
@example("ﬀ")
@example("\x1fUS")
@given(st.text(max_size=6))
def test_a_country_is_two_or_three_ascii_letters_as_sent(country: str) -> None:
    """Whatever the text: accepted exactly when it is 2 or 3 ASCII letters (space around
    them aside), stored in upper case; never a code made by upper-casing something else
    ("ß" is not "SS")."""
    verdict = classify(orjson.dumps(GOOD | {"country": country}))
    letters = country.strip()
    controls = any(unicodedata.category(c) == "Cc" for c in country)
    if not controls and 2 <= len(letters) <= 3 and letters.isascii() and letters.isalpha():
        assert isinstance(verdict, ClickEvent) and verdict.country == letters.upper()
    else:
        assert verdict == "invalid_field"


def _object_text(pairs: list[tuple[str, Any]], *, ascii_only: bool) -> bytes:
    # JSON's own writers cannot repeat a key; a hostile producer writes the text itself.
    members = (
        f"{json.dumps(key, ensure_ascii=ascii_only)}: {json.dumps(value, ensure_ascii=ascii_only)}"
        for key, value in pairs
    )
    return ("{" + ", ".join(members) + "}").encode()


scalar_values = st.none() | st.booleans() | st.integers(-(10**6), 10**6) | near_valid_text


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(
    extra=st.lists(
        st.tuples(st.sampled_from([*FIELDS, "device", "os"]), scalar_values), max_size=3
    ),
    repeat=st.sampled_from([*FIELDS, "device", "os"]) | st.none(),
    ascii_only=st.booleans(),
)
@example(extra=[("click_id", None)], repeat=None, ascii_only=True)
@example(extra=[("timestamp", 1720483201000)], repeat=None, ascii_only=True)
@example(extra=[("device", 'a"b\\c')], repeat="device", ascii_only=False)
def test_a_key_sent_twice_is_refused_whatever_its_values(
    extra: list[tuple[str, Any]], repeat: str | None, ascii_only: bool
) -> None:
    """{"ad_id": "a", "ad_id": "b"} is a click on a or on b depending on who reads it: a
    message naming any key twice is refused (as malformed when nothing else is wrong with
    it), on both decoding paths, and a message naming each key once gets the verdict of
    its decoded object."""
    pairs = [*GOOD.items(), *extra]
    if repeat is not None:
        pairs.append((repeat, dict(pairs).get(repeat, "x")))
    verdict = classify(_object_text(pairs, ascii_only=ascii_only))
    keys = [key for key, _value in pairs]
    if len(set(keys)) < len(keys):
        assert isinstance(verdict, str), "a click read from a message with a key twice"
        if repeat is not None and len(set(keys)) == len(keys) - 1:
            assert verdict == "malformed" or not isinstance(
                classify(_object_text(pairs[:-1], ascii_only=ascii_only)), ClickEvent
            )
    else:
        try:
            expected: ClickEvent | str = event_from_dict(dict(pairs))
        except InvalidEventError as exc:
            expected = exc.reason
        assert verdict == expected


def test_a_key_spelled_with_escapes_is_the_same_key() -> None:
    payload = _object_text([*GOOD.items()], ascii_only=True)[:-1] + b', "ad\\u005fid": "ad002"}'
    assert classify(payload) == "malformed"


def test_an_attribute_without_a_name_is_refused() -> None:
    assert classify(orjson.dumps({**GOOD, "": "x"})) == "invalid_field"


def _spellings(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> list[str]:
    """Ways producers write one address."""
    if address.version == 4:
        return [str(address)]
    spelled = [address.compressed, address.exploded, address.compressed.upper()]
    if address.ipv4_mapped is not None:
        spelled.append(f"::FFFF:{address.ipv4_mapped}")
    return spelled


@given(st.ip_addresses() | st.ip_addresses(v=4).map(lambda a: ipaddress.IPv6Address(f"::ffff:{a}")))
def test_one_address_however_written_is_one_click(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    """A retry spelling the address otherwise is the same click (same derived click_id): the
    address is kept in one canonical text (glibc's, which PostgreSQL's inet also prints)."""
    clicks = [classify(orjson.dumps({**GOOD, "ip": spelled})) for spelled in _spellings(address)]
    assert all(click == clicks[0] for click in clicks)
    assert isinstance(clicks[0], ClickEvent) and ipaddress.ip_address(clicks[0].ip) == address
    assert classify(orjson.dumps({**GOOD, "ip": clicks[0].ip})) == clicks[0]


@given(st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False, allow_infinity=False))
def test_one_number_however_written_is_one_attribute_value(number: int | float) -> None:
    """{"n": 1} and {"n": 1.0} are one click: equal numbers are one text, and that text
    reads back as the number."""
    as_written = [orjson.dumps(number), json.dumps(number).encode()]
    if (isinstance(number, int) or number.is_integer()) and int(float(number)) == number:
        as_written += [f"{float(number)!r}".encode(), f"{int(number)}".encode()]
    payloads = [orjson.dumps(GOOD)[:-1] + b',"n":' + text + b"}" for text in as_written]
    values = {
        click.attributes["n"] for click in map(classify, payloads) if isinstance(click, ClickEvent)
    }
    assert len(values) == 1
    (value,) = values
    assert float(value) == float(number)
