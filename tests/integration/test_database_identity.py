"""Which database a shard or read URL reaches is what the server says, not the URL text.

Two URLs of one database (another spelling of its host, the host in ``?host=``) accepted
as two shards made ingest write each partition once and every reader count that
database twice; a read URL naming another shard's database dropped one shard from reads
and doubled the other; a reordered ADCLICK_SHARDS made one shard's cold files overwrite
another's. Every process that uses shards now asks each server who it is at its start
and refuses such a configuration, naming both URLs; cold files go under a directory
named by the database and are never written over a file another database wrote.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from psycopg import sql
from typer.testing import CliRunner

import adclick.cli.lifecycle as lifecycle_cli
from adclick.cli.app import app
from adclick.close.closer import MinuteCloser
from adclick.db.connect import connect
from adclick.db.identity import check_databases, identify, identity_problems
from adclick.errors import ConfigurationError
from adclick.ingest.shards import ShardWriters
from adclick.kafka.clients import make_producer
from adclick.lifecycle.cold import query_cold
from adclick.lifecycle.tiering import Chunk, Maintainer
from adclick.settings import ProcessKind, Settings, Shard
from tests.conftest import TEMPLATE, _admin_connection, fresh_settings
from tests.helpers import click_at, ingest_until_idle


def _database(settings: Settings) -> str:
    return settings.database_url.rsplit("/", 1)[1]


def _port(settings: Settings) -> str:
    return settings.database_url.rsplit("@", 1)[1].rsplit("/", 1)[0].rsplit(":", 1)[1]


@contextlib.contextmanager
def another_database(stack_settings: Settings, home: Settings) -> Iterator[str]:
    """A second migrated database on the same cluster (a shard of its own)."""
    name = f"{_database(home)}_b"
    with _admin_connection(stack_settings) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {} OWNER adclick").format(
                sql.Identifier(name), sql.Identifier(TEMPLATE)
            )
        )
    try:
        yield name
    finally:
        with _admin_connection(stack_settings) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _with_shards(home: Settings, shards: list[Shard], **update: object) -> Settings:
    return Settings(**{**home.model_dump(), **update, "shards": shards})


@pytest.fixture
def home(stack_settings: Settings) -> Iterator[Settings]:
    with fresh_settings(stack_settings) as settings:
        yield settings


def _aliases(home: Settings) -> list[str]:
    """URLs that libpq reads as other hosts than 127.0.0.1 but reach its database."""
    name, port = _database(home), _port(home)
    return [f"postgresql://localhost:{port}/{name}"]


def test_two_urls_of_one_database_are_refused_as_two_shards(home: Settings) -> None:
    first = f"postgresql://127.0.0.1:{_port(home)}/{_database(home)}"
    second = _aliases(home)[0]
    settings = _with_shards(
        home, [Shard(url=first, partitions=[0, 1]), Shard(url=second, partitions=[2, 3])]
    )  # the URLs' text differs: settings cannot tell
    with pytest.raises(ConfigurationError) as refused:
        check_databases(settings)
    assert "shard 0" in str(refused.value) and "shard 1" in str(refused.value)
    assert first in str(refused.value) and second in str(refused.value)
    # Each process, as its own role: ingest refuses before it writes anything, the
    # closer before it closes a minute, the API (its start and /readyz) and maintain.
    with pytest.raises(ConfigurationError, match="one database"):
        ShardWriters(settings.for_process(ProcessKind.INGEST))
    with pytest.raises(ConfigurationError, match="one database"):
        MinuteCloser(settings.for_process(ProcessKind.CLOSE)).run(threading.Event(), once=True)
    for kind in (ProcessKind.API, ProcessKind.MAINTAIN):
        assert identity_problems(settings.for_process(kind))


def test_the_home_database_spelled_otherwise_than_its_shard_is_refused(
    stack_settings: Settings, home: Settings
) -> None:
    with another_database(stack_settings, home) as other:
        port = _port(home)
        settings = _with_shards(
            home,
            [
                Shard(url=_aliases(home)[0], partitions=[0, 1]),  # the home database
                Shard(url=f"postgresql://127.0.0.1:{port}/{other}", partitions=[2, 3]),
            ],
        )
        assert len(settings.every_database()) == 3  # the text says: a third database
        with pytest.raises(ConfigurationError, match="ADCLICK_DATABASE_URL"):
            check_databases(settings)
        check_databases(settings, home=False)  # the two shards themselves are distinct


def test_a_read_url_must_reach_its_own_database(stack_settings: Settings, home: Settings) -> None:
    with another_database(stack_settings, home) as other:
        port = _port(home)
        mine = f"postgresql://127.0.0.1:{port}/{_database(home)}"
        theirs = f"postgresql://127.0.0.1:{port}/{other}"
        wrong = _with_shards(
            home,
            [
                Shard(url=mine, partitions=[0, 1], read_url=theirs),
                Shard(url=theirs, partitions=[2, 3]),
            ],
        )
        with pytest.raises(ConfigurationError, match="shard 0's read_url") as refused:
            check_databases(wrong)
        assert theirs in str(refused.value)
        # Ingest and the closer write the shards themselves: their read URLs are the API's.
        check_databases(wrong, reads=False)
        # Its own database (a standby of it, or as here the database itself) is accepted,
        # and so are two distinct shards.
        right = _with_shards(
            home,
            [
                Shard(url=mine, partitions=[0, 1], read_url=mine),
                Shard(url=theirs, partitions=[2, 3]),
            ],
        )
        check_databases(right)
        assert identity_problems(right) == []
        # Without shards, ADCLICK_DATABASE_READ_URL the same.
        one = home.model_copy(update={"database_read_url": theirs.replace("//", "//adclick@")})
        with pytest.raises(ConfigurationError, match="ADCLICK_DATABASE_READ_URL"):
            check_databases(one)


def _send_to(settings: Settings, partition: int, events: list[dict[str, object]]) -> None:
    producer = make_producer(settings)
    for event in events:
        producer.produce(
            settings.clicks_topic,
            value=orjson.dumps(event),
            key=str(event["ad_id"]).encode(),
            partition=partition,
        )
    assert producer.flush(30) == 0


def _cold_clicks(settings: Settings) -> dict[str, int]:
    with connect(settings) as conn:
        _columns, rows = query_cold(
            conn, settings, "SELECT ad_id, count(*) FROM raw_clicks GROUP BY 1"
        )
    return {str(ad): int(count) for ad, count in rows}


def test_reordered_shards_keep_each_shard_s_cold_files(
    stack_settings: Settings, home: Settings, tmp_path: Path
) -> None:
    with another_database(stack_settings, home) as other:
        port = _port(home)
        a = Shard(url=f"postgresql://127.0.0.1:{port}/{_database(home)}", partitions=[0, 1])
        b = Shard(url=f"postgresql://127.0.0.1:{port}/{other}", partitions=[2, 3])
        cold = str(tmp_path / "cold")
        listed = _with_shards(home, [a, b], cold_storage_url=cold)
        reordered = _with_shards(home, [b, a], cold_storage_url=cold)
        now = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
        old = now - timedelta(days=10)  # past raw_clicks' hot time: tiered
        _send_to(listed, 0, [click_at("adA", old, "u1"), click_at("adA", now, "u1")])
        ingest_until_idle(listed)
        for database in listed.shard_settings():
            Maintainer(database).run()
        # The same chunk range in the other shard, maintained with the shards reordered.
        _send_to(
            listed,
            2,
            [click_at("adB", old, "u2"), click_at("adB", old, "u3"), click_at("adB", now, "u3")],
        )
        ingest_until_idle(reordered)
        for database in reordered.shard_settings():
            report = Maintainer(database).run()
            assert report.conflicts == []
        shard_a, shard_b = listed.shard_settings()
        assert _cold_clicks(shard_a) == {"adA": 1}
        assert _cold_clicks(shard_b) == {"adB": 2}
        # Each under a directory named by its database, whatever its place in the list.
        for shard in (shard_a, shard_b):
            directory = identify(shard).directory_name
            (url,) = [u for (u,) in _catalogue(shard)]
            assert url.startswith(f"{cold}/{directory}/raw_clicks/")


def _catalogue(settings: Settings) -> list[tuple[str]]:
    with connect(settings) as conn:
        return [(str(url),) for (url,) in conn.execute("SELECT url FROM cold_files")]


@pytest.mark.parametrize("writer", ["db-another-1", None, "this database"])
def test_a_cold_file_another_database_wrote_is_never_written_over(
    home: Settings, tmp_path: Path, writer: str | None
) -> None:
    settings = home.model_copy(update={"cold_storage_url": str(tmp_path / "cold")})
    now = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
    old = now - timedelta(days=10)
    _send_to(settings, 1, [click_at("adA", old, "u1"), click_at("adA", now, "u1")])
    ingest_until_idle(settings)
    own = identify(settings).directory_name
    placed: list[str] = []

    def place_a_file(chunk: Chunk) -> None:
        # Where the chunk's file goes, a file some database wrote (an older adclick's
        # names none; a crash of this database's last run left its own).
        start = chunk.range_start.astimezone(UTC)
        url = f"{settings.cold_storage_base}/raw_clicks/raw_clicks_{start:%Y%m%dT%H%M%SZ}.parquet"
        Path(url).parent.mkdir(parents=True, exist_ok=True)
        name = own if writer == "this database" else writer
        metadata = {} if name is None else {"adclick.database": name}
        pq.write_table(pa.table({"ad_id": ["adX"]}).replace_schema_metadata(metadata), url)
        placed.append(url)

    report = Maintainer(settings).run(on_chunk=place_a_file)
    (url,) = placed
    if writer == "this database":  # a file its own crashed run left: written anew
        assert report.conflicts == [] and _cold_clicks(settings) == {"adA": 1}
        return
    assert len(report.conflicts) == 1 and "exists already" in report.conflicts[0]
    assert pq.read_table(url).column("ad_id").to_pylist() == ["adX"]  # untouched
    assert _catalogue(settings) == []
    with connect(settings) as conn:
        row = conn.execute("SELECT count(*) FROM raw_clicks WHERE ad_id = 'adA'").fetchone()
    assert row == (2,)  # the chunk was kept hot


def _catalogue_a_file(settings: Settings, url: Path, ad: str, clicks: int) -> None:
    url.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"ad_id": [ad] * clicks}), url)
    with connect(settings) as conn:
        conn.execute(
            "INSERT INTO cold_files (relation, range_start, range_end, url, rows, checksum,"
            " bytes, hot_bytes) VALUES ('raw_clicks', '2024-07-09', '2024-07-10', %s, %s, 0,"
            " 1, 1)",
            (str(url), clicks),
        )
        conn.commit()


def _cli(settings: Settings, monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str]:
    monkeypatch.setattr(lifecycle_cli, "get_settings", lambda: settings)
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "400"})
    return result.exit_code, " ".join(result.output.replace("│", " ").split())


def test_cold_query_and_retention_show_cover_every_shard(
    stack_settings: Settings, home: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with another_database(stack_settings, home) as other:
        port = _port(home)
        cold = tmp_path / "cold"
        settings = _with_shards(
            home,
            [
                Shard(url=f"postgresql://127.0.0.1:{port}/{_database(home)}", partitions=[0, 1]),
                Shard(url=f"postgresql://127.0.0.1:{port}/{other}", partitions=[2, 3]),
            ],
            cold_storage_url=str(cold),
        )
        shard_a, shard_b = settings.shard_settings()
        # Equal ranges, each catalogued in its own shard only.
        _catalogue_a_file(shard_a, cold / "db-a" / "raw_clicks" / "r.parquet", "adA", 2)
        _catalogue_a_file(shard_b, cold / "db-b" / "raw_clicks" / "r.parquet", "adB", 3)
        code, output = _cli(
            settings,
            monkeypatch,
            *("cold", "query", "--operator", "--output", "csv"),
            "SELECT ad_id, count(*) AS n FROM raw_clicks GROUP BY 1 ORDER BY 1",
        )
        assert (code, output) == (0, "ad_id,n adA,2 adB,3")

        code, output = _cli(settings, monkeypatch, "retention", "show")
        assert code == 0 and "differs" not in output and "every database" in output
        with connect(shard_b) as conn:
            conn.execute(
                "UPDATE retention_policies SET hot = '20 days' WHERE relation = 'raw_clicks'"
            )
            conn.commit()
        code, output = _cli(settings, monkeypatch, "retention", "show")
        assert code == 0 and output.count("differs between databases") == 2, output
        assert f"/{other}" in output and "20 days" in output, output


def test_a_worker_whose_shard_map_the_databases_contradict_is_refused(
    stack_settings: Settings, home: Settings
) -> None:
    with another_database(stack_settings, home) as other:
        port = _port(home)
        a = f"postgresql://127.0.0.1:{port}/{_database(home)}"
        b = f"postgresql://127.0.0.1:{port}/{other}"
        written = _with_shards(
            home, [Shard(url=a, partitions=[0, 1]), Shard(url=b, partitions=[2, 3])]
        )
        now = datetime.now(UTC)
        for partition in range(4):
            _send_to(written, partition, [click_at(f"ad{partition}", now, "u1")])
        ingest_until_idle(written)
        ShardWriters(written.for_process(ProcessKind.INGEST)).close()  # the map they hold
        # A worker with another map (partitions 1 and 2 swapped): it would ingest
        # partition 1 into b from b's (absent) offsets, while a holds its clicks so far.
        other_map = _with_shards(
            home, [Shard(url=a, partitions=[0, 2]), Shard(url=b, partitions=[1, 3])]
        )
        with pytest.raises(ConfigurationError) as refused:
            ShardWriters(other_map.for_process(ProcessKind.INGEST))
        message = str(refused.value)
        assert "partition 1, which ADCLICK_SHARDS gives to shard 1" in message
        assert "partition 2, which ADCLICK_SHARDS gives to shard 0" in message
