"""The ingest worker: a consumer-group member that writes one transaction per batch.

Offsets live in the database, not in Kafka: on every assignment the worker seeks each
partition to the offset stored with the last committed batch, which is what makes a
crash at any point lose nothing and count nothing twice (docs/architecture.md).
"""

from __future__ import annotations

import logging
import signal
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import FrameType

import psycopg
from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

# OffsetSpec is exported at run time but missing from the package's type information.
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    OffsetSpec,
)
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

from adclick.errors import DependencyUnavailableError
from adclick.ingest import metrics
from adclick.ingest.batch import Batch, KafkaRecord, assemble_batch
from adclick.ingest.clock import PartitionClocks
from adclick.ingest.dead_letters import DeadLetterPublisher
from adclick.ingest.new_keys import NO_CLAIMS, floor_after
from adclick.ingest.recent import RecentClicks
from adclick.ingest.routing import Routing
from adclick.ingest.shards import ShardWriters
from adclick.ingest.writer import WriteResult
from adclick.kafka.clients import check_sharded_topic, incremental_rebalancing, member_config
from adclick.kafka.errors import KafkaClientError
from adclick.settings import Settings

log = logging.getLogger(__name__)

# How long a worker keeps retrying an unreachable database before it gives up and exits
# (a supervisor restarts it; nothing is lost, the batch is re-read).
DATABASE_RETRY_S = 120.0
# The same inside a rebalance callback, where the whole group waits for this worker (up
# to max.poll.interval.ms, 300 s by default, before librdkafka evicts it): past this the
# worker exits, the group goes on without it, and its supervisor starts it again.
REBALANCE_DATABASE_RETRY_S = 20.0


@dataclass(frozen=True)
class _Pending:
    """The batch the writer thread is committing."""

    future: Future[WriteResult]
    batch: Batch
    started: float


@dataclass
class WorkerTotals:
    """What one worker did, for its exit summary and for tests."""

    consumed: int = 0
    inserted: int = 0
    duplicates: int = 0
    late: int = 0
    dead_lettered: int = 0
    batches: int = 0
    # Wall-clock span of the work: start of the first batch, commit of the last.
    first_batch_at: float | None = None
    last_commit_at: float | None = None

    def add(self, consumed: int, inserted: int, duplicates: int, late: int, dead: int) -> None:
        """One committed batch's counts."""
        self.batches += 1
        self.consumed += consumed
        self.inserted += inserted
        self.duplicates += duplicates
        self.late += late
        self.dead_lettered += dead


