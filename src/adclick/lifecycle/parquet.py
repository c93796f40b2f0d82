"""Chunks as Parquet: the column mapping, the export stream, and the checksum.

Every column is exported as what it is: timestamps as Parquet timestamps (UTC,
microseconds), ip as its text form, attributes as JSON text, with a description in each
field's metadata. The checksum is the same number computed three ways: by PostgreSQL over
the chunk, and by DuckDB over the written file. It sums, over rows, the first 60 bits of
the MD5 of the row's columns as text joined by '|': order-independent, and any changed,
lost or added row changes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from adclick.db.copy_stream import csv_reader

DESCRIPTIONS = {
    "ts": "event time of the click (UTC)",
    "click_id": "the click's idempotency key (the producer's, or derived from its fields)",
    "ad_id": "the clicked ad",
    "user_id": "the user who clicked (personal data)",
    "ip": "the client's IP address, text form (personal data)",
    "country": "ISO country code",
    "attributes": "further attributes of the event, a JSON object of strings",
    "kafka_partition": "partition of the clicks topic the event came from",
    "kafka_offset": "offset of the event in that partition",
    "ingested_at": "when ingest stored the click (UTC)",
    "minute": "start of the minute (UTC)",
    "hour": "start of the hour (UTC)",
    "clicks": "clicks counted",
}


@dataclass(frozen=True)
class Column:
    """One column: how PostgreSQL exports it, its Arrow type, and its checksum text."""

    name: str
    pg_type: str

    @property
    def is_time(self) -> bool:
        return self.pg_type.startswith("timestamp")

    def export(self) -> sql.Composable:
        """The exported value: epoch microseconds for times, text or integers otherwise."""
        column = sql.Identifier(self.name)
        if self.is_time:
            return sql.SQL("(extract(epoch FROM {}) * 1000000)::bigint").format(column)
        if self.pg_type == "inet":
            return sql.SQL("host({})").format(column)
        if self.pg_type == "jsonb":
            return sql.SQL("{}::text").format(column)
        return column

    @property
    def csv_type(self) -> pa.DataType:
        if self.is_time or self.pg_type == "bigint":
            return pa.int64()
        if self.pg_type == "integer":
            return pa.int32()
        return pa.string()

    @property
    def arrow_field(self) -> pa.Field:
        kind = pa.timestamp("us", tz="UTC") if self.is_time else self.csv_type
        description = DESCRIPTIONS.get(self.name, f"dimension {self.name}")
        return pa.field(self.name, kind, nullable=False, metadata={"description": description})

    def duckdb_text(self) -> str:
        quoted = '"' + self.name.replace('"', '""') + '"'
        return f"epoch_us({quoted})::VARCHAR" if self.is_time else f"{quoted}::VARCHAR"


def schema(columns: list[Column], metadata: dict[str, str]) -> pa.Schema:
    return pa.schema([c.arrow_field for c in columns], metadata=metadata)


def pg_checksum(columns: list[Column], table: sql.Composable) -> sql.Composed:
    """count(*) and the checksum of a table's rows, in PostgreSQL."""
    texts = sql.SQL(", ").join(sql.SQL("{}::text").format(c.export()) for c in columns)
    return sql.SQL(
        "SELECT count(*), coalesce(sum(('x' || substr(md5(concat_ws('|', {})), 1, 15))"
        "::bit(60)::bigint), 0) FROM {}"
    ).format(texts, table)


def duckdb_checksum(columns: list[Column]) -> str:
    """count(*) and the checksum of a Parquet file's rows, in DuckDB (``?`` is its path)."""
    # Only quoted column names are composed in; the path is a parameter.
    texts = ", ".join(c.duckdb_text() for c in columns)
    hashed = f"('0x' || substr(md5(concat_ws('|', {texts})), 1, 15))::BIGINT"
    return f"SELECT count(*), coalesce(sum({hashed}), 0) FROM read_parquet(?)"  # noqa: S608


def record_batches(copy: Any, columns: list[Column]) -> Iterator[pa.RecordBatch]:
    """The CSV of a COPY as Arrow batches of the export schema (times converted)."""
    reader = csv_reader(copy, {c.name: c.csv_type for c in columns})
    target = pa.schema([c.arrow_field for c in columns])
    for batch in reader:
        arrays = [
            pc.cast(batch.column(i), field.type) if c.is_time else batch.column(i)
            for i, (c, field) in enumerate(zip(columns, target, strict=True))
        ]
        yield pa.RecordBatch.from_arrays(arrays, schema=target)
