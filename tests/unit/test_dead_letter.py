"""The dead-letter record is bounded for any input, and lossless for inputs that fit."""

from __future__ import annotations

import base64
import hashlib

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from adclick.events.dead_letter import MAX_PAYLOAD_BYTES, dead_letter, without_payload


def kept_bytes(record: dict[str, object]) -> bytes:
    if record["payload"] is not None:
        return str(record["payload"]).encode()
    return base64.b64decode(str(record.get("payload_base64", "")))


@settings(max_examples=300)
@given(
    st.one_of(
        st.binary(max_size=3 * MAX_PAYLOAD_BYTES),
        st.text(max_size=MAX_PAYLOAD_BYTES).map(str.encode),
        st.integers(0, 1_500_000).map(lambda n: b"\x01" * n),
    ),
    st.text(max_size=5000),
)
def test_any_input_gives_a_bounded_record_that_identifies_it(payload: bytes, detail: str) -> None:
    record = dead_letter("malformed", detail, "ingest", payload, topic="t", partition=1, offset=2)
    assert len(orjson.dumps(record)) < 110_000  # fits Kafka's default 1 MB many times over
    assert record["payload_bytes"] == len(payload)
    assert record["payload_sha256"] == hashlib.sha256(payload).hexdigest()
    kept = kept_bytes(record)
    assert payload.startswith(kept)
    if len(payload) <= MAX_PAYLOAD_BYTES:
        assert kept == payload and "payload_truncated" not in record  # lossless
    else:
        assert record["payload_truncated"] is True
        assert len(payload) - len(kept) >= len(payload) - MAX_PAYLOAD_BYTES
    assert len(str(record["detail"])) <= 1000


def test_a_cut_text_payload_stays_text() -> None:
    payload = ("é" * MAX_PAYLOAD_BYTES).encode()  # the cut falls inside a character
    record = dead_letter("malformed", "", "tail", payload, file="a.log", offset=0)
    assert record["payload"] == "é" * (MAX_PAYLOAD_BYTES // 2)
    smaller = without_payload(record)
    assert smaller["payload"] is None and "payload_base64" not in smaller
    assert smaller["payload_sha256"] == record["payload_sha256"]
