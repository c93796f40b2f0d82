"""The pure part of ``adclick produce``: parsing lines, dead letters, reporting rejections."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
from collections.abc import Mapping
from typing import Any

import orjson
import pytest
from confluent_kafka import KafkaError
from hypothesis import given, settings
from hypothesis import strategies as st

from adclick.collect import produce
from adclick.collect.lines import LongLine, read_lines
from adclick.collect.produce import (
    LineFormat,
    RejectReporter,
    parse_line,
    produce_lines,
    strip_newline,
)
from adclick.collect.sender import ClickSender
from adclick.errors import InvalidEventError
from adclick.events import ClickEvent
from adclick.events.dead_letter import dead_letter
from adclick.settings import Settings

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

    def send(self, event: ClickEvent, where: Mapping[str, object]) -> None:
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


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def expected_lines(data: bytes) -> list[bytes]:
    """The lines of ``data`` as a reader sees them: split at newlines, each without its
    terminator (one "\\r" before the newline or the end included)."""
    pieces = data.split(b"\n")
    if pieces[-1] == b"":
        pieces.pop()  # the newline ended the last line; nothing follows it
    return [piece.removesuffix(b"\r") for piece in pieces]


@pytest.mark.parametrize(
    ("data", "items"),
    [
        (b"a\nbb\n", [b"a\n", b"bb\n"]),
        (b"1234\n12345\n", [b"1234\n", (5, b"12345")]),  # the limit is 4 bytes
        (b"1234\r\n1234\r", [b"1234\r\n", b"1234\r"]),  # "\r" is the terminator
        (b"123456789\r", [(9, b"123456789")]),
        (b"12345678", [(8, b"12345678")]),
    ],
)
def test_read_lines_gives_long_lines_by_their_size_and_hash(
    data: bytes, items: list[bytes | tuple[int, bytes]]
) -> None:
    got = [
        (item.size, item.prefix) if isinstance(item, LongLine) else item
        for item in read_lines(io.BytesIO(data), max_line=4)
    ]
    assert got == items
    for item in read_lines(io.BytesIO(data), max_line=4):
        if isinstance(item, LongLine):
            assert item.sha256 == digest(item.prefix)


def test_read_lines_reads_a_huge_line_in_bounded_pieces() -> None:
    class Stream(io.RawIOBase):
        """20 MB of one line, counting the largest read asked for."""

        def __init__(self) -> None:
            self.left, self.largest = 20_000_000, 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            size = min(len(buffer), self.left)
            self.largest = max(self.largest, len(buffer))
            buffer[:size] = b"\x01" * size
            self.left -= size
            return size

    raw = Stream()
    [line] = read_lines(io.BufferedReader(raw), max_line=1 << 20)
    assert isinstance(line, LongLine)
    assert line.size == 20_000_000
    assert len(line.prefix) < 20_000 and raw.largest < 2 << 20


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"\x07" * 400_000, "malformed"),  # control characters: six bytes each once escaped
        (b"\x07" * 1_500_000, "too_large"),  # over the 1 MiB limit of a line
    ],
)
def test_a_huge_line_is_dead_lettered_once_with_its_size_and_hash(line: bytes, reason: str) -> None:
    data = LOG_LINE + b"\n" + line + b"\n" + LOG_LINE
    sink, messages = run(list(read_lines(io.BytesIO(data))))
    assert len(sink.events) == 2
    [record] = sink.dead_letters
    assert (record["reason"], record["line"], record["source"]) == (reason, 2, "produce")
    assert (record["payload_bytes"], record["payload_sha256"]) == (len(line), digest(line))
    assert record["payload_truncated"] is True
    assert line.startswith(record["payload"].encode())
    assert len(orjson.dumps(record)) < 200_000
    assert messages[0].startswith(f"line 2: rejected ({reason})")


def test_a_parser_failure_nobody_foresaw_is_dead_lettered_not_raised(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(_text: str) -> ClickEvent:
        raise RecursionError("deep")

    monkeypatch.setattr(produce, "parse_log_line", broken)
    monkeypatch.setattr(produce, "_unforeseen", set())  # logged once per kind and process
    sink, messages = run([b"one\n", b"two\n"])
    assert messages[0] == "line 1: rejected (parser_failed): RecursionError: deep"
    assert [(d["reason"], d["detail"]) for d in sink.dead_letters] == [
        ("parser_failed", "RecursionError: deep"),
    ] * 2
    assert len([r for r in caplog.records if "RecursionError" in r.getMessage()]) == 1


KNOWN_REASONS = {"malformed", "missing_field", "invalid_field", "too_large"}


def check_classified(data: bytes, fmt: LineFormat, max_line: int) -> None:
    """Every line of ``data`` is one click, one dead letter or blank, and the dead letters
    name their line by number, size and hash."""
    sink = RecordingSink()
    lines = expected_lines(data)
    summary = produce_lines(
        read_lines(io.BytesIO(data), max_line), fmt, sink, RejectReporter(lambda _: None), "-"
    )
    assert summary.lines == len(lines)
    assert (summary.sent, summary.rejected) == (len(sink.events), len(sink.dead_letters))
    assert summary.sent + summary.rejected + summary.blank == len(lines)
    for record in sink.dead_letters:
        line = lines[record["line"] - 1]
        assert record["reason"] in KNOWN_REASONS, record
        assert (record["payload_bytes"], record["payload_sha256"]) == (len(line), digest(line))
    for event in sink.events:  # what is sent reads back as the same click
        assert parse_line(event.to_json(), LineFormat.JSON) == event


FUZZ = settings(max_examples=300, deadline=None, derandomize=True)
# Lines near the real ones, so that some are clicks and the parsers' later checks are hit.
near_lines = st.sampled_from([LOG_LINE, JSON_LINE]).flatmap(
    lambda line: st.tuples(
        st.integers(0, len(line)), st.integers(0, len(line)), st.binary(max_size=8)
    ).map(lambda cut: line[: cut[0]] + cut[2] + line[cut[1] :])
)
any_lines = st.lists(st.one_of(st.binary(max_size=200), near_lines), max_size=12)


@FUZZ
@given(
    lines=any_lines,
    newline=st.sampled_from([b"\n", b"\r\n"]),
    fmt=st.sampled_from(LineFormat),
)
def test_produce_classifies_any_lines_of_any_bytes(
    lines: list[bytes], newline: bytes, fmt: LineFormat
) -> None:
    check_classified(newline.join(lines), fmt, max_line=150)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
json_fields = st.sampled_from(["ad_id", "timestamp", "user_id", "ip", "country", "click_id"])


@FUZZ
@given(
    st.dictionaries(json_fields | st.text(max_size=10), json_values, max_size=8) | json_values,
)
def test_produce_classifies_any_json(value: Any) -> None:
    # The standard library writes what orjson refuses (integers beyond 64 bits...).
    text = json.dumps(value, ensure_ascii=False)
    check_classified(text.encode() + b"\n", LineFormat.JSON, max_line=1 << 20)


class SmallBroker:
    """Plays a broker whose message limit is ``limit`` bytes and that refuses larger messages
    on delivery (the test broker, Tansu, enforces no limit; the client-side refusal is
    tested against it in tests/integration/test_collect.py)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.pending: list[tuple[str, bytes, Any]] = []
        self.delivered: list[tuple[str, bytes]] = []

    def produce(self, topic: str, value: bytes, key: bytes | None, on_delivery: Any) -> None:
        self.pending.append((topic, value, on_delivery))

    def poll(self, _timeout: float = 0) -> int:
        served, self.pending = self.pending, []
        for topic, value, on_delivery in served:
            if len(value) > self.limit:
                on_delivery(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE), None)
            else:
                self.delivered.append((topic, value))
                on_delivery(None, None)
        return len(served)

    def flush(self, _timeout: float = 0) -> int:
        while self.pending:  # a callback may queue a message again
            self.poll()
        return 0


