"""ADCLICK_SHARDS: which maps of partitions to databases are accepted, and what each
process makes of one (its credentials at each shard's database, each shard's cold path).

Any map is accepted only if every partition of the clicks topic has exactly one shard;
anything else is refused with a message, never a traceback or a half-used setting.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
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
    assert [s.cold_storage_url for s in (first, second)] == [
        "s3://bucket/cold/shard-0",
        "s3://bucket/cold/shard-1",
    ]
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
