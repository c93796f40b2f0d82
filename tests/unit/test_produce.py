"""The pure part of ``adclick produce``: parsing lines, dead letters, reporting rejections."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from adclick.collect.produce import (
    LineFormat,
    RejectReporter,
    parse_line,
    produce_lines,
    strip_newline,
)
from adclick.errors import InvalidEventError
from adclick.events import ClickEvent
from adclick.events.dead_letter import dead_letter

LOG_LINE = b"[AdClickEvent] ad001, 2024-07-09 00:00:01, user-1, 207.148.22.22, USA"
JSON_LINE = orjson.dumps(
    {
        "ad_id": "ad002",
        "timestamp": "2024-07-09 00:00:02",
        "user_id": "user-2",
        "ip": "10.0.0.1",
        "country": "GBR",
    }
)


class RecordingSink:
    """Collects what would go to Kafka."""

    def __init__(self) -> None:
        self.events: list[ClickEvent] = []
        self.dead_letters: list[dict[str, Any]] = []
        self.polls = 0

    def send(self, event: ClickEvent) -> None:
        self.events.append(event)

    def send_dead_letter(self, record: dict[str, Any]) -> None:
        self.dead_letters.append(record)

    def poll(self) -> None:
        self.polls += 1


def run(lines: list[bytes], fmt: LineFormat = LineFormat.LOG) -> tuple[RecordingSink, list[str]]:
    sink = RecordingSink()
    messages: list[str] = []
    summary = produce_lines(lines, fmt, sink, RejectReporter(messages.append), "in.log")
    assert summary.sent == len(sink.events)
    assert summary.rejected == len(sink.dead_letters)
    return sink, messages


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(b"a\n", b"a"), (b"a\r\n", b"a"), (b"a", b"a"), (b"\n", b""), (b"a\rb\n", b"a\rb")],
)
def test_strip_newline_removes_only_the_terminator(raw: bytes, expected: bytes) -> None:
    assert strip_newline(raw) == expected


def test_parse_line_uses_the_parser_of_the_format() -> None:
    assert parse_line(LOG_LINE, LineFormat.LOG).ad_id == "ad001"
    assert parse_line(JSON_LINE, LineFormat.JSON).ad_id == "ad002"
    with pytest.raises(InvalidEventError) as error:
        parse_line(LOG_LINE, LineFormat.JSON)
    assert error.value.reason == "malformed"
    with pytest.raises(InvalidEventError):
        parse_line(JSON_LINE, LineFormat.LOG)


def test_parse_line_rejects_bytes_that_are_not_utf8() -> None:
    with pytest.raises(InvalidEventError) as error:
        parse_line(b"[AdClickEvent] ad\xff1, 2024-07-09 00:00:01, u, 1.2.3.4, US", LineFormat.LOG)
    assert error.value.reason == "malformed"
    assert "UTF-8" in error.value.detail


def test_good_lines_are_sent_and_bad_ones_dead_lettered_with_their_line_number() -> None:
    sink, messages = run([LOG_LINE + b"\n", b"garbage\n", b"\n", LOG_LINE.replace(b"USA", b"U5")])
    assert [e.ad_id for e in sink.events] == ["ad001"]
    assert [(d["line"], d["reason"], d["payload"]) for d in sink.dead_letters] == [
        (2, "malformed", "garbage"),
        (4, "invalid_field", LOG_LINE.replace(b"USA", b"U5").decode()),
    ]
    assert all(d["source"] == "produce" and d["file"] == "in.log" for d in sink.dead_letters)
    assert messages[0].startswith("line 2: rejected (malformed)")
    assert messages[1].startswith("line 4: rejected (invalid_field)")


def test_blank_lines_are_skipped_not_rejected() -> None:
    sink = RecordingSink()
    summary = produce_lines(
        [b"\n", b"  \r\n", JSON_LINE], LineFormat.JSON, sink, RejectReporter(print), "-"
    )
    assert (summary.lines, summary.sent, summary.rejected, summary.blank) == (3, 1, 0, 2)


def test_the_same_line_always_gets_the_same_click_id() -> None:
    sink, _ = run([LOG_LINE + b"\n", LOG_LINE + b"\r\n", LOG_LINE])
    assert len({e.click_id for e in sink.events}) == 1


def test_progress_hears_every_byte() -> None:
    seen: list[int] = []
    lines = [JSON_LINE + b"\n"] * 2500
    produce_lines(lines, LineFormat.JSON, RecordingSink(), RejectReporter(print), "-", seen.append)
    assert sum(seen) == sum(map(len, lines))


def test_reporter_shows_the_first_rejections_then_only_counts() -> None:
    messages: list[str] = []
    reporter = RejectReporter(messages.append, limit=3)
    for number in range(1, 11):
        reporter.reject(f"line {number}", InvalidEventError("malformed", "x"))
    reporter.finish()
    assert reporter.count == 10
    assert messages[:3] == [f"line {n}: rejected (malformed): x" for n in (1, 2, 3)]
    assert len(messages) == 5
    assert messages[-1] == "7 more rejected line(s) not shown"


def test_reporter_says_nothing_more_under_the_limit() -> None:
    messages: list[str] = []
    reporter = RejectReporter(messages.append)
    reporter.reject("line 1", InvalidEventError("malformed"))
    reporter.finish()
    assert messages == ["line 1: rejected (malformed)"]


def test_dead_letter_keeps_non_utf8_payloads_losslessly() -> None:
    payload = b"\xff\xfe not text"
    record = dead_letter("malformed", "not UTF-8", "tail", payload, file="a.log", offset=7)
    assert record["payload"] is None
    assert base64.b64decode(record["payload_base64"]) == payload
    assert (record["file"], record["offset"], record["source"]) == ("a.log", 7, "tail")
    assert "payload_base64" not in dead_letter("r", "d", "produce", b"text", line=1)
