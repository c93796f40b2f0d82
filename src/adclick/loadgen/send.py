"""Producing generated blocks to Kafka, optionally paced, with exact delivery accounting."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from adclick.errors import DependencyUnavailableError
from adclick.loadgen.generator import Block

# Serving delivery reports (and progress) this often keeps librdkafka's queue moving
# without paying a poll() per message.
_POLL_EVERY = 4096
_BUFFER_FULL_WAIT_S = 0.05


class BlockSink(Protocol):
    """What a sent block is added to: the truth of what was sent (TruthAccumulator)."""

    def add(self, block: Block) -> None: ...


class ProducerLike(Protocol):
    """The part of confluent_kafka.Producer that sending uses."""

    def produce(self, topic: str, value: bytes, key: bytes) -> None: ...

    def poll(self, timeout: float) -> int: ...

    def flush(self, timeout: float) -> int: ...


@dataclass
class DeliveryErrors:
    """Counts failed deliveries; its :meth:`callback` is the producer's ``on_delivery``.

    Given with ``delivery.report.only.error`` it is called for failures only, so success
    costs no Python call per message.
    """

    failed: int = 0
    first_error: str = ""

    def callback(self, err: Any, _msg: Any) -> None:
        """Record one delivery report."""
        if err is not None:
            self.failed += 1
            if not self.first_error:
                self.first_error = str(err)


@dataclass
class SendReport:
    """What a run sent."""

    sent: int = 0
    unique: int = 0
    duplicates: int = 0
    late: int = 0
    invalid: int = 0
    elapsed_s: float = 0.0
    invalid_kinds: dict[str, int] = field(default_factory=dict)

    @property
    def events_per_s(self) -> float:
        """Sends per second of wall-clock time, generation and final flush included."""
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def summary(self) -> str:
        """One line for people and logs."""
        return (
            f"sent {self.sent:,}  unique valid {self.unique:,}  duplicates {self.duplicates:,}  "
            f"late {self.late:,}  invalid {self.invalid:,}  elapsed {self.elapsed_s:.2f} s  "
            f"{self.events_per_s:,.0f} events/s"
        )


def send_blocks(
    blocks: Iterable[Block],
    producer: ProducerLike,
    topic: str,
    *,
    rate: float | None = None,
    truth: BlockSink | None = None,
    on_progress: Callable[[int], None] | None = None,
    flush_timeout_s: float = 120.0,
    delivery_errors: DeliveryErrors | None = None,
) -> SendReport:
    """Produce every message of ``blocks`` to ``topic`` and wait until all are delivered.

    ``rate`` paces the sends (messages per second of wall-clock time); ``None`` sends as fast
    as the producer takes them. Each block's fresh clicks are added to ``truth``.
    ``on_progress`` receives the number of messages sent since its last call.

    Raises :class:`DependencyUnavailableError` when messages are still undelivered after
    ``flush_timeout_s`` or ``delivery_errors`` recorded a failure.
    """
    report = SendReport()
    produce = producer.produce
    poll = producer.poll
    # Paced runs wait in small steps, so that they are smooth rather than bursts of a block.
    step = max(1, min(1000, int(rate / 100))) if rate else _POLL_EVERY
    started = time.perf_counter()
    for block in blocks:
        if truth is not None:
            truth.add(block)
        keys = block.keys
        payloads = block.payloads
        for lo in range(0, len(payloads), step):
            if rate:
                _wait_until(started + (report.sent + lo) / rate, poll)
            for key, value in zip(keys[lo : lo + step], payloads[lo : lo + step], strict=True):
                try:
                    produce(topic, value, key)
                except BufferError:
                    # librdkafka's local queue is full: serve delivery reports until it drains.
                    _produce_when_room(producer, topic, value, key)
            poll(0)
            if on_progress is not None:
                on_progress(min(step, len(payloads) - lo))
        report.sent += len(payloads)
        report.unique += block.fresh
        report.duplicates += block.duplicates
        report.late += block.late
        report.invalid += block.invalid
        for kind, count in block.invalid_kinds.items():
            report.invalid_kinds[kind] = report.invalid_kinds.get(kind, 0) + count
    remaining = producer.flush(flush_timeout_s)
    report.elapsed_s = time.perf_counter() - started
    if remaining:
        raise DependencyUnavailableError(
            f"{remaining:,} of {report.sent:,} messages were still undelivered after "
            f"{flush_timeout_s:g} s"
        )
    if delivery_errors is not None and delivery_errors.failed:
        raise DependencyUnavailableError(
            f"{delivery_errors.failed:,} of {report.sent:,} messages failed to deliver, "
            f"first: {delivery_errors.first_error}"
        )
    return report


def _produce_when_room(producer: ProducerLike, topic: str, value: bytes, key: bytes) -> None:
    while True:
        producer.poll(_BUFFER_FULL_WAIT_S)
        try:
            producer.produce(topic, value, key)
            return
        except BufferError:
            continue


def _wait_until(deadline: float, poll: Callable[[float], int]) -> None:
    # Waiting inside poll() serves delivery reports instead of idling.
    while (left := deadline - time.perf_counter()) > 0:
        poll(min(left, 0.1))
