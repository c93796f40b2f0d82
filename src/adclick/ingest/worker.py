"""The ingest worker: a consumer-group member that writes one transaction per batch.

Offsets live in the database, not in Kafka: on every assignment the worker seeks each
partition to the offset stored with the last committed batch, which is what makes a
crash at any point lose nothing and count nothing twice (docs/architecture.md).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import time
from collections import Counter
from dataclasses import dataclass
from types import FrameType

import psycopg
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential

from adclick.db.connect import connect
from adclick.errors import DependencyUnavailableError
from adclick.ingest import metrics
from adclick.ingest.batch import KafkaRecord, assemble_batch
from adclick.ingest.clock import PartitionClocks
from adclick.ingest.dead_letters import DeadLetterPublisher
from adclick.ingest.writer import BatchWriter
from adclick.kafka.clients import make_consumer
from adclick.settings import Settings

log = logging.getLogger(__name__)

# How long a worker keeps retrying an unreachable database before it gives up and exits
# (a supervisor restarts it; nothing is lost, the batch is re-read).
DATABASE_RETRY_S = 120.0


@dataclass
class WorkerTotals:
    """What one worker did, for its exit summary and for tests."""

    consumed: int = 0
    inserted: int = 0
    duplicates: int = 0
    late: int = 0
    dead_lettered: int = 0
    batches: int = 0


class IngestWorker:
    """One consumer of the ingest group; ``run`` returns when stopped or idle."""

    def __init__(self, settings: Settings, name: str = "worker-0") -> None:
        self.settings = settings
        self.name = name
        self.totals = WorkerTotals()
        self._stopping = False
        self._clocks = PartitionClocks(
            lateness_ms=int(settings.allowed_lateness.total_seconds() * 1000),
            horizon_ms=int(settings.dedup_horizon.total_seconds() * 1000),
        )
        self._max_skew_ms = int(settings.max_clock_skew.total_seconds() * 1000)
        # Next offset to read per assigned partition (None: from the beginning).
        self._positions: dict[int, int | None] = {}
        self._ever_assigned = False
        self._writer = self._connect_writer()
        self._dead_letters = DeadLetterPublisher(settings)
        self._consumer: Consumer = make_consumer(settings, **{"client.id": f"adclick-{name}"})

    @retry(
        retry=retry_if_exception_type((psycopg.OperationalError, DependencyUnavailableError)),
        wait=wait_exponential(multiplier=0.2, max=5),
        stop=stop_after_delay(DATABASE_RETRY_S),
        reraise=True,
    )
    def _connect_writer(self) -> BatchWriter:
        return BatchWriter(connect(self.settings), self.settings)

    def stop(self) -> None:
        """Finish the batch in flight, then leave the group and return from ``run``."""
        self._stopping = True

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT stop the worker gracefully."""

        def handle(_signum: int, _frame: FrameType | None) -> None:
            self.stop()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    # -- assignment -----------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        stored = self._writer.load_positions([tp.partition for tp in partitions])
        for tp in partitions:
            position = stored[tp.partition]
            tp.offset = OFFSET_BEGINNING if position.next_offset is None else position.next_offset
            self._positions[tp.partition] = position.next_offset
            if position.newest_ms is not None:
                self._clocks.newest_ms[tp.partition] = position.newest_ms
        consumer.assign(partitions)
        self._ever_assigned = self._ever_assigned or bool(partitions)
        log.info(
            "%s assigned partitions %s at %s",
            self.name,
            [tp.partition for tp in partitions],
            [tp.offset for tp in partitions],
        )

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Batches are written synchronously between consume() calls, so nothing is in
        # flight here; the next owner resumes from the offsets already committed.
        for tp in partitions:
            self._positions.pop(tp.partition, None)
            self._clocks.newest_ms.pop(tp.partition, None)
        consumer.unassign()
        log.info("%s revoked partitions %s", self.name, [tp.partition for tp in partitions])

    # -- the loop -------------------------------------------------------------------

    def run(self, exit_when_idle_s: float | None = None) -> WorkerTotals:
        """Consume and write batches until stopped, or until drained and idle that long."""
        settings = self.settings
        self._consumer.subscribe(
            [settings.clicks_topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        started = last_data = last_report = time.monotonic()
        # A worker that never gets a partition (more workers than partitions) may still
        # exit when idle, once the group has had time to settle.
        settle_s = 3 * self.settings.kafka_session_timeout_ms / 1000
        try:
            while not self._stopping:
                messages = self._consumer.consume(
                    settings.ingest_batch_size, settings.ingest_batch_timeout_s
                )
                records = self._usable(messages)
                now = time.monotonic()
                if records:
                    last_data = now
                    self._process(records)
                elif (
                    exit_when_idle_s is not None
                    and now - last_data >= exit_when_idle_s
                    and (self._ever_assigned or now - started >= exit_when_idle_s + settle_s)
                    and self._drained()
                ):
                    log.info(
                        "%s: drained and idle for %.1f s, exiting", self.name, exit_when_idle_s
                    )
                    break
                if now - last_report >= 60:
                    last_report = now
                    log.info("%s totals %s", self.name, self.totals)
        finally:
            self._consumer.close()  # leaves the group at once, so others take over quickly
            self._writer.conn.close()
        return self.totals

    def _usable(self, messages: list[Message]) -> list[KafkaRecord]:
        records: list[KafkaRecord] = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    if error.fatal():
                        raise DependencyUnavailableError(f"Kafka: {error}")
                    log.warning("%s: Kafka reports %s", self.name, error)
                continue
            # A message of a partition revoked during this consume() belongs to the next
            # owner, which reads it again from the stored offset.
            if message.partition() in self._positions:
                records.append(message)
        return records

    def _process(self, records: list[KafkaRecord]) -> None:
        started = time.perf_counter()
        clocks = self._clocks.copy()
        batch = assemble_batch(
            records,
            self.settings.clicks_topic,
            clocks,
            now_ms=int(time.time() * 1000),
            max_skew_ms=self._max_skew_ms,
        )
        try:
            inserted, rejected = self._writer.write(batch, clocks, self._dead_letters.publish)
        except (psycopg.OperationalError, DependencyUnavailableError) as exc:
            # The commit may or may not have happened: the stored offsets tell.
            log.error("%s: batch of %d not written (%s); re-reading", self.name, len(records), exc)
            self._recover()
            return
        self._clocks = clocks
        self._positions.update(batch.next_offsets)
        reasons = Counter(letter.reason for letter in batch.dead_letters + rejected)
        self._count(batch.consumed, len(batch.rows) - len(rejected), inserted, batch.late, reasons)
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        log.debug(
            "%s batch: %d consumed, %d inserted, %d dead letters in %.3f s",
            self.name,
            batch.consumed,
            inserted,
            len(batch.dead_letters),
            time.perf_counter() - started,
        )

    def _count(
        self, consumed: int, valid: int, inserted: int, late: int, reasons: dict[str, int]
    ) -> None:
        totals = self.totals
        totals.batches += 1
        totals.consumed += consumed
        totals.inserted += inserted
        totals.duplicates += valid - inserted
        totals.late += late
        totals.dead_lettered += sum(reasons.values())
        metrics.EVENTS_CONSUMED.inc(consumed)
        metrics.EVENTS_INSERTED.inc(inserted)
        metrics.EVENTS_DUPLICATE.inc(valid - inserted)
        metrics.EVENTS_LATE.inc(late)
        for reason, count in reasons.items():
            metrics.EVENTS_DEAD_LETTERED.labels(reason).inc(count)
        for partition in self._positions:
            watermark = self._clocks.watermark_ms(partition)
            if watermark is not None:
                metrics.WATERMARK.labels(str(partition)).set(watermark / 1000)

    def _recover(self) -> None:
        """After a failed batch: reconnect and rewind every partition to its stored offset."""
        with contextlib.suppress(psycopg.Error):
            self._writer.conn.close()
        self._writer = self._connect_writer()
        partitions = list(self._positions)
        stored = self._writer.load_positions(partitions)
        for partition in partitions:
            position = stored[partition]
            offset = OFFSET_BEGINNING if position.next_offset is None else position.next_offset
            self._consumer.seek(TopicPartition(self.settings.clicks_topic, partition, offset))
            self._positions[partition] = position.next_offset
            if position.newest_ms is None:
                self._clocks.newest_ms.pop(partition, None)
            else:
                self._clocks.newest_ms[partition] = position.newest_ms

    def _drained(self) -> bool:
        """True when every assigned partition has been read up to its end."""
        for partition, position in list(self._positions.items()):
            low, high = self._consumer.get_watermark_offsets(
                TopicPartition(self.settings.clicks_topic, partition), timeout=10
            )
            if high > (low if position is None else position):
                return False
        return True
