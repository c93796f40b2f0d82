"""Cold storage: where the Parquet files go, and DuckDB over the catalogued files.

The URL is any fsspec URL (a local directory by default, s3://..., gs://...). DuckDB
reads local files itself and other URLs through the fsspec filesystem registered with it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import duckdb
import fsspec

from adclick.db.connect import Connection
from adclick.settings import Settings


def cold_storage_url(settings: Settings) -> str:
    """The configured URL, or ``<state dir>/cold``; never with a trailing slash."""
    url = settings.cold_storage_url or str((settings.state_dir / "cold").resolve())
    return url.rstrip("/")


@contextlib.contextmanager
def duckdb_connection(url: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB that can read files under ``url``."""
    duck = duckdb.connect()
    try:
        protocol = url.split("://", 1)[0] if "://" in url else "file"
        if protocol not in ("file", "local"):
            duck.register_filesystem(fsspec.filesystem(protocol))
        yield duck
    finally:
        duck.close()


def catalogued_files(conn: Connection) -> dict[str, list[str]]:
    """URLs of the cold files per relation."""
    files: dict[str, list[str]] = {}
    for relation, url in conn.execute(
        "SELECT relation, url FROM cold_files ORDER BY relation, range_start"
    ).fetchall():
        files.setdefault(relation, []).append(url)
    conn.commit()
    return files


def query_cold(
    conn: Connection, settings: Settings, statement: str
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run ``statement`` in DuckDB, where each relation with cold files is a view of them."""
    files = catalogued_files(conn)
    with duckdb_connection(cold_storage_url(settings)) as duck:
        for relation, urls in files.items():
            # DuckDB takes no parameters in a view's definition: the URLs (from our own
            # catalog) are quoted as literals; the relation names are our table names.
            listed = ", ".join("'" + u.replace("'", "''") + "'" for u in urls)
            view = f'CREATE VIEW "{relation}" AS SELECT * FROM read_parquet([{listed}])'  # noqa: S608
            duck.execute(view)
        result = duck.execute(statement)
        columns = [d[0] for d in result.description or []]
        return columns, result.fetchall()
