"""Kafka's failures reach callers as KafkaClientError, a DependencyUnavailableError (what
the processes retry or exit on) that keeps librdkafka's errors, not only their text."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException
from hypothesis import given
from hypothesis import strategies as st

from adclick.errors import DependencyUnavailableError
from adclick.kafka.errors import KafkaClientError

CODES = [KafkaError._TRANSPORT, KafkaError._MSG_TIMED_OUT, KafkaError.TOPIC_AUTHORIZATION_FAILED]


@given(
    codes=st.lists(st.sampled_from(CODES), max_size=6),
    fatal=st.lists(st.booleans(), min_size=6, max_size=6),
)
def test_the_errors_are_kept_with_their_codes(codes: list[int], fatal: list[bool]) -> None:
    errors = [KafkaError(code, fatal=f) for code, f in zip(codes, fatal, strict=False)]
    failure = KafkaClientError("dead-letter topic t", errors)
    assert isinstance(failure, DependencyUnavailableError)
    assert [e.code() for e in failure.errors] == codes
    assert failure.fatal == any(fatal[: len(codes)])
    assert str(failure).startswith("dead-letter topic t")
    for error in errors[:3]:
        assert str(error) in str(failure)
    assert ("more)" in str(failure)) == (len(errors) > 3)


def test_made_from_confluent_kafkas_exception() -> None:
    error = KafkaError(KafkaError._TRANSPORT)
    failure = KafkaClientError.of("Kafka at b:9092 is not reachable", KafkaException(error))
    assert [e.code() for e in failure.errors] == [KafkaError._TRANSPORT]
    assert KafkaClientError.of("x", KafkaException("no error object")).errors == []
