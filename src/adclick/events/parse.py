"""Parsers for the two wire formats of a click: a JSON object and the log line.

Every failure raises :class:`InvalidEventError` with a stable ``reason`` code; the
ingest worker dead-letters the message with that reason.
"""

from __future__ import annotations

import json
import re
import socket
from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson

from adclick.errors import InvalidEventError
from adclick.events.click_id import derive_click_id
from adclick.events.dead_letter import DeadLetterReason
from adclick.events.model import ClickEvent

# Reason codes, as written to the dead-letter topic.

MAX_ID_LENGTH = 128
MAX_ATTRIBUTES = 32
LOG_LINE_PREFIX = "[AdClickEvent]"

# Event times outside this range are certainly wrong (and would not fit the chunks).
EARLIEST_TS_MS = 946_684_800_000  # 2000-01-01
LATEST_TS_MS = 4_102_444_800_000  # 2100-01-01

_REQUIRED = ("ad_id", "timestamp", "user_id", "ip", "country")
_KNOWN = frozenset((*_REQUIRED, "click_id"))


def parse_timestamp_ms(value: object) -> int:
    """Epoch milliseconds from ISO-8601 text (no offset means UTC) or epoch milliseconds."""
    if isinstance(value, bool):
        raise InvalidEventError(
            DeadLetterReason.INVALID_FIELD, "timestamp must be ISO-8601 text or epoch ms"
        )
    if isinstance(value, int):
        ts_ms = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise InvalidEventError(
                DeadLetterReason.INVALID_FIELD, f"timestamp {value[:40]!r} is not ISO-8601"
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        ts_ms = (
            (parsed - _EPOCH).days * 86_400_000
            + (parsed - _EPOCH).seconds * 1000
            + (parsed - _EPOCH).microseconds // 1000
        )
    else:
        raise InvalidEventError(
            DeadLetterReason.INVALID_FIELD, "timestamp must be ISO-8601 text or epoch ms"
        )
    if not EARLIEST_TS_MS <= ts_ms < LATEST_TS_MS:
        raise InvalidEventError(
            DeadLetterReason.INVALID_FIELD, f"timestamp {value!r} is outside 2000..2100"
        )
    return ts_ms


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _text(value: object, name: str) -> str:
    # The common case in a few cheap checks (this runs five times per click at 50,000
    # clicks a second): printable text (no control character, no white space but the
    # ASCII space) with no space at either end is accepted as it is, which is exactly what
    # the full path would make of it. Anything else takes the full path.
    if (
        type(value) is str
        and 0 < len(value) <= MAX_ID_LENGTH
        and value.isprintable()
        and value[0] != " "
        and value[-1] != " "
    ):
        return value
    return _identifier_value(value, name)


def _identifier_value(value: object, name: str) -> str:
    if value is None:
        raise InvalidEventError(DeadLetterReason.MISSING_FIELD, name)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise InvalidEventError(DeadLetterReason.INVALID_FIELD, f"{name} must be a string")
    # Control characters are refused before trimming, which would take some of them
    # (U+001C..U+001F count as white space) for white space.
    _refuse_control_characters(value, name)
    value = value.strip()
    if not value or len(value) > MAX_ID_LENGTH:
        raise InvalidEventError(
            DeadLetterReason.INVALID_FIELD, f"{name} must have 1..{MAX_ID_LENGTH} characters"
        )
    return value


def _refuse_control_characters(value: str, what: str) -> None:
    # Control characters (C0, DEL, C1) are never part of an id or attribute: they hide
    # text on a terminal (escape sequences), break log lines, and U+001F is the separator
    # of the derived click_id, so refusing them keeps two different clicks apart.
    found = _CONTROL.search(value)
    if found is not None:
        raise InvalidEventError(
            DeadLetterReason.INVALID_FIELD,
            f"{what} contains the control character U+{ord(found.group()):04X}",
        )


# The control characters no id or attribute may hold (C0, DEL, C1), as the body of a
# regular-expression character class: the API refuses them in arguments too.
CONTROL_CHARACTERS = "\x00-\x1f\x7f-\x9f"
_CONTROL = re.compile(f"[{CONTROL_CHARACTERS}]")


def _ip(value: str) -> str:
    """The address in its one canonical text, the form the database's inet type stores.

    Canonical because the derived click_id hashes it: 2001:DB8::1 and 2001:db8:0:0::1 are
    one address, and a retry spelled the other way must be the same click.
    """
    # inet_pton/inet_ntop are the C parser and printer, ~20x faster than the ipaddress
    # module, and print what PostgreSQL prints (lower case, zeros compressed,
    # ::ffff:1.2.3.4 for an IPv4-mapped address).
    try:
        if ":" not in value:
            # The IPv4 form inet_pton accepts is the canonical one already (four decimal
            # numbers without leading zeros): checked, it is returned as it came.
            socket.inet_pton(socket.AF_INET, value)
            return value
        return socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, value))
    except OSError:
        raise InvalidEventError(
            DeadLetterReason.INVALID_FIELD, f"ip {value[:40]!r} is not an IP address"
        ) from None