def test_messages_the_broker_refuses_as_too_large_end_as_bounded_dead_letters() -> None:
    sender = ClickSender(
        Settings(kafka_bootstrap_servers="127.0.0.1:9"), source="tail", delivery_timeout_s=1
    )
    broker = SmallBroker(limit=3_000)
    sender._producer = broker  # type: ignore[assignment]
    big = dataclasses.replace(
        parse_line(JSON_LINE, LineFormat.JSON),
        attributes={f"a{n:02d}": "b" * 128 for n in range(32)},
    )
    sender.send(parse_line(LOG_LINE, LineFormat.LOG), {"file": "a.log", "offset": 0})
    sender.send(big, {"file": "a.log", "offset": 70})
    sender.send_dead_letter(dead_letter("malformed", "x", "tail", b"\x01" * 4_000, offset=9000))
    sender.flush()  # nothing failed: every refusal was handled

    assert (sender.refused_clicks, sender.bare_dead_letters, sender.failed) == (1, 2, 0)
    clicks = [value for topic, value in broker.delivered if topic == sender.clicks_topic]
    assert clicks == [parse_line(LOG_LINE, LineFormat.LOG).to_json()]
    dead = sorted(
        (orjson.loads(value) for topic, value in broker.delivered if topic == sender.dlq_topic),
        key=lambda record: record["offset"],
    )
    assert [(d["reason"], d["offset"], d["payload"], d["payload_truncated"]) for d in dead] == [
        ("too_large", 70, None, True),
        ("malformed", 9000, None, True),
    ]
    assert dead[0]["payload_sha256"] == digest(big.to_json())
    assert dead[1]["payload_bytes"] == 4_000
