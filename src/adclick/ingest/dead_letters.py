"""Publishing rejected messages to the dead-letter topic.

Dead letters are flushed before the batch's transaction commits. A crash between the
two sends them again when the batch is re-read (at-least-once); each carries its source
topic, partition and offset, which identifies such repeats.
"""

from __future__ import annotations

from confluent_kafka import KafkaError, Message, Producer

from adclick.errors import DependencyUnavailableError
from adclick.ingest.batch import DeadLetter
from adclick.kafka.clients import make_producer
from adclick.settings import Settings


class DeadLetterPublisher:
    """Sends dead letters and confirms their delivery."""

    def __init__(self, settings: Settings) -> None:
        self._topic = settings.dlq_topic
        self._producer: Producer = make_producer(settings, **{"linger.ms": 5})
        self._errors: list[str] = []

    def _on_delivery(self, error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            self._errors.append(str(error))

    def publish(self, dead_letters: list[DeadLetter], timeout_s: float = 30.0) -> None:
        """Send all and wait until the broker has them; raise if any was not delivered."""
        if not dead_letters:
            return
        for letter in dead_letters:
            self._producer.produce(
                self._topic, value=letter.to_json(), key=letter.key, on_delivery=self._on_delivery
            )
        remaining = self._producer.flush(timeout_s)
        if remaining or self._errors:
            errors, self._errors = self._errors, []
            raise DependencyUnavailableError(
                f"dead-letter topic {self._topic}: {remaining} undelivered, errors: {errors[:3]}"
            )
