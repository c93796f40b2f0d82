"""Publishing rejected messages to the dead-letter topic.

Dead letters are flushed before the batch's transaction commits. A crash between the
two sends them again when the batch is re-read (at-least-once); each carries its source
topic, partition and offset, which identifies such repeats.

No input can make publishing fail for good, or the worker would re-read the same batch
forever: a record is bounded (adclick.events.dead_letter), and one the broker still
refuses as too large is sent again without its payload, keeping reason, origin, size and
hash. Only the broker being unavailable fails a batch, which the worker then re-reads.
"""

from __future__ import annotations

import logging

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from adclick.ingest.batch import DeadLetter
from adclick.kafka.clients import make_producer
from adclick.kafka.errors import KafkaClientError, is_too_large
from adclick.settings import Settings

log = logging.getLogger(__name__)

# A dead letter's message key is the original key, cut to this many bytes: the key of a
# hostile message may be as large as the broker allows.
MAX_KEY_BYTES = 1024


class DeadLetterPublisher:
    """Sends dead letters and confirms their delivery."""

    def __init__(self, settings: Settings) -> None:
        self._topic = settings.dlq_topic
        self._producer: Producer = make_producer(settings, {"linger.ms": 5})
        self._errors: list[KafkaError] = []
        self._too_large: list[DeadLetter] = []

    def publish(self, dead_letters: list[DeadLetter], timeout_s: float = 30.0) -> None:
        """Send all and wait until the broker has them; raise if any was not delivered."""
        if not dead_letters:
            return
        for letter in dead_letters:
            self._send(letter, with_payload=True)
        remaining = self._producer.flush(timeout_s)
        refused, self._too_large = self._too_large, []
        for letter in refused:
            # Rare: a broker whose message limit is below a bounded record's size.
            log.warning(
                "dead letter of %s[%d]@%d refused as too large; sent without its payload",
                letter.topic,
                letter.partition,
                letter.offset,
            )
            self._send(letter, with_payload=False)
        if refused:
            remaining = self._producer.flush(timeout_s)
        if remaining or self._errors:
            errors, self._errors = self._errors, []
            raise KafkaClientError(
                f"dead-letter topic {self._topic}: {remaining} undelivered", errors
            )

    def _send(self, letter: DeadLetter, *, with_payload: bool) -> None:
        def on_delivery(error: KafkaError | None, _message: Message) -> None:
            if error is None:
                return
            if with_payload and is_too_large(error):
                self._too_large.append(letter)
            else:
                self._errors.append(error)

        value = letter.to_json(with_payload=with_payload)
        key = None if letter.key is None else letter.key[:MAX_KEY_BYTES]
        while True:
            try:
                self._producer.produce(self._topic, value=value, key=key, on_delivery=on_delivery)
                return
            except BufferError:
                self._producer.poll(0.5)  # the local queue is full: let deliveries drain
            except KafkaException as exc:
                error = exc.args[0]
                if with_payload and isinstance(error, KafkaError) and is_too_large(error):
                    with_payload = False
                    value = letter.to_json(with_payload=False)
                    continue
                raise KafkaClientError.of(f"dead-letter topic {self._topic}", exc) from None
