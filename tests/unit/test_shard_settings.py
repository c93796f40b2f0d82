"""ADCLICK_SHARDS: which maps of partitions to databases are accepted, and what each
process makes of one (its credentials at each shard's database, each shard's cold path).

Any map is accepted only if every partition of the clicks topic has exactly one shard;
anything else is refused with a message, never a traceback or a half-used setting.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg.conninfo import conninfo_to_dict
from pydantic import ValidationError

from adclick.settings import Settings, at_location


def shard(port: int, partitions: list[int], **extra: str) -> dict[str, object]:
    return {"url": f"postgresql://127.0.0.1:{port}/adclick", "partitions": partitions, **extra}


@given(
    st.integers(1, 12),
    st.lists(st.lists(st.integers(-2, 14), max_size=6), min_size=1, max_size=4),
)
def test_a_map_is_accepted_only_when_it_covers_every_partition_once(
    partitions: int, owned: list[list[int]]
) -> None:
    shards = [shard(6000 + i, p) for i, p in enumerate(owned)]
    covers_once = sorted(p for ps in owned for p in ps) == list(range(partitions))
    try:
        settings = Settings(topic_partitions=partitions, shards=shards)
    except ValidationError as exc:
        assert not covers_once or any(not ps for ps in owned), exc
        return
    assert covers_once
    for partition in range(partitions):
        assert partition in settings.shards[settings.shard_of(partition)].partitions


def test_two_shards_may_not_name_one_database() -> None:
    with pytest.raises(ValidationError, match="same database"):
        Settings(topic_partitions=2, shards=[shard(6000, [0]), shard(6000, [1])])


def test_shards_name_their_own_standbys() -> None:
    with pytest.raises(ValidationError, match="read_url"):
        Settings(
            topic_partitions=1,
            shards=[shard(6000, [0])],
            database_read_url="postgresql://127.0.0.1:6001/adclick",
        )


def test_each_shard_is_reached_with_the_process_s_own_credentials() -> None:
    settings = Settings(
        topic_partitions=4,
        database_url="postgresql://adclick_ingest:s%40cret@db0:5432/adclick?sslmode=require",
        cold_storage_url="s3://bucket/cold/",
        shards=[
            shard(5432, [0, 1]),
            {"url": "postgresql://other@db1:6432/clicks", "partitions": [2, 3],
             "read_url": "postgresql://db1-standby:6432/clicks"},
        ],
    )  # fmt: skip
    first, second = settings.shard_settings()
    assert first.database_url == (
        "postgresql://adclick_ingest:s%40cret@127.0.0.1:5432/adclick?sslmode=require"
    )
    assert second.database_url == "postgresql://other@db1:6432/clicks?sslmode=require"
    assert second.for_reads().database_url.startswith("postgresql://adclick_ingest:s%40cret@")
    # Each shard's cold files go under a directory named by its database (the server's
    # identity, adclick.db.identity), never by its place in the list.
    assert [s.shard_cold_directory("db-7-16384") for s in (first, second)] == [
        "s3://bucket/cold/db-7-16384",
        "s3://bucket/cold/db-7-16384",
    ]
    assert settings.shard_cold_directory("db-7-16384") == "s3://bucket/cold"
    assert first.for_reads().one_shard and not settings.one_shard
    assert first.shards == [] and second.shards == []
    assert [s.describe_database() for s in settings.every_database()] == [
        "127.0.0.1:5432/adclick",
        "db1:6432/clicks",
        "db0:5432/adclick",  # the home database is no shard here: it is maintained too
    ]


@given(st.text(max_size=60))
def test_any_shard_url_is_used_or_refused(url: str) -> None:
    try:
        settings = Settings(topic_partitions=1, shards=[{"url": url, "partitions": [0]}])
    except ValidationError:
        return
    (only,) = settings.shard_settings()
    assert only.database_url.startswith("postgresql://")
    assert at_location(settings.database_url, url) == only.database_url


def test_two_spellings_of_one_location_are_refused_early() -> None:
    # As libpq reads them: the host in ?host= or ?hostaddr=, a host name in capitals.
    for first, second in [
        ("postgresql://db0/x", "postgresql://:5432/x?host=db0"),
        ("postgresql://DB0:5432/x", "postgresql://db0/x"),
        ("postgresql://10.0.0.1/x", "postgresql://db0/x?hostaddr=10.0.0.1"),
        ("postgresql://db0/x", "postgresql://db0/?dbname=x"),
    ]:
        with pytest.raises(ValidationError, match="same database"):
            Settings(
                topic_partitions=2,
                shards=[{"url": first, "partitions": [0]}, {"url": second, "partitions": [1]}],
            )


def test_databases_on_two_unix_socket_directories_are_two_shards() -> None:
    settings = Settings(
        topic_partitions=2,
        shards=[
            {"url": "postgresql:///adclick?host=/run/pg-a", "partitions": [0]},
            {"url": "postgresql:///adclick?host=/run/pg-b", "partitions": [1]},
        ],
    )
    hosts = [conninfo_to_dict(s.database_url)["host"] for s in settings.shard_settings()]
    assert hosts == ["/run/pg-a", "/run/pg-b"]


_LOCATION = st.sampled_from(["host", "hostaddr", "port", "dbname", "service"])
_HOME_OPTIONS = st.dictionaries(
    st.sampled_from(["host", "hostaddr", "port", "dbname", "sslmode", "connect_timeout"]),
    st.sampled_from(["/run/postgresql", "10.9.9.9", "6543", "home", "require", "7"]),
)


@given(
    home_options=_HOME_OPTIONS,
    shard_options=st.dictionaries(_LOCATION, st.sampled_from(["/run/s", "10.1.1.1", "7777"])),
    shard_host=st.sampled_from(["", "db1", "db1:6432"]),
)
def test_a_shard_is_reached_where_its_own_url_says(
    home_options: dict[str, str], shard_options: dict[str, str], shard_host: str
) -> None:
    home_query = "&".join(f"{key}={value}" for key, value in home_options.items())
    home = f"postgresql://adclick:pw@/adclick?{home_query}"
    shard_query = "&".join(f"{key}={value}" for key, value in shard_options.items())
    shard_url = f"postgresql://{shard_host}/clicks" + (f"?{shard_query}" if shard_query else "")
    reached = conninfo_to_dict(at_location(home, shard_url))
    own = conninfo_to_dict(shard_url)
    # Where: the shard's alone (no host, hostaddr, port or name of the home's).
    for key in ("host", "hostaddr", "port", "dbname", "service"):
        assert reached.get(key) == own.get(key), key
    # Who and how: the home's credentials and other options, unless the shard sets them.
    assert (reached.get("user"), reached.get("password")) == ("adclick", "pw")
    for key in ("sslmode", "connect_timeout"):
        assert reached.get(key) == own.get(key, home_options.get(key)), key


def test_a_shard_naming_its_user_takes_nothing_of_the_home_s_credentials() -> None:
    reached = conninfo_to_dict(
        at_location("postgresql://adclick:pw@h/a?sslmode=require", "postgresql://h2/b?user=x")
    )
    assert reached["user"] == "x" and "password" not in reached
    assert reached["sslmode"] == "require"
