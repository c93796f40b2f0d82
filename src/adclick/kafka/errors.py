"""What Kafka's errors mean to adclick."""

from __future__ import annotations

from confluent_kafka import KafkaError

# How the client (before sending) and the broker (on delivery) say a message is too large:
# a property of the message, which no retry cures, unlike an unavailable broker.
_TOO_LARGE_CODES = frozenset(
    (
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_MSG_SIZE,
        KafkaError.INVALID_RECORD,
    )
)


def is_too_large(error: KafkaError | None) -> bool:
    """True if Kafka refused a message for its size, not for being unavailable."""
    return error is not None and error.code() in _TOO_LARGE_CODES