class IngestWorker:
    """One consumer of the ingest group; ``run`` returns when stopped or idle."""

    def __init__(
        self, settings: Settings, name: str = "worker-0", *, record_freshness: bool = False
    ) -> None:
        self.settings = settings
        self.name = name
        self.totals = WorkerTotals()
        # Seconds from each message's produce time to its batch's commit; the benchmark
        # turns on this per-message bookkeeping, production does not pay for it.
        self.freshness_s: list[float] | None = [] if record_freshness else None
        self._stopping = False
        self._clocks = PartitionClocks(
            lateness_ms=int(settings.allowed_lateness.total_seconds() * 1000),
            horizon_ms=int(settings.dedup_horizon.total_seconds() * 1000),
        )
        self._max_skew_ms = int(settings.max_clock_skew.total_seconds() * 1000)
        self._routing = Routing.of(settings)
        # Next offset to read per assigned partition (None: from the beginning).
        self._positions: dict[int, int | None] = {}
        self._ever_assigned = False
        self._writer = self._connect_writer()
        self._writer_thread = ThreadPoolExecutor(1, thread_name_prefix=f"{name}-writer")
        self._pending: _Pending | None = None
        self._recent = RecentClicks(settings.ingest_recent_clicks)
        self._parser_failures_logged: set[str] = set()
        self._dead_letters = DeadLetterPublisher(settings)
        config = member_config(settings, name)
        self._consumer = Consumer(config)
        self._incremental = incremental_rebalancing(config)
        self._admin: AdminClient | None = None  # made when first needed (exit when idle)

    def _connect_writer(self, within_s: float = DATABASE_RETRY_S) -> ShardWriters:
        """Writers on every shard, retrying an unreachable database for ``within_s``."""
        retrying = Retrying(
            retry=retry_if_exception_type((psycopg.OperationalError, DependencyUnavailableError)),
            wait=wait_exponential(multiplier=0.2, max=5),
            stop=stop_after_delay(within_s),
            reraise=True,
        )
        return retrying(ShardWriters, self.settings)

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
        """Read the partitions gained (all of them, unless rebalancing is incremental)
        from their stored positions."""
        self._finish_pending(REBALANCE_DATABASE_RETRY_S)  # its connection is needed here
        offsets = self._restore_positions([tp.partition for tp in partitions])
        for tp in partitions:
            tp.offset = offsets[tp.partition]
        if self._incremental:
            consumer.incremental_assign(partitions)
        else:
            consumer.assign(partitions)
        self._ever_assigned = self._ever_assigned or bool(partitions)
        log.info(
            "%s assigned partitions %s at %s",
            self.name,
            [tp.partition for tp in partitions],
            [tp.offset for tp in partitions],
        )

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Give up the partitions lost (all of them, unless rebalancing is incremental)."""
        # Commit the batch in flight first: the next owner resumes from stored offsets,
        # and should not read this batch again.
        self._finish_pending(REBALANCE_DATABASE_RETRY_S)
        for tp in partitions:
            self._positions.pop(tp.partition, None)
            self._clocks.newest_ms.pop(tp.partition, None)
        if self._incremental:
            consumer.incremental_unassign(partitions)
        else:
            consumer.unassign()
        self._writer.reset_new_keys(self._claims_floor())
        log.info("%s revoked partitions %s", self.name, [tp.partition for tp in partitions])

    # -- the loop -------------------------------------------------------------------

    def run(self, exit_when_idle_s: float | None = None) -> WorkerTotals:
        """Consume and write batches until stopped, or until drained and idle that long."""
        settings = self.settings
        check_sharded_topic(self._consumer, settings)
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
                if now - last_report >= 60:
                    last_report = now
                    log.info("%s totals %s", self.name, self.totals)
                    if not self._positions:
                        # Silence here would look like an idle topic; say why nothing moves.
                        log.warning(
                            "%s holds no partitions of %s: the group has not assigned any "
                            "(more workers than partitions, or a rebalance not completing)",
                            self.name,
                            settings.clicks_topic,
                        )
                if records:
                    last_data = now
                    self._process(records)
                    continue
                # Nothing new: commit what is in flight now rather than with the next batch.
                self._finish_pending()
                if (
                    exit_when_idle_s is not None
                    and now - last_data >= exit_when_idle_s
                    and (self._ever_assigned or now - started >= exit_when_idle_s + settle_s)
                    and self._drained()
                ):
                    log.info(
                        "%s: drained and idle for %.1f s, exiting", self.name, exit_when_idle_s
                    )
                    break
            self._finish_pending()
        finally:
            self._consumer.close()  # leaves the group at once, so others take over quickly
            self._writer_thread.shutdown(wait=True)
            self._writer.close()
        return self.totals

    def _usable(self, messages: list[Message]) -> list[KafkaRecord]:
        records: list[KafkaRecord] = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    if error.fatal():
                        raise KafkaClientError("the clicks consumer", [error])
                    log.warning("%s: Kafka reports %s", self.name, error)
                continue
            # A message of a partition revoked during this consume() belongs to the next
            # owner, which reads it again from the stored offset.
            if message.partition() in self._positions:
                records.append(message)
        return records

    def _process(self, records: list[KafkaRecord]) -> None:
        """Assemble a batch while the previous one is still being written, then hand it over.

        Parsing (this thread) and the database's work (the writer thread waits on it
        without the GIL) overlap, so both cores work. The batch is assembled against the
        state the previous batch will leave; if that one fails, this one is dropped too
        and both are read again.
        """
        started = time.perf_counter()
        if self.totals.first_batch_at is None:
            self.totals.first_batch_at = time.time()
        clocks = self._clocks.copy()
        batch = assemble_batch(
            records,
            self.settings.clicks_topic,
            clocks,
            now_ms=int(time.time() * 1000),
            max_skew_ms=self._max_skew_ms,
            recent=self._recent,
            routing=self._routing,
        )
        self._recent.add_all(batch.keys)
        self._report_parser_failures(batch)
        if not self._finish_pending():
            return
        self._clocks = clocks
        future = self._writer_thread.submit(
            self._writer.write, batch, clocks, self._dead_letters.publish
        )
        self._pending = _Pending(future, batch, started)

    def _report_parser_failures(self, batch: Batch) -> None:
        for kind, count in batch.parser_failures.items():
            metrics.PARSER_FAILURES.labels(kind).inc(count)
            if kind not in self._parser_failures_logged:
                # Once per kind: a flood of one bad message shape must not flood the log.
                self._parser_failures_logged.add(kind)
                log.error(
                    "%s: the parser failed unexpectedly (%s) on %d message(s); dead-lettered "
                    "as parser_failed, further ones of this kind are only counted",
                    self.name,
                    kind,
                    count,
                )

    def _finish_pending(self, reconnect_within_s: float = DATABASE_RETRY_S) -> bool:
        """Wait for the batch in flight; False if it failed (and the worker has rewound,
        reconnecting within ``reconnect_within_s``)."""
        pending, self._pending = self._pending, None
        if pending is None:
            return True
        batch = pending.batch
        try:
            result = pending.future.result()
        except (psycopg.OperationalError, DependencyUnavailableError) as exc:
            # The commit may or may not have happened: the stored offsets tell.
            log.error(
                "%s: batch of %d not written (%s); re-reading", self.name, batch.consumed, exc
            )
            self._recover(reconnect_within_s)
            return False
        committed_at = time.time()
        self.totals.last_commit_at = committed_at
        if batch.records:  # the first consumed: about the longest waiting, at no cost
            age_s = _waited_s(batch.records[0], committed_at)
            if age_s is not None:
                metrics.FRESHNESS_SECONDS.observe(age_s)
        if self.freshness_s is not None:
            ages = (_waited_s(r, committed_at) for r in batch.records)
            self.freshness_s.extend(age for age in ages if age is not None)
        self._positions.update(batch.next_offsets)
        # Clicks the database refused were remembered as committed: a repeat of one must be
        # refused again, not dropped as a duplicate.
        self._recent.discard_all(
            letter.click_key for letter in result.rejected if letter.click_key is not None
        )
        reasons = Counter(letter.reason for letter in batch.dead_letters + result.rejected)
        valid = len(batch.rows) + batch.known_duplicates - len(result.rejected)
        self._count(batch.consumed, valid, result.inserted, batch.late, reasons)
        metrics.BATCH_SECONDS.observe(time.perf_counter() - pending.started)
        log.debug(
            "%s batch: %d consumed, %d inserted, %d dead letters, %s path, in %.3f s",
            self.name,
            batch.consumed,
            result.inserted,
            len(batch.dead_letters) + len(result.rejected),
            "careful" if result.careful_path else "fast",
            time.perf_counter() - pending.started,
        )
        return True

    def _count(
        self, consumed: int, valid: int, inserted: int, late: int, reasons: dict[str, int]
    ) -> None:
        duplicates = valid - inserted
        self.totals.add(consumed, inserted, duplicates, late, sum(reasons.values()))
        metrics.record_batch(consumed, inserted, duplicates, late, reasons)
        for partition, next_offset in self._positions.items():
            lag = None
            if next_offset is not None:
                # The end of the partition as of the last fetch (no broker round trip).
                tp = TopicPartition(self.settings.clicks_topic, partition)
                _low, high = self._consumer.get_watermark_offsets(tp, cached=True) or (0, 0)
                lag = max(high - next_offset, 0)
            metrics.record_partition(partition, self._clocks.watermark_ms(partition), lag)

    def _recover(self, reconnect_within_s: float) -> None:
        """After a failed batch: reconnect and rewind every partition to its stored offset."""
        # Keys of the failed batch may be in the memory of recent clicks: forget them all.
        self._recent.clear()
        self._writer.close()
        self._writer = self._connect_writer(reconnect_within_s)
        offsets = self._restore_positions(list(self._positions))
        for partition, offset in offsets.items():
            try:
                self._consumer.seek(TopicPartition(self.settings.clicks_topic, partition, offset))
            except KafkaException as exc:  # e.g. the partition is being revoked right now
                log.warning("%s: cannot rewind partition %d: %s", self.name, partition, exc)

    def _restore_positions(self, partitions: list[int]) -> dict[int, int]:
        """Take each partition's stored position (next offset, newest event time) as this
        worker's, and return the offset to read it from: on assignment, and to rewind
        after a failed batch (one routine, so both always restore the same state)."""
        stored = self._writer.load_positions(partitions)
        offsets = {}
        for partition in partitions:
            position = stored[partition]
            next_offset = position.next_offset
            offsets[partition] = OFFSET_BEGINNING if next_offset is None else next_offset
            self._positions[partition] = next_offset
            if position.newest_ms is None:
                self._clocks.newest_ms.pop(partition, None)
            else:
                self._clocks.newest_ms[partition] = position.newest_ms
        self._writer.reset_new_keys(self._claims_floor())
        return offsets

    def _claims_floor(self) -> int:
        """The first minute from which the writer may claim rollup rows as new: rows of
        the held partitions' ads stored so far are all older (their clocks hold the
        newest event time committed; no batch is in flight when this is asked)."""
        if not self._positions:
            return NO_CLAIMS
        return floor_after([self._clocks.newest_ms.get(p) for p in self._positions])

    def _drained(self) -> bool:
        """True when the group has committed every partition of the topic up to its end.

        Group-wide on purpose: a worker between a revoke and its next assignment holds no
        partitions, yet the topic is not drained while others are behind. The ends are
        asked of the broker in one request per kind on an admin connection: asked through
        the consumer, each partition's request waits behind the consumer's long-polling
        fetch (half a second each).
        """
        topic = self.settings.clicks_topic
        metadata = self._consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return False
        partitions = sorted(metadata.partitions)
        stored = self._writer.load_positions(partitions)
        if self._admin is None:
            self._admin = AdminClient(self.settings.kafka_client_config())
        ends = {}
        specs = (("low", OffsetSpec.earliest()), ("high", OffsetSpec.latest()))  # type: ignore[no-untyped-call]
        for kind, spec in specs:
            futures = self._admin.list_offsets(
                {TopicPartition(topic, p): spec for p in partitions}, request_timeout=10
            )
            ends[kind] = {tp.partition: f.result().offset for tp, f in futures.items()}
        for partition in partitions:
            committed = stored[partition].next_offset
            low, high = ends["low"][partition], ends["high"][partition]
            if high > (low if committed is None else committed):
                return False
        return True


def _waited_s(record: KafkaRecord, committed_at: float) -> float | None:
    """Seconds from a message's Kafka timestamp to ``committed_at``: None when it has
    none (a producer may send 0 or none at all), 0 for one stamped later (a producer's
    clock ahead), so one message cannot throw the freshness histogram off."""
    kind, stamp_ms = record.timestamp()
    if kind == TIMESTAMP_NOT_AVAILABLE or stamp_ms <= 0:
        return None
    return max(0.0, committed_at - stamp_ms / 1000)
