"""Turning consumed Kafka messages into one batch: staging rows plus dead letters (pure).

Every message ends in exactly one place: a staging row (then raw_clicks, if it is not a
duplicate) or a dead letter with its reason. Nothing here does I/O.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Final, Protocol

import orjson

from adclick.errors import InvalidEventError
from adclick.events.dead_letter import DeadLetterReason, dead_letter, without_payload
from adclick.events.model import ClickEvent
from adclick.events.parse import parse_json_event
from adclick.ingest.clock import PartitionClocks, Timeliness
from adclick.ingest.recent import ClickKey, RecentClicks
from adclick.ingest.routing import Routing

# A valid click as COPY writes it: one row of raw_clicks (and of the staging table), in
# the column order of sql/ingest/create_staging.sql, read by the positions named below.
# A plain tuple on purpose: as a NamedTuple, assemble_batch took 6.4-7.2 us per click
# instead of 4.7-5.2 (`python -m bench.assemble_batch`, AMD EPYC), mostly in the garbage
# collector, which stops tracking plain tuples of strings and ints but keeps scanning
# tuple subclasses.
StagingRow = tuple[int, str, str, str, str, str, str, int, int]
TS_MS: Final = 0
CLICK_ID: Final = 1
AD_ID: Final = 2
USER_ID: Final = 3
IP: Final = 4
COUNTRY: Final = 5
ATTRIBUTES: Final = 6
PARTITION: Final = 7
OFFSET: Final = 8


class KafkaRecord(Protocol):
    """The part of confluent_kafka.Message a batch needs."""

    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def timestamp(self) -> tuple[int, int]: ...


@dataclass(frozen=True)
class DeadLetter:
    """A rejected message, with where it came from and why."""

    reason: str
    detail: str
    topic: str
    partition: int
    offset: int
    key: bytes | None
    payload: bytes
    # For a valid click refused on its way into the database: its (ts, click_id), which
    # the worker then forgets from its memory of recent clicks (a repeat is no duplicate).
    click_key: ClickKey | None = None

    def to_json(self, *, with_payload: bool = True) -> bytes:
        """The dead-letter message: the reason, the origin and the payload (bounded).

        Without the payload it keeps only the payload's size and hash: for a broker whose
        message limit is below even a bounded record.
        """
        record = dead_letter(
            self.reason,
            self.detail,
            "ingest",
            self.payload,
            topic=self.topic,
            partition=self.partition,
            offset=self.offset,
        )
        return orjson.dumps(record if with_payload else without_payload(record))


@dataclass
class Batch:
    """What one transaction writes, and what it tells the metrics."""

    topic: str
    rows: list[StagingRow] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    next_offsets: dict[int, int] = field(default_factory=dict)
    # attributes[i] belongs to rows[i]: the filtered rollups read dimensions from it.
    attributes: list[dict[str, str]] = field(default_factory=list)
    # Valid clicks dropped before the database: repeats in this batch or known recent.
    known_duplicates: int = 0
    late: int = 0
    consumed: int = 0
    records: list[KafkaRecord] = field(default_factory=list)
    # The unique keys of the rows, (row[TS_MS], row[CLICK_ID]): built by the dedup in the batch,
    # and handed whole to the memory of recent clicks (a set adds to a set without
    # hashing its tuples again).
    keys: set[ClickKey] = field(default_factory=set)
    # Messages the parser failed on unexpectedly (dead-lettered), by exception type.
    parser_failures: Counter[str] = field(default_factory=Counter)

    def only(self, partitions: set[int]) -> Batch:
        """The part of this batch that a shard owning ``partitions`` writes: their rows,
        dead letters, messages and next offsets (counts for metrics stay with the whole)."""
        kept = [i for i, row in enumerate(self.rows) if row[PARTITION] in partitions]
        return Batch(
            topic=self.topic,
            rows=[self.rows[i] for i in kept],
            dead_letters=[d for d in self.dead_letters if d.partition in partitions],
            next_offsets={p: o for p, o in self.next_offsets.items() if p in partitions},
            attributes=[self.attributes[i] for i in kept],
            records=[r for r in self.records if r.partition() in partitions],
        )

    def dead_letters_at(self, indexes: list[int], reason: str, detail: str) -> list[DeadLetter]:
        """Dead letters for the staged rows at ``indexes``, carrying their messages."""
        records = {(r.partition(), r.offset()): r for r in self.records}
        letters = []
        for i in indexes:
            row = self.rows[i]
            partition, offset = row[PARTITION], row[OFFSET]
            record = records[(partition, offset)]
            letters.append(
                DeadLetter(
                    reason,
                    detail,
                    self.topic,
                    partition,
                    offset,
                    record.key(),
                    record.value() or b"",
                    (row[TS_MS], row[CLICK_ID]),
                )
            )
        return letters


def assemble_batch(
    records: list[KafkaRecord],
    topic: str,
    clocks: PartitionClocks,
    now_ms: int,
    max_skew_ms: int,
    recent: RecentClicks | None = None,
    routing: Routing | None = None,
) -> Batch:
    """Validate records in offset order, advancing ``clocks``; bad ones become dead letters.

    Valid clicks whose key is already in this batch or in ``recent`` are certain
    duplicates and are dropped here (counted in ``known_duplicates``). With ``routing``
    (shards), a click must be in its ad's partition (ingest/routing.py).
    """
    batch = Batch(topic=topic, consumed=len(records), records=records)
    future_limit = now_ms + max_skew_ms
    in_batch = batch.keys
    known = recent if recent is not None else RecentClicks(0)
    for record in records:
        partition = record.partition() or 0
        offset = record.offset() or 0
        batch.next_offsets[partition] = offset + 1
        payload = record.value()
        try:
            event = _parse(payload, batch.parser_failures)
            if routing is not None:  # before the clock: a misrouted click moves nothing
                routing.check(record.key(), event.ad_id, partition)
            timeliness = _admit(event, partition, clocks, future_limit)
        except InvalidEventError as exc:
            batch.dead_letters.append(
                DeadLetter(
                    exc.reason, exc.detail, topic, partition, offset, record.key(), payload or b""
                )
            )
            continue
        batch.late += timeliness is Timeliness.LATE
        key = (event.ts_ms, event.click_id)
        if key in in_batch or key in known:
            batch.known_duplicates += 1
            continue
        in_batch.add(key)
        batch.attributes.append(event.attributes)
        batch.rows.append(_staging_row(event, partition, offset))
    return batch


def _parse(payload: bytes | None, parser_failures: Counter[str]) -> ClickEvent:
    """The click a message holds; InvalidEventError (its dead letter's reason) if none."""
    if payload is None:
        raise InvalidEventError(DeadLetterReason.MALFORMED, "message has no value")
    try:
        return parse_json_event(payload)
    except InvalidEventError:
        raise
    except Exception as exc:  # the last resort, see DeadLetterReason.PARSER_FAILED
        # A failure the parser did not foresee must not stop the worker: on restart it
        # would read the same offset and stop again, and so would every worker the
        # partition moves to. The message is dead-lettered like any bad one.
        kind = type(exc).__name__
        parser_failures[kind] += 1
        raise InvalidEventError(DeadLetterReason.PARSER_FAILED, f"{kind}: {exc}") from None


def _admit(
    event: ClickEvent, partition: int, clocks: PartitionClocks, future_limit_ms: int
) -> Timeliness:
    """Whether the click is on time or late, advancing its partition's clock;
    InvalidEventError if it is too far in the future or beyond the dedup horizon."""
    # The future check comes first: a skewed clock must not move the partition's event
    # time forward and make good events look late.
    if event.ts_ms > future_limit_ms:
        raise InvalidEventError(DeadLetterReason.TOO_FAR_IN_FUTURE, event.timestamp.isoformat())
    timeliness = clocks.observe(partition, event.ts_ms)
    if timeliness is Timeliness.BEYOND_HORIZON:
        raise InvalidEventError(DeadLetterReason.BEYOND_DEDUP_HORIZON, event.timestamp.isoformat())
    return timeliness


def _staging_row(event: ClickEvent, partition: int, offset: int) -> StagingRow:
    attributes = orjson.dumps(event.attributes).decode() if event.attributes else "{}"
    return (
        event.ts_ms, event.click_id, event.ad_id, event.user_id, event.ip, event.country,
        attributes, partition, offset,
    )  # fmt: skip
