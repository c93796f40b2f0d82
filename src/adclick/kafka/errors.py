"""What Kafka's errors mean to adclick."""

from __future__ import annotations

from collections.abc import Sequence

from confluent_kafka import KafkaError, KafkaException

from adclick.errors import DependencyUnavailableError

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


class KafkaClientError(DependencyUnavailableError):
    """Kafka failed an operation of adclick's: the broker is away, a message was not
    delivered, a topic could not be made. ``errors`` are librdkafka's own (code,
    ``fatal()``, ``retriable()``), so a caller can tell them apart without reading text."""

    def __init__(self, what: str, errors: Sequence[KafkaError] = ()) -> None:
        self.errors = list(errors)
        shown = "; ".join(str(error) for error in self.errors[:3])
        more = f" (and {len(self.errors) - 3} more)" if len(self.errors) > 3 else ""
        super().__init__(f"{what}: {shown}{more}" if shown else what)

    @property
    def fatal(self) -> bool:
        """Whether a client reported an error it cannot recover from (a new one is needed)."""
        return any(error.fatal() for error in self.errors)

    @classmethod
    def of(cls, what: str, exc: KafkaException) -> KafkaClientError:
        """From confluent-kafka's exception, whose first argument is the KafkaError."""
        error = exc.args[0] if exc.args else None
        return cls(what, [error] if isinstance(error, KafkaError) else [])