def _number_text(value: int | float) -> str:
    """One text per JSON number: 1, 1.0 and 1e0 are "1", -0.0 is "0", 1.5 is "1.5".

    The derived click_id hashes attribute values, so equal numbers must be equal text. An
    integral number is its exact digits (orjson reads integers beyond 64 bits as floats,
    whose digits under 2**64 are those of the double read), others the shortest text that
    reads back as the same double. What the decoder already rounded cannot be told apart:
    9007199254740993.0 is read as the double 9007199254740992 (integers over 2**53 written
    with a point or an exponent are the nearest double).
    """
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**64:
        return str(int(value))
    return str(value) if isinstance(value, int) else repr(value)


def _country(value: str) -> str:
    # Checked before upper-casing: "ß".upper() is "SS", "ﬀ".upper() "FF" (a code from
    # no code at all).
    if not (2 <= len(value) <= 3 and value.isascii() and value.isalpha()):
        raise InvalidEventError(
            DeadLetterReason.INVALID_FIELD, f"country {value[:40]!r} is not a 2 or 3 letter code"
        )
    return value.upper()


def _attributes(data: dict[str, Any]) -> dict[str, str]:
    # Called once every required field was found, so a click with no further attributes
    # is told by its length alone: a set difference per click cost 5% of a worker.
    if len(data) == len(_REQUIRED) + ("click_id" in data):
        return {}
    names = data.keys() - _KNOWN
    if len(names) > MAX_ATTRIBUTES:
        raise InvalidEventError(
            DeadLetterReason.INVALID_FIELD, f"more than {MAX_ATTRIBUTES} attributes"
        )
    attributes: dict[str, str] = {}
    for name in sorted(names):
        value = data[name]
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, int | float):
            value = _number_text(value)
        elif not isinstance(value, str):
            raise InvalidEventError(
                DeadLetterReason.INVALID_FIELD, f"attribute {name[:40]!r} must be a scalar"
            )
        if not name:
            # A filter names its attribute; a nameless one could never be asked for.
            raise InvalidEventError(DeadLetterReason.INVALID_FIELD, "an attribute has no name")
        if len(value) > MAX_ID_LENGTH or len(name) > MAX_ID_LENGTH:
            raise InvalidEventError(
                DeadLetterReason.INVALID_FIELD, f"attribute {name[:40]!r} is too long"
            )
        _refuse_control_characters(name, f"attribute name {name[:40]!r}")
        _refuse_control_characters(value, f"attribute {name[:40]!r}")
        attributes[name] = value
    return attributes


def event_from_dict(data: dict[str, Any]) -> ClickEvent:
    """Validate a decoded JSON object into a :class:`ClickEvent`."""
    get = data.get
    return _validated(
        get("ad_id"),
        get("timestamp"),
        get("user_id"),
        get("ip"),
        get("country"),
        get("click_id"),
        data,
    )


def _validated(
    ad_id_value: object,
    timestamp: object,
    user_id_value: object,
    ip_value: object,
    country_value: object,
    click_id_value: object,
    data: dict[str, Any] | None,
) -> ClickEvent:
    # The rules of every field, whichever path decoded them. ``data`` is the whole object
    # when it may hold further attributes; None when it is known to hold none.
    ad_id = _text(ad_id_value, "ad_id")
    if timestamp is None:
        raise InvalidEventError(DeadLetterReason.MISSING_FIELD, "timestamp")
    if type(timestamp) is int and EARLIEST_TS_MS <= timestamp < LATEST_TS_MS:
        ts_ms = timestamp
    else:
        ts_ms = parse_timestamp_ms(timestamp)
    user_id = _text(user_id_value, "user_id")
    ip = _ip(_text(ip_value, "ip"))
    country = _country(_text(country_value, "country"))
    attributes = _attributes(data) if data is not None else {}
    click_id = (
        derive_click_id(ad_id, ts_ms, user_id, ip, country, attributes)
        if click_id_value is None
        else _text(click_id_value, "click_id")
    )
    return ClickEvent(ad_id, ts_ms, user_id, ip, country, click_id, attributes)


