"""``adclick maintain``: apply the retention policies.

For each relation past its hot time, oldest chunk first:

1. export the chunk to Parquet under the cold-storage URL (one file per chunk, zstd),
   in one REPEATABLE READ snapshot with its row count and checksum;
2. read the file back with DuckDB and compare rows and checksum with the chunk's;
3. catalogue the file (cold_files);
4. drop the chunk.

A crash before 3 leaves the chunk (the file, which names its database, is overwritten
by that database's next run; a file at that URL that another database or an older
version wrote is never overwritten: the chunk is kept, ColdFileConflictError); after 3,
the catalogued file is verified, and the next run checks that the chunk still has the
catalogued rows and drops it. So there is always the chunk or a verified file, never
neither. Relations whose cold time is 0 are dropped without export; cold files past hot +
cold are deleted, then uncatalogued. top_ads (a plain table) loses old lists by DELETE.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import fsspec
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
from psycopg import sql

from adclick.db.connect import Connection, connect, snapshot_transaction
from adclick.db.identity import database_identity
from adclick.errors import AdclickError
from adclick.lifecycle import parquet
from adclick.lifecycle.cold import cold_storage_url, duckdb_connection
from adclick.lifecycle.policies import Policy, load_policies
from adclick.resources import load_sql
from adclick.settings import Settings

log = logging.getLogger(__name__)

Say = Callable[[str], None]


class VerificationError(AdclickError):
    """A written cold file does not hold what its chunk holds; the chunk is kept."""


class ColdFileConflictError(AdclickError):
    """A chunk's range is catalogued already, with other rows: the file is never replaced.

    Cannot happen through adclick (the ingest floor keeps clicks out of tiered ranges);
    it means rows were written into a tiered range by hand. The chunk is kept for an
    operator to reconcile with the catalogued file.
    """


@dataclass(frozen=True)
class Chunk:
    relation: str
    schema: str
    name: str
    range_start: datetime
    range_end: datetime

    @property
    def table(self) -> sql.Composable:
        return sql.Identifier(self.schema, self.name)


@dataclass
class MaintenanceReport:
    exported: int = 0
    exported_rows: int = 0
    dropped_chunks: int = 0
    deleted_files: int = 0
    deleted_lists: int = 0
    files: list[str] = field(default_factory=list)
    # Chunks kept because their range is catalogued with other rows (ColdFileConflictError).
    conflicts: list[str] = field(default_factory=list)
    # Databases left to another maintain working on them at the time (Maintainer.run).
    busy: list[str] = field(default_factory=list)

    def plus(self, other: MaintenanceReport) -> MaintenanceReport:
        """Both passes' work (of two databases: shards)."""
        return MaintenanceReport(
            **{
                name: getattr(self, name) + getattr(other, name)
                for name in self.__dataclass_fields__
            }
        )


def _stream_times(conn: Connection, settings: Settings) -> tuple[datetime, datetime]:
    row = conn.execute(
        load_sql("lifecycle/stream_time"),
        {"topic": settings.clicks_topic, "horizon": settings.dedup_horizon},
    ).fetchone()
    assert row is not None
    return row[0], row[1]


def stream_time(conn: Connection, settings: Settings) -> datetime:
    """The newest event time ingested (the wall clock before any event)."""
    return _stream_times(conn, settings)[0]


def tiering_time(conn: Connection, settings: Settings) -> datetime:
    """The time retention counts back from: the slowest partition's newest event time.

    Partitions further behind the fastest than the dedup horizon are not waited for.
    """
    return _stream_times(conn, settings)[1]


# The Parquet metadata key naming the database a cold file was exported from.
DATABASE_KEY = b"adclick.database"

# The advisory lock one maintain pass holds on a database (recalculate takes it too).
MAINTENANCE_LOCK = "adclick-maintain"


