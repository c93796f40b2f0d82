"""Binary COPY of staging rows straight into raw_clicks' column types.

psycopg's binary dumpers want datetime and ipaddress objects; creating those costs more
per click than the rest of the row. These dumpers take the forms a staging row already
holds (epoch milliseconds, IP text, JSON text) and write PostgreSQL's binary formats.
They are registered by type OID on one connection only, and are used only by COPY
statements that declare those types with ``set_types``.
"""

from __future__ import annotations

import socket
import struct

from psycopg.adapt import Dumper
from psycopg.pq import Format
from psycopg.types import TypeInfo

from adclick.db.connect import Connection

_PG_EPOCH_MS = 946_684_800_000  # 2000-01-01, where PostgreSQL timestamps count from
_INT8 = struct.Struct("!q")
# inet binary header: family (PGSQL_AF_INET = 2, PGSQL_AF_INET6 = 3), prefix bits,
# is-cidr flag, address length.
_INET4 = b"\x02\x20\x00\x04"
_INET6 = b"\x03\x80\x00\x10"
_JSONB_VERSION = b"\x01"


class EpochMsTimestamptzDumper(Dumper):
    """int epoch milliseconds -> timestamptz (microseconds since 2000-01-01)."""

    format = Format.BINARY

    def dump(self, obj: int) -> bytes:
        return _INT8.pack((obj - _PG_EPOCH_MS) * 1000)


class TextInetDumper(Dumper):
    """Validated IP text -> inet."""

    format = Format.BINARY

    def dump(self, obj: str) -> bytes:
        if ":" in obj:
            return _INET6 + socket.inet_pton(socket.AF_INET6, obj)
        return _INET4 + socket.inet_pton(socket.AF_INET, obj)


class TextJsonbDumper(Dumper):
    """JSON text (already serialised) -> jsonb."""

    format = Format.BINARY

    def dump(self, obj: str) -> bytes:
        return _JSONB_VERSION + obj.encode()


def register_staging_dumpers(conn: Connection) -> None:
    """Use these dumpers for timestamptz, inet and jsonb in COPY on this connection."""
    for type_name, dumper in (
        ("timestamptz", EpochMsTimestamptzDumper),
        ("inet", TextInetDumper),
        ("jsonb", TextJsonbDumper),
    ):
        info = TypeInfo.fetch(conn, type_name)
        assert info is not None
        by_oid = type(dumper.__name__, (dumper,), {"oid": info.oid})
        # Registered under a name no Python value has, so only the OID lookup that
        # COPY's set_types does can reach it.
        conn.adapters.register_dumper(f"adclick.copy.{type_name}", by_oid)
