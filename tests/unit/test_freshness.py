"""The freshness histogram (adclick_ingest_freshness_seconds) from messages' Kafka
timestamps, which producers set: one stamped 0, none or ahead of the clock cannot make it
negative or decades long."""

from __future__ import annotations

from confluent_kafka import (
    TIMESTAMP_CREATE_TIME,
    TIMESTAMP_LOG_APPEND_TIME,
    TIMESTAMP_NOT_AVAILABLE,
)
from hypothesis import given
from hypothesis import strategies as st

from adclick.ingest.worker import _waited_s
from tests.kafka_records import FakeRecord

kinds = st.sampled_from([TIMESTAMP_NOT_AVAILABLE, TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME])


@given(kinds, st.integers(-(2**63), 2**63 - 1), st.floats(1e9, 5e9))
def test_any_kafka_timestamp_gives_a_wait_in_range_or_none(
    kind: int, stamp_ms: int, committed_at: float
) -> None:
    waited = _waited_s(FakeRecord(0, 0, b"{}", stamp=(kind, stamp_ms)), committed_at)
    if kind == TIMESTAMP_NOT_AVAILABLE or stamp_ms <= 0:
        assert waited is None
    else:
        assert waited is not None and 0 <= waited <= committed_at


def test_a_stamped_message_waited_from_its_stamp() -> None:
    record = FakeRecord(0, 0, b"{}", stamp=(TIMESTAMP_CREATE_TIME, 1_700_000_000_000))
    assert _waited_s(record, 1_700_000_002.5) == 2.5