class Maintainer:
    """Applies every policy once per ``run``."""

    def __init__(self, settings: Settings, say: Say = log.info) -> None:
        self.settings = settings
        self.say = say
        self.base_url = cold_storage_url(settings)
        # What the server says this database is (set by run): written into every file,
        # so a file left by a crash is told from another database's.
        self.database_name = ""

    def run(self, on_chunk: Callable[[Chunk], None] | None = None) -> MaintenanceReport:
        """One pass over every policy; a pass another maintain holds the database for is
        left to that one (``report.busy``): two passes at once would export, verify and
        drop the same chunks in turn."""
        report = MaintenanceReport()
        with connect(self.settings) as conn:
            # Held by the session until the connection closes, across the commits below.
            row = conn.execute(
                "SELECT pg_try_advisory_lock(hashtext(%s))", (MAINTENANCE_LOCK,)
            ).fetchone()
            conn.commit()
            if not (row and row[0]):
                report.busy.append(self.settings.describe_database())
                self.say("another adclick maintain is working on this database: left to it")
                return report
            self.database_name = database_identity(conn).directory_name
            self.base_url = self.settings.shard_cold_directory(self.database_name)
            now = tiering_time(conn, self.settings)
            policies = load_policies(conn)
            conn.commit()
            for policy in policies:
                if policy.hot is None:
                    continue
                before = now - policy.hot
                if policy.relation == "top_ads":
                    report.deleted_lists += self._expire_lists(conn, before)
                    continue
                for chunk in self._chunks(conn, policy.relation, before):
                    if on_chunk is not None:
                        on_chunk(chunk)
                    try:
                        self._retire(conn, chunk, policy, report)
                    except psycopg.errors.UndefinedTable:
                        # Dropped since it was listed (by hand, or a maintain that did not
                        # take the lock): nothing of it is left to tier.
                        conn.rollback()
                        self.say(f"{chunk.relation} chunk {chunk.name} is gone; skipped")
                if policy.cold is not None:
                    report.deleted_files += self._expire_files(conn, policy, before - policy.cold)
        return report

    def _retire(
        self, conn: Connection, chunk: Chunk, policy: Policy, report: MaintenanceReport
    ) -> None:
        """Tier the chunk if the policy keeps it cold, then drop it."""
        self._raise_ingest_floor(conn, chunk)
        if policy.cold != timedelta(0):
            try:
                self._tier(conn, chunk, report)
            except ColdFileConflictError as exc:
                log.error("%s", exc)
                self.say(f"kept {chunk.relation} chunk: {exc}")
                report.conflicts.append(str(exc))
                return
        report.dropped_chunks += self._drop(conn, chunk)

    # -- one chunk -----------------------------------------------------------------

    def _chunks(self, conn: Connection, relation: str, before: datetime) -> list[Chunk]:
        rows = conn.execute(
            load_sql("lifecycle/chunks_to_tier"), {"relation": relation, "before": before}
        ).fetchall()
        conn.commit()
        return [Chunk(relation, *row) for row in rows]

    def _raise_ingest_floor(self, conn: Connection, chunk: Chunk) -> None:
        # Before the chunk is read: from the commit on, no batch writes below its end, so
        # the export's snapshot holds every row the range will ever have. Every relation
        # with chunks to tier (raw clicks and the rollups; top_ads is a plain table) is
        # one that ingest writes.
        conn.execute(
            load_sql("lifecycle/raise_floor"),
            {"before": chunk.range_end, "relation": chunk.relation},
        )
        conn.commit()

    def _tier(self, conn: Connection, chunk: Chunk, report: MaintenanceReport) -> None:
        catalogued = conn.execute(
            "SELECT rows, checksum, url FROM cold_files WHERE relation = %s AND range_start = %s",
            (chunk.relation, chunk.range_start),
        ).fetchone()
        if catalogued is not None:
            columns = self._columns(conn, chunk)
            rows, checksum = conn.execute(parquet.pg_checksum(columns, chunk.table)).fetchone() or (
                0,
                0,
            )
            conn.commit()
            if (rows, checksum) == (catalogued[0], catalogued[1]):
                return  # exported and verified by an earlier run that stopped before the drop
            # A catalogued file is verified data that may be all that is left of its range:
            # it is never overwritten.
            raise ColdFileConflictError(
                f"{chunk.relation} {chunk.range_start:%Y-%m-%d %H:%M} is catalogued as "
                f"{catalogued[2]} ({catalogued[0]} rows, checksum {catalogued[1]}) but its chunk "
                f"holds {rows} rows (checksum {checksum}); the file is left as it is and the "
                "chunk kept: compare the two and reconcile by hand"
            )
        url = self._file_url(conn, chunk)
        self.say(f"exporting {chunk.relation} {chunk.range_start:%Y-%m-%d %H:%M} to {url}")
        # Written and verified under a name of this database's own, then moved into
        # place: a crash mid-write leaves only that (written over by the next run), never
        # an unfinished file at the URL, which could not say whose it is (so would be
        # refused, the chunk kept hot for good).
        partial = f"{url}.{self.database_name}.partial"
        rows, checksum, hot_bytes = self._export(conn, chunk, partial)
        self._verify(chunk, partial, rows, checksum)
        fs, path = fsspec.core.url_to_fs(url)
        self._file_url(conn, chunk)  # still nobody else's (another database may write too)
        fs.mv(fsspec.core.url_to_fs(partial)[1], path)
        conn.execute(
            load_sql("lifecycle/catalog_file"),
            {
                "relation": chunk.relation,
                "range_start": chunk.range_start,
                "range_end": chunk.range_end,
                "url": url,
                "rows": rows,
                "checksum": checksum,
                "bytes": fs.size(path),
                "hot_bytes": hot_bytes,
            },
        )
        conn.commit()
        report.exported += 1
        report.exported_rows += rows
        report.files.append(url)

    def _file_url(self, conn: Connection, chunk: Chunk) -> str:
        """Where the chunk's file goes: named by its range's start in UTC (the name says
        Z), so distinct ranges of a relation have distinct names; one catalogued for
        another range is refused, never written over."""
        start = chunk.range_start.astimezone(UTC)
        url = f"{self.base_url}/{chunk.relation}/{chunk.relation}_{start:%Y%m%dT%H%M%SZ}.parquet"
        holder = conn.execute(
            "SELECT relation, range_start FROM cold_files WHERE url = %s", (url,)
        ).fetchone()
        conn.commit()
        if holder is not None:
            raise ColdFileConflictError(
                f"{url} is catalogued for {holder[0]} from {holder[1]:%Y-%m-%d %H:%M}, so "
                f"{chunk.relation} from {chunk.range_start:%Y-%m-%d %H:%M} cannot be written "
                "there; the file is left as it is and the chunk kept"
            )
        writer = self._written_by(url)
        if writer is not None and writer != self.database_name:
            # Another database's file (a shard's, before shards had directories named by
            # their databases) or one this catalogue does not know: it may be all that
            # is left of that database's range.
            raise ColdFileConflictError(
                f"{url} exists already, written by {writer or 'an unknown database'} and "
                f"not catalogued here ({self.database_name}), so {chunk.relation} from "
                f"{chunk.range_start:%Y-%m-%d %H:%M} is not written over it; the file is "
                "left as it is and the chunk kept: find whose file it is"
            )
        return url

    def _written_by(self, url: str) -> str | None:
        """Which database wrote the file at ``url`` ("" when it does not say; None: no
        file there). Asked of the storage itself, not of a catalogue: two databases'
        catalogues do not know each other's files."""
        fs, path = fsspec.core.url_to_fs(url)
        if not fs.exists(path):
            return None
        try:
            metadata = pq.read_schema(url).metadata or {}
        except (OSError, pa.ArrowInvalid):
            return ""  # not a Parquet file adclick finished writing: kept as it is
        written_by: bytes = metadata.get(DATABASE_KEY, b"")
        return written_by.decode(errors="replace")

    def _columns(self, conn: Connection, chunk: Chunk) -> list[parquet.Column]:
        return [
            parquet.Column(name, kind)
            for name, kind in conn.execute(
                load_sql("lifecycle/columns"), {"table": f"{chunk.schema}.{chunk.name}"}
            ).fetchall()
        ]

    def _export(self, conn: Connection, chunk: Chunk, url: str) -> tuple[int, int, int]:
        columns = self._columns(conn, chunk)
        schema = parquet.schema(
            columns,
            {
                "adclick.relation": chunk.relation,
                "adclick.range_start": chunk.range_start.isoformat(),
                "adclick.range_end": chunk.range_end.isoformat(),
                DATABASE_KEY.decode(): self.database_name,
            },
        )
        exported = sql.SQL(", ").join(c.export() for c in columns)
        conn.commit()
        # One snapshot: the checksum and the rows written describe the same data.
        with snapshot_transaction(conn):
            count, checksum = conn.execute(
                parquet.pg_checksum(columns, chunk.table)
            ).fetchone() or (0, 0)
            (hot_bytes,) = conn.execute(
                "SELECT pg_total_relation_size(%s::regclass)", (f"{chunk.schema}.{chunk.name}",)
            ).fetchone() or (0,)
            statement = sql.SQL("COPY (SELECT {} FROM {}) TO STDOUT (FORMAT CSV)").format(
                exported, chunk.table
            )
            with (
                conn.cursor().copy(statement) as copy,
                fsspec.open(url, "wb", auto_mkdir=True) as out,
                pq.ParquetWriter(out, schema, compression="zstd") as writer,
            ):
                for batch in parquet.record_batches(copy, columns):
                    writer.write_batch(batch)
        return int(count), int(checksum), int(hot_bytes)

    def _verify(self, chunk: Chunk, url: str, rows: int, checksum: int) -> None:
        columns = [parquet.Column(f.name, _pg_type(f)) for f in pq.read_schema(url)]
        with duckdb_connection(url) as duck:
            found = duck.execute(parquet.duckdb_checksum(columns), [url]).fetchone() or (0, 0)
        if (int(found[0]), int(found[1])) != (rows, checksum):
            raise VerificationError(
                f"{url} holds {found[0]} rows (checksum {found[1]}), the chunk "
                f"{chunk.relation} {chunk.range_start} {rows} rows (checksum {checksum}): "
                "the chunk is kept"
            )

    def _drop(self, conn: Connection, chunk: Chunk) -> bool:
        # adclick_drop_chunk (migration 0007) drops it with the owner's rights, which
        # drop_chunks needs and the maintenance role does not have. It first locks the
        # chunk: drop_chunks locks the chunk's indexes before the chunk itself, the opposite
        # of every reader and of autovacuum's ANALYZE (table, then indexes), so one of those
        # that started on the chunk just before would deadlock with it. Taking the chunk
        # first puts this transaction in the readers' lock order.
        try:
            conn.execute(
                "SELECT adclick_drop_chunk(%s::regclass)", (f"{chunk.schema}.{chunk.name}",)
            )
        except psycopg.errors.UndefinedTable:
            conn.rollback()  # another maintainer dropped it since the chunks were listed
            return False
        conn.commit()
        self.say(f"dropped {chunk.relation} chunk {chunk.range_start:%Y-%m-%d %H:%M}")
        return True

    # -- expiry --------------------------------------------------------------------

    def _expire_files(self, conn: Connection, policy: Policy, before: datetime) -> int:
        rows = conn.execute(
            load_sql("lifecycle/expired_files"), {"relation": policy.relation, "before": before}
        ).fetchall()
        for relation, range_start, url in rows:
            fs, path = fsspec.core.url_to_fs(url)
            if fs.exists(path):
                fs.rm(path)
            conn.execute(
                "DELETE FROM cold_files WHERE relation = %s AND range_start = %s",
                (relation, range_start),
            )
            conn.commit()
            self.say(f"deleted cold file {url} (past its cold retention)")
        return len(rows)

    def _expire_lists(self, conn: Connection, before: datetime) -> int:
        cur = conn.execute("DELETE FROM top_ad_lists WHERE window_end < %s", (before,))
        conn.commit()
        return cur.rowcount


def _pg_type(field: pa.Field) -> str:
    """The PostgreSQL type a Parquet field was exported from (for its checksum text)."""
    kind = field.type
    if pa.types.is_timestamp(kind):
        return "timestamp with time zone"
    if pa.types.is_int64(kind):
        return "bigint"
    if pa.types.is_int32(kind):
        return "integer"
    return "text"
