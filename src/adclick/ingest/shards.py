"""The ingest worker's writers, one per shard (ADCLICK_SHARDS; one without shards).

A batch read from several partitions is split by the shard that owns each partition, and
each part commits in its shard in one transaction with its partitions' offsets: exactly
once per partition, with no transaction spanning databases. A part that fails leaves the
parts committed before it committed; the worker then rewinds every partition to the
offset its shard stored, so each partition resumes where its own last commit left it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import psycopg

from adclick.db.connect import connect
from adclick.db.identity import check_databases
from adclick.errors import ConfigurationError
from adclick.ingest.batch import Batch, DeadLetter
from adclick.ingest.clock import PartitionClocks
from adclick.ingest.writer import BatchWriter, Position, WriteResult
from adclick.redact import mask_secrets
from adclick.resources import load_sql
from adclick.settings import Settings


class ShardWriters:
    """A BatchWriter on every shard's database; opened together, closed together."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.writers: list[BatchWriter] = []
        # Two shards that are one database would take each partition once and be read
        # twice: refused before anything is written (adclick.db.identity).
        check_databases(settings, home=False, reads=False)
        try:
            for shard in settings.shard_settings():
                self.writers.append(BatchWriter(connect(shard), shard))
            if settings.shards:
                self._check_ownership()
        except BaseException:
            self.close()
            raise

    def _check_ownership(self) -> None:
        """Refuse a shard map the databases contradict: a shard that holds offsets or
        clocks of a partition this map gives to another shard was written by a worker
        with another map (or a move was not finished), and ingesting the partition into
        its new shard would count its clicks in both."""
        problems = []
        for index, (shard, writer) in enumerate(
            zip(self.settings.shards, self.writers, strict=True)
        ):
            rows = writer.conn.execute(
                load_sql("ingest/foreign_partitions"),
                {"topic": self.settings.clicks_topic, "owned": shard.partitions},
            ).fetchall()
            writer.conn.rollback()
            for (partition,) in rows:
                owner = self.settings.shard_of(partition)
                problems.append(
                    f"shard {index} ({mask_secrets(shard.url)}) holds the offsets of partition "
                    f"{partition}, which ADCLICK_SHARDS gives to shard {owner}"
                )
        if problems:
            raise ConfigurationError(
                "ADCLICK_SHARDS disagrees with the databases: "
                + "; ".join(problems)
                + ". Start every worker with the map the databases were written with, or "
                "finish moving the partitions (docs/operations.md, Moving partitions "
                "between shards)"
            )

    def _shard_parts(self, partitions: list[int]) -> dict[int, list[int]]:
        parts: dict[int, list[int]] = {}
        for partition in partitions:
            parts.setdefault(self.settings.shard_of(partition), []).append(partition)
        return parts

    def load_positions(self, partitions: list[int]) -> dict[int, Position]:
        """Each partition's stored position, read from its own shard."""
        positions: dict[int, Position] = {}
        for shard, owned in self._shard_parts(partitions).items():
            positions.update(self.writers[shard].load_positions(owned))
        return positions

    def write(
        self,
        batch: Batch,
        clocks: PartitionClocks,
        publish_dead_letters: Callable[[list[DeadLetter]], None],
    ) -> WriteResult:
        """Commit the batch, a transaction per shard it touches (see the module doc)."""
        if len(self.writers) == 1:
            return self.writers[0].write(batch, clocks, publish_dead_letters)
        inserted, rejected, careful = 0, [], False
        for shard, partitions in sorted(self._shard_parts(sorted(batch.next_offsets)).items()):
            result = self.writers[shard].write(
                batch.only(set(partitions)), clocks, publish_dead_letters
            )
            inserted += result.inserted
            rejected += result.rejected
            careful = careful or result.careful_path
        return WriteResult(inserted, rejected, careful)

    def reset_new_keys(self, floor_ms: int) -> None:
        """Let every shard's writer claim new rollup rows only from ``floor_ms`` on."""
        for writer in self.writers:
            writer.new_keys.reset(floor_ms)

    def close(self) -> None:
        for writer in self.writers:
            with contextlib.suppress(psycopg.Error):
                writer.conn.close()
