"""Sending collected clicks and dead letters to Kafka, with delivery confirmed on flush.

The collectors only move their position forward (exit code, tail checkpoint) after
:meth:`ClickSender.flush` returned: every message sent before it is then acknowledged by
the broker, or the flush raised :class:`DeliveryError` and nothing may be considered done.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from confluent_kafka import KafkaError, Message, Producer

from adclick.errors import DependencyUnavailableError
from adclick.events import ClickEvent
from adclick.kafka import make_producer
from adclick.settings import Settings

logger = logging.getLogger(__name__)

# Most delivery errors kept for the message; one broker outage fails every message alike.
_KEPT_ERRORS = 5


class DeliveryError(DependencyUnavailableError):
    """Kafka did not confirm the delivery of some messages (broker down, topic missing...)."""

    def __init__(self, message: str, failed: int, pending: int) -> None:
        super().__init__(message)
        self.failed = failed
        self.pending = pending


class ClickSender:
    """Sends click events to the clicks topic and dead letters to the dead-letter topic.

    ``delivery_timeout_s`` bounds how long a message may wait for the broker before it
    counts as failed, so an unreachable broker turns into a :class:`DeliveryError`
    instead of a hang.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        delivery_timeout_s: float = 120.0,
    ) -> None:
        self.clicks_topic = settings.clicks_topic
        self.dlq_topic = settings.dlq_topic
        self._servers = settings.kafka_bootstrap_servers
        self._flush_timeout_s = delivery_timeout_s + 10.0
        self.sent = 0
        self.dead_lettered = 0
        self.failed = 0
        self._errors: list[str] = []
        self._client_errors: set[str] = set()
        self._producer: Producer = make_producer(
            settings,
            **{
                # Idempotence keeps librdkafka's own retries from writing a message twice.
                "enable.idempotence": True,
                "message.timeout.ms": max(1, int(delivery_timeout_s * 1000)),
                "error_cb": self._on_error,
            },
        )

    def _on_delivery(self, error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            self.failed += 1
            if len(self._errors) < _KEPT_ERRORS:
                self._errors.append(str(error))

    def _on_error(self, error: KafkaError) -> None:
        # librdkafka reports every reconnect attempt; say each distinct problem once.
        text = str(error)
        if text not in self._client_errors:
            self._client_errors.add(text)
            logger.warning("kafka: %s", text)

    def _produce(self, topic: str, value: bytes, key: bytes | None) -> None:
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=self._on_delivery)
                return
            except BufferError:
                # The local queue is full: wait for the broker to take some of it.
                self._producer.poll(0.1)

    def send(self, event: ClickEvent) -> None:
        """Queue one click for the clicks topic, keyed by its ad_id."""
        self._produce(self.clicks_topic, event.to_json(), event.ad_id.encode())
        self.sent += 1

    def send_dead_letter(self, record: dict[str, Any]) -> None:
        """Queue one dead-letter record (see :func:`dead_letter`) for the dead-letter topic."""
        self._produce(self.dlq_topic, orjson.dumps(record), None)
        self.dead_lettered += 1

    def poll(self) -> None:
        """Serve delivery reports without waiting; call it now and then while sending."""
        self._producer.poll(0)

    def flush(self) -> None:
        """Wait until every queued message is acknowledged; raise :class:`DeliveryError` if not.

        After a failure the sender stays failed: nothing it sent may be taken as delivered.
        """
        pending = self._producer.flush(self._flush_timeout_s)
        if pending or self.failed:
            raise DeliveryError(
                f"Kafka at {self._servers} did not confirm delivery: {self.failed} failed, "
                f"{pending} still pending; errors: {'; '.join(self._errors) or '-'}",
                failed=self.failed,
                pending=pending,
            )