class _PlainClick(msgspec.Struct, forbid_unknown_fields=True):
    """A click of exactly the known fields, each of its usual JSON type: most clicks."""

    ad_id: str
    timestamp: int | str
    user_id: str
    ip: str
    country: str
    click_id: str | None = None


_PLAIN_CLICK = msgspec.json.Decoder(_PlainClick)


def parse_json_event(payload: bytes | str) -> ClickEvent:
    """Parse one JSON click message."""
    # msgspec decodes a plain click straight into typed fields, in less time than
    # orjson takes to build the dict alone (tests/unit/test_events.py holds the two paths
    # to the same results). Anything else -- further attributes, ids sent as numbers,
    # nulls, malformed JSON -- takes the general path, which also words the errors.
    try:
        plain = _PLAIN_CLICK.decode(payload)
    except (msgspec.DecodeError, UnicodeDecodeError):
        # msgspec checks UTF-8 lazily: invalid bytes inside a string of a known field
        # raise UnicodeDecodeError, not DecodeError. The general path words both.
        return _parse_general(payload)
    event = _validated(
        plain.ad_id,
        plain.timestamp,
        plain.user_id,
        plain.ip,
        plain.country,
        plain.click_id,
        None,
    )
    # Strings: the five keys and the four text fields, the timestamp if it is text, and
    # click_id's key and value if it has one (a "click_id": null, rare, adds its key and
    # takes the exact check).
    strings = 9 + isinstance(plain.timestamp, str) + 2 * (plain.click_id is not None)
    if not _plainly_unique(payload, strings):
        _refuse_duplicate_keys(payload)
    return event


def _parse_general(payload: bytes | str) -> ClickEvent:
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise InvalidEventError(DeadLetterReason.MALFORMED, f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidEventError(DeadLetterReason.MALFORMED, "not a JSON object")
    event = event_from_dict(data)
    # A valid click is a flat object: its strings are its keys and its text values.
    strings = len(data) + list(map(type, data.values())).count(str)
    if not _plainly_unique(payload, strings):
        _refuse_duplicate_keys(payload)
    return event


def _plainly_unique(payload: bytes | str, strings: int) -> bool:
    """Whether ``payload``, just decoded into an object of ``strings`` strings (keys and
    text values), certainly names no key twice: the cheap proof of _refuse_duplicate_keys.

    With no backslash in it, every quote delimits a string, so it holds exactly two quotes
    per string of the decoded object, and a key the decoder dropped would add two more. A
    backslash (an escaped quote, a key spelled with \\u escapes) or a count that does not
    add up proves nothing: then the exact check runs (a ninth of a plain click's parse,
    this; ten times that, the exact check)."""
    return type(payload) is bytes and b"\\" not in payload and payload.count(b'"') == 2 * strings


def _refuse_duplicate_keys(payload: bytes | str) -> None:
    # Both decoders keep the last of two equal keys, where another reader of the same
    # message may keep the first: {"ad_id": "a", "ad_id": "b"} is a click on either ad,
    # and a billed count cannot depend on the reader. Refused, whole.
    text = payload if isinstance(payload, bytes) else payload.encode(errors="surrogatepass")
    try:
        json.loads(text, object_pairs_hook=_unique_keys)
    except ValueError as exc:  # the standard library's reader refuses what orjson took
        raise InvalidEventError(DeadLetterReason.MALFORMED, f"not JSON: {exc}") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data = dict(pairs)
    if len(data) != len(pairs):
        keys = [key for key, _value in pairs]
        duplicate = next(key for index, key in enumerate(keys) if key in keys[:index])
        raise InvalidEventError(
            DeadLetterReason.MALFORMED, f"the key {duplicate[:40]!r} appears more than once"
        )
    return data


def parse_log_line(line: str) -> ClickEvent:
    """Parse ``[AdClickEvent] ad001, 2024-07-09 00:00:01, user-1, 207.148.22.22, USA``."""
    # Only the line's own end is trimmed here; each field is trimmed by the field rules,
    # which refuse control characters first, exactly as for a JSON click.
    text = line.strip(" \r\n")
    if not text.startswith(LOG_LINE_PREFIX):
        raise InvalidEventError(
            DeadLetterReason.MALFORMED, f"log line does not start with {LOG_LINE_PREFIX}"
        )
    fields = text[len(LOG_LINE_PREFIX) :].split(",")
    if len(fields) != len(_REQUIRED):
        raise InvalidEventError(
            DeadLetterReason.MALFORMED,
            f"log line has {len(fields)} fields, expected {len(_REQUIRED)}",
        )
    return event_from_dict(dict(zip(_REQUIRED, fields, strict=True)))
