"""Sending collected clicks and dead letters to Kafka, with delivery confirmed on flush.

The collectors only move their position forward (exit code, tail checkpoint) after
:meth:`ClickSender.flush` returned: every message sent before it is then acknowledged by
the broker, or the flush raised :class:`DeliveryError` and nothing may be considered done.

A message too large for the client's or the broker's limit is input, not an outage, so it
never fails the run: a click is dead-lettered instead (reason ``too_large``), a dead letter
is sent again without its payload (its size and SHA-256 still name the input).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from adclick.collect.file_names import display_name
from adclick.errors import DependencyUnavailableError
from adclick.events import ClickEvent
from adclick.events.dead_letter import DeadLetterReason, dead_letter, without_payload
from adclick.kafka import make_producer
from adclick.kafka.errors import is_too_large
from adclick.settings import Settings

logger = logging.getLogger(__name__)

# Most delivery errors kept for the message; one broker outage fails every message alike.
_KEPT_ERRORS = 5
OnDelivery = Callable[[KafkaError | None, Message], None]


def _dead_letter_json(record: Mapping[str, Any]) -> bytes:
    """The record as JSON. The collectors put file names in readable form already
    (:mod:`adclick.collect.file_names`); text that still holds a lone surrogate is escaped
    here rather than failing the collector, since a dead letter must never stop one."""
    try:
        return orjson.dumps(record)
    except orjson.JSONEncodeError:
        return orjson.dumps(_escaped(record))


def _escaped(value: Any) -> Any:
    if isinstance(value, str):
        return display_name(value)
    if isinstance(value, Mapping):
        return {_escaped(key): _escaped(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_escaped(item) for item in value]
    return value


class DeliveryError(DependencyUnavailableError):
    """Kafka did not confirm the delivery of some messages (broker down, topic missing...)."""

    def __init__(self, message: str, failed: int, pending: int) -> None:
        super().__init__(message)
        self.failed = failed
        self.pending = pending


class ClickSender:
    """Sends click events to the clicks topic and dead letters to the dead-letter topic.

    ``source`` names the collector in the dead letters the sender makes itself (a click
    too large for Kafka). ``delivery_timeout_s`` bounds how long a message may wait for the
    broker before it counts as failed, so an unreachable broker turns into a
    :class:`DeliveryError` instead of a hang.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        source: str,
        delivery_timeout_s: float = 120.0,
    ) -> None:
        self.source = source
        self.clicks_topic = settings.clicks_topic
        self.dlq_topic = settings.dlq_topic
        self._servers = settings.kafka_bootstrap_servers
        self._flush_timeout_s = delivery_timeout_s + 10.0
        self.sent = 0
        self.dead_lettered = 0
        self.failed = 0
        self.refused_clicks = 0  # too large for Kafka: dead-lettered instead
        self.bare_dead_letters = 0  # too large for Kafka: sent without their payload
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
            self._fail(error)

    def _on_error(self, error: KafkaError) -> None:
        # librdkafka reports every reconnect attempt; say each distinct problem once.
        text = str(error)
        if text not in self._client_errors:
            self._client_errors.add(text)
            logger.warning("kafka: %s", text)

    def _fail(self, error: object) -> None:
        self.failed += 1
        if len(self._errors) < _KEPT_ERRORS:
            self._errors.append(str(error))

    def _produce(
        self, topic: str, value: bytes, key: bytes | None, on_delivery: OnDelivery
    ) -> KafkaError | None:
        """Queue one message; the client's error if it refused it as too large, else None."""
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
                return None
            except BufferError:
                # The local queue is full: wait for the broker to take some of it.
                self._producer.poll(0.1)
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                if is_too_large(error):
                    return error
                raise DeliveryError(
                    f"Kafka at {self._servers} refused a message: {error}", failed=1, pending=0
                ) from None

    def _in_callback(self, action: Callable[[], None]) -> None:
        # An exception raised in a delivery callback would surface from an unrelated poll
        # or flush: it is recorded as a failed delivery, which the next flush reports.
        try:
            action()
        except DeliveryError as exc:
            self._fail(exc)

    def send(self, event: ClickEvent, where: Mapping[str, object]) -> None:
        """Queue one click for the clicks topic, keyed by its ad_id.

        ``where`` says where the click was read (file, line or offset): if Kafka refuses the
        click as too large, it goes to the dead-letter topic with it.
        """
        value = event.to_json()

        def on_delivery(error: KafkaError | None, message: Message) -> None:
            if is_too_large(error):
                self._in_callback(lambda: self._refuse_click(value, error, where))
            else:
                self._on_delivery(error, message)

        refused = self._produce(self.clicks_topic, value, event.ad_id.encode(), on_delivery)
        self.sent += 1
        if refused is not None:
            self._refuse_click(value, refused, where)

    def _refuse_click(
        self, value: bytes, error: KafkaError | None, where: Mapping[str, object]
    ) -> None:
        self.refused_clicks += 1
        detail = f"Kafka refused the click of {len(value):,} bytes: {error}"
        if self.refused_clicks == 1:
            logger.warning("%s; such clicks go to %s", detail, self.dlq_topic)
        self.send_dead_letter(
            dead_letter(DeadLetterReason.TOO_LARGE, detail, self.source, value, **where)
        )

    def send_dead_letter(self, record: dict[str, Any]) -> None:
        """Queue one dead-letter record (see :func:`dead_letter`) for the dead-letter topic.

        One that Kafka refuses as too large is sent again without its payload.
        """

        def on_delivery(error: KafkaError | None, message: Message) -> None:
            if is_too_large(error):
                self._in_callback(lambda: self._send_bare(record, error))
            else:
                self._on_delivery(error, message)

        refused = self._produce(self.dlq_topic, _dead_letter_json(record), None, on_delivery)
        self.dead_lettered += 1
        if refused is not None:
            self._send_bare(record, refused)

    def _send_bare(self, record: Mapping[str, Any], error: KafkaError | None) -> None:
        self.bare_dead_letters += 1
        if self.bare_dead_letters == 1:
            logger.warning(
                "Kafka refused a dead letter as too large (%s): such dead letters are sent "
                "without their payload",
                error,
            )
        refused = self._produce(
            self.dlq_topic, _dead_letter_json(without_payload(record)), None, self._on_delivery
        )
        if refused is not None:  # a few hundred bytes: Kafka's limit is set far too low
            self._fail(refused)

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
