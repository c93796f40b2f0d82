"""The batch transaction itself, on the real database: all of it commits, or none of it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import orjson
import pytest

from adclick.db.connect import connect
from adclick.errors import ConfigurationError
from adclick.ingest.batch import Batch, DeadLetter, assemble_batch
from adclick.ingest.clock import PartitionClocks
from adclick.ingest.new_keys import MinuteAdKeys, floor_after
from adclick.ingest.writer import BatchWriter
from adclick.settings import Settings
from tests.helpers import query, rollup_counts
from tests.kafka_records import FakeRecord

T0 = 1_720_483_200_000  # 2024-07-09 00:00 UTC


def batch_of(click_ids: list[str], first_offset: int = 0) -> tuple[Batch, PartitionClocks]:
    clocks = PartitionClocks(lateness_ms=60_000, horizon_ms=7 * 86_400_000)
    records = [
        FakeRecord(
            0,
            first_offset + i,
            orjson.dumps(
                {
                    "ad_id": "ad1",
                    "timestamp": T0,
                    "user_id": "u",
                    "ip": "1.2.3.4",
                    "country": "US",
                    "click_id": click_id,
                }
            ),
        )
        for i, click_id in enumerate(click_ids)
    ]
    return assemble_batch(records, "t", clocks, now_ms=T0, max_skew_ms=0), clocks


def nothing(_letters: list[DeadLetter]) -> None:
    pass


@pytest.fixture
def new_writer(settings: Settings) -> Iterator[Callable[[], BatchWriter]]:
    """Makes writers, each on a connection of its own; closes them after the test."""
    made: list[BatchWriter] = []

    def make() -> BatchWriter:
        made.append(BatchWriter(connect(settings), settings))
        return made[-1]

    yield make
    for writer in made:
        writer.conn.close()


def test_nothing_of_a_batch_commits_when_any_step_fails(
    settings: Settings, new_writer: Callable[[], BatchWriter]
) -> None:
    writer = new_writer()
    batch, clocks = batch_of(["a", "b", "c"])

    def broker_down(_letters: list[DeadLetter]) -> None:
        raise RuntimeError("dead-letter topic unreachable")

    with pytest.raises(RuntimeError):
        writer.write(batch, clocks, broker_down)
    assert query(settings, "SELECT count(*) FROM raw_clicks") == [(0,)]
    assert query(settings, "SELECT count(*) FROM ingest_offsets") == [(0,)]
    assert rollup_counts(settings) == {}

    result = writer.write(batch, clocks, nothing)  # the same batch, read again
    assert result.inserted == 3 and not result.careful_path
    assert rollup_counts(settings) == {("ad1", T0 // 1000): 3}
    assert query(settings, "SELECT next_offset FROM ingest_offsets") == [(3,)]


def test_a_duplicate_the_worker_could_not_see_takes_the_careful_path(
    settings: Settings, new_writer: Callable[[], BatchWriter]
) -> None:
    writer = new_writer()
    first, clocks = batch_of(["a", "b"])
    writer.write(first, clocks, nothing)
    # A new worker (no memory of "b") reads a batch that repeats it.
    second, clocks = batch_of(["b", "c", "d"], first_offset=2)
    result = writer.write(second, clocks, nothing)
    assert result.careful_path
    assert result.inserted == 2
    assert rollup_counts(settings) == {("ad1", T0 // 1000): 4}
    assert query(settings, "SELECT count(*) FROM raw_clicks") == [(4,)]
    assert query(settings, "SELECT next_offset FROM ingest_offsets") == [(5,)]


def hour_and_country_counts(settings: Settings) -> list[tuple[object, ...]]:
    return query(
        settings,
        "SELECT 'hour', ad_id, clicks FROM clicks_1h"
        " UNION ALL SELECT country, ad_id, clicks FROM clicks_1m_by_country ORDER BY 1",
    )


def test_rows_taken_for_new_are_inserted_and_later_batches_add_to_them(
    settings: Settings, new_writer: Callable[[], BatchWriter]
) -> None:
    writer = new_writer()
    writer.new_keys.reset(floor_after([None]))  # nothing stored: every key is new
    first, clocks = batch_of(["a", "b"])
    assert writer.new_keys.new_mask(MinuteAdKeys.of([T0], ["ad1"])).tolist() == [True]
    writer.write(first, clocks, nothing)
    # The writer remembers what it inserted, so the next batch of that minute upserts.
    assert writer.new_keys.new_mask(MinuteAdKeys.of([T0], ["ad1"])).tolist() == [False]
    second, clocks = batch_of(["c", "d", "e"], first_offset=2)
    writer.write(second, clocks, nothing)
    assert rollup_counts(settings) == {("ad1", T0 // 1000): 5}
    assert hour_and_country_counts(settings) == [("US", "ad1", 5), ("hour", "ad1", 5)]


def test_a_row_wrongly_taken_for_new_is_added_to_not_lost(
    settings: Settings, new_writer: Callable[[], BatchWriter], caplog: pytest.LogCaptureFixture
) -> None:
    # A worker that lost its partition commits a batch after the new owner read the
    # stored positions: the new owner takes the (minute, ad) for new, but it is stored.
    zombie = new_writer()
    owner = new_writer()
    owner.new_keys.reset(floor_after([None]))
    late_batch, clocks = batch_of(["a", "b"])
    zombie.write(late_batch, clocks, nothing)
    batch, clocks = batch_of(["c", "d", "e"], first_offset=2)
    with caplog.at_level(logging.WARNING, logger="adclick.ingest.writer"):
        result = owner.write(batch, clocks, nothing)
    assert result.inserted == 3
    assert rollup_counts(settings) == {("ad1", T0 // 1000): 5}
    assert hour_and_country_counts(settings) == [("US", "ad1", 5), ("hour", "ad1", 5)]
    assert query(settings, "SELECT count(*) FROM raw_clicks") == [(5,)]
    assert "took for new exists" in caplog.text
    # It claims nothing more for a while, so one wrong claim does not cost every batch.
    assert owner.new_keys.new_mask(MinuteAdKeys.of([T0 + 60_000], ["ad2"])).tolist() == [False]


def test_a_dimension_set_whose_table_was_made_for_another_is_refused(settings: Settings) -> None:
    """ADCLICK_DIMENSION_SETS [["a", "b"]], and later [["a_b"]]: both are the table
    clicks_1m_by_a_b. The writer used to start on the old table and fail every batch,
    restart after restart; it now refuses to start, naming the table and why."""
    earlier = settings.model_copy(update={"dimension_sets": [["a", "b"]]})
    with connect(earlier) as conn:
        BatchWriter(conn, earlier)
    later = settings.model_copy(update={"dimension_sets": [["a_b"]]})
    with connect(later) as conn, pytest.raises(ConfigurationError) as refused:
        BatchWriter(conn, later)
    assert "clicks_1m_by_a_b" in str(refused.value) and "another set" in str(refused.value)
    with connect(earlier) as conn:
        BatchWriter(conn, earlier)  # the configuration that made it still starts
