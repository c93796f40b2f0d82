"""Partition-aligned shards (ADCLICK_SHARDS): two real clusters, the session's and one of
its own (``adclick up --shards 2``'s code), each owning half of the clicks partitions.

Traffic with duplicates and late events, ingested into the two shards, must give the
exact truth everywhere a user looks: the rollups of both shards together, the closer's
lists (in the home database), and the API's topAds (short and long windows, filtered
and not, from the window index, the hour index and SQL) and adClicks; the same answers
as one database holding everything; and still the exact truth after a worker is killed
and one shard's database crashes while ingest runs.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from prometheus_client import REGISTRY
from psycopg import sql
from psycopg_pool import ConnectionPool

from adclick.api.admin import Admin
from adclick.api.query_host import QueryHost
from adclick.close.closer import MinuteCloser
from adclick.kafka.partitioners import owning_shards
from adclick.lifecycle.reconcile import reconcile
from adclick.loadgen.truth import Truth
from adclick.loadgen.verify import compare
from adclick.query.service import RankedBy, WindowArgs
from adclick.settings import PROCESS_ROLES, ProcessKind, Settings, Shard, at_location
from adclick.stack.lifecycle import SHARD_DIR, database_up, local_targets
from adclick.stack.secrets import ensure_passwords, passfile_path
from adclick.stack.timescaledb import SUPERUSER, TimescaleCluster
from tests.api_client import ApiProcess, with_tokens
from tests.conftest import TEMPLATE, free_port, fresh_settings
from tests.helpers import (
    committed_offsets,
    execute,
    ingest_process,
    ingest_until_idle,
    load,
    query,
    send,
    wait_for,
)
from tests.integration.test_api import assert_top_equals_truth, metric_values, top_ads
from tests.integration.test_close import (
    assert_lists_equal_truth,
    assert_published_once_each,
    closer_settings,
    traffic_spec,
)
from tests.integration.test_outages import readiness
from tests.truth_ranking import truth_clicks, truth_top

pytestmark = pytest.mark.slow(seconds=120)


@pytest.fixture(scope="module")
def second_cluster(stack_settings: Settings) -> Iterator[TimescaleCluster]:
    """A second cluster beside the session's, with the migrated template database."""
    cluster = TimescaleCluster(stack_settings.state_dir, free_port(), f"{SHARD_DIR}1")
    owner = stack_settings.model_copy(
        update={
            "database_url": at_location(
                stack_settings.database_url,
                f"postgresql://127.0.0.1:{cluster.port}/{TEMPLATE}",
            )
        }
    )
    targets = local_targets(stack_settings)
    passwords = ensure_passwords(
        stack_settings.state_dir, [SUPERUSER, targets.db_user, *PROCESS_ROLES.values()]
    )
    database_up(owner, cluster, passwords, lambda message: print(f"shard 1: {message}"))
    with _superuser(stack_settings, cluster.port) as conn:
        conn.execute(f"ALTER DATABASE {TEMPLATE} WITH ALLOW_CONNECTIONS false")
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (TEMPLATE,),
        )
    try:
        yield cluster
    finally:
        cluster.stop()


def _superuser(settings: Settings, port: int) -> psycopg.Connection[Any]:
    return psycopg.connect(
        f"postgresql://{SUPERUSER}@127.0.0.1:{port}/postgres",
        autocommit=True,
        passfile=str(passfile_path(settings.state_dir)),
    )


@contextlib.contextmanager
def two_shards(stack_settings: Settings, cluster: TimescaleCluster) -> Iterator[Settings]:
    """A fresh test database on each cluster; shard 0 (the session's, also the home
    database) owns partitions 0 and 1, shard 1 partitions 2 and 3."""
    with fresh_settings(stack_settings) as home:
        name = home.database_url.rsplit("/", 1)[1]
        with _superuser(stack_settings, cluster.port) as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {} OWNER adclick").format(
                    sql.Identifier(name), sql.Identifier(TEMPLATE)
                )
            )
        host_port = home.database_url.rsplit("@", 1)[1].rsplit("/", 1)[0]
        shards = [
            Shard(url=f"postgresql://{host_port}/{name}", partitions=[0, 1]),
            Shard(url=f"postgresql://127.0.0.1:{cluster.port}/{name}", partitions=[2, 3]),
        ]
        # Validated as ADCLICK_SHARDS would be (model_copy does not validate).
        settings = Settings(**{**home.model_dump(), "shards": shards})
        try:
            yield settings
        finally:
            with _superuser(stack_settings, cluster.port) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )


def assert_each_shard_holds_its_partitions(settings: Settings) -> None:
    for shard, shard_settings in zip(settings.shards, settings.shard_settings(), strict=True):
        rows = query(shard_settings, "SELECT DISTINCT kafka_partition FROM raw_clicks ORDER BY 1")
        assert [r[0] for r in rows] == shard.partitions, shard
        offsets = query(shard_settings, "SELECT kafka_partition FROM ingest_offsets ORDER BY 1")
        assert [r[0] for r in offsets] == shard.partitions, shard


def assert_each_ad_is_in_its_owning_shard(settings: Settings) -> None:
    for index, shard_settings in enumerate(settings.shard_settings()):
        ads = [ad for (ad,) in query(shard_settings, "SELECT DISTINCT ad_id FROM clicks_1m")]
        assert ads, f"shard {index} holds no ad: nothing proven"
        assert {ad: owning_shards(settings, [ad]) for ad in ads} == {ad: [index] for ad in ads}


Key = tuple[Any, ...]
COUNTRY_FILTERS: list[tuple[str, ...]] = [(), ("US",), ("DE", "IN")]


def api_answers(settings: Settings, truth: Truth) -> dict[Key, Any]:
    """topAds and adClicks as the frontend asks them, from an in-process query host on
    ``settings``: windows of the window index (the last 1, 5 and 10 minutes), of the
    hour index (the last 24 hours) and of SQL (reaching the newest,
    incomplete minute), each unfiltered and filtered by country; adClicks of ads from the
    top, the middle and the end of the day's list, and of one never clicked."""
    # Ten minutes in the window index: the earlier quarter hour of traffic is in the hour
    # index, which "the last 24 hours" then reads.
    host = QueryHost(settings.model_copy(update={"api_cache_minutes": 10}))
    host.start()
    try:
        queries = host.queries
        wait_for(lambda: queries.refresh() is not None, 60, "the window index to load")
        while queries.refresh_hours():
            pass
        minutes = sorted({minute for _ad, minute in truth.by_ad_minute})
        windows = [
            WindowArgs(last_minutes=1),
            WindowArgs(last_minutes=5),
            WindowArgs(last_minutes=10),
            WindowArgs(last_minutes=24 * 60),
            WindowArgs(start=_at(minutes[-1] - 300), end=_at(minutes[-1] + 60)),
        ]
        answers: dict[Key, Any] = {}
        for window in windows:
            for countries in COUNTRY_FILTERS:
                top = queries.top_ads(100, window, _filter(countries))
                answers[("top", window, countries)] = (
                    top.window.start_ms,
                    top.window.end_ms,
                    [(ad.ad_id, ad.clicks) for ad in top.ads],
                    top.ranked_by,
                )
        ranked = answers[("top", windows[3], ())][2]
        for ad in [ranked[0][0], ranked[len(ranked) // 2][0], ranked[-1][0], "ad-never-clicked"]:
            for window in windows:
                clicks = queries.ad_clicks(ad, window, {})
                answers[("ad", window, ad)] = (clicks.window.start_ms, clicks.series)
        return answers
    finally:
        host.stop(timeout_s=10)


def _misrouted() -> float:
    """Clicks the ingest workers of this process dead-lettered as misrouted."""
    found = REGISTRY.get_sample_value(
        "adclick_ingest_events_dead_lettered_total", {"reason": "misrouted"}
    )
    return found or 0.0


def _at(moment_s: int) -> datetime:
    return datetime.fromtimestamp(moment_s, tz=UTC)


def _filter(countries: tuple[str, ...]) -> dict[str, Sequence[str] | None]:
    return {"country": list(countries)} if countries else {}


def assert_answers_equal_truth(answers: dict[Key, Any], truth: Truth) -> None:
    for key, answer in answers.items():
        if key[0] == "top":
            start_ms, end_ms, ads, _ranked_by = answer
            countries = list(key[2]) or None
            clicks = truth_clicks(truth, start_ms // 1000, end_ms // 1000, countries)
            expected = [(row["adId"], row["clicks"]) for row in truth_top(clicks, 100)]
            assert expected, f"{key}: no clicks in the window, nothing proven"
            assert ads == expected, key
        else:
            _start_ms, series = answer
            ad = key[2]
            assert series, key
            for start, clicks in series:
                assert clicks == truth.by_ad_minute.get((ad, start // 1000), 0), (key, start)
    ranked_by = {answer[3] for key, answer in answers.items() if key[0] == "top"}
    assert ranked_by == set(RankedBy), f"not every way of ranking was used: {ranked_by}"


def test_two_shards_count_exactly_and_answer_as_one_database(
    stack_settings: Settings, second_cluster: TimescaleCluster
) -> None:
    spec = traffic_spec(seed=41, invalid_fraction=0.01)
    with two_shards(stack_settings, second_cluster) as sharded:
        truth = load(sharded, spec)
        # Clicks not keyed by their ad would split it over the shards: refused, not counted.
        ad, minute_s = next(iter(truth.by_ad_minute))
        stray = {"ad_id": ad, "timestamp": minute_s * 1000, "ip": "10.0.0.1", "country": "DE"}
        send(sharded, [orjson.dumps(stray | {"user_id": f"stray{i}"}) for i in range(3)],
             key=b"not-the-ad")  # fmt: skip
        misrouted = _misrouted()
        ingest_until_idle(sharded)
        assert _misrouted() - misrouted == 3
        assert compare(sharded, truth) == []  # every rollup row of both shards
        assert_each_shard_holds_its_partitions(sharded)
        closing = closer_settings(sharded)
        MinuteCloser(closing).run(threading.Event(), once=True)
        assert_lists_equal_truth(closing, truth)  # stored in the home database
        assert_published_once_each(closing)
        sharded_answers = api_answers(sharded, truth)
        # loadgen produces with librdkafka's default partitioner: told so, adClicks reads
        # each ad from its own shard only, with the same answers.
        routed = sharded.model_copy(update={"shard_partitioner": "consistent_random"})
        assert_each_ad_is_in_its_owning_shard(routed)
        assert api_answers(routed, truth) == sharded_answers
    assert_answers_equal_truth(sharded_answers, truth)
    with fresh_settings(stack_settings) as single:
        assert load(single, spec).by_ad_minute == truth.by_ad_minute
        ingest_until_idle(single)
        single_answers = api_answers(single, truth)
    assert single_answers == sharded_answers


def test_a_killed_worker_and_a_crashed_shard_still_count_exactly(
    stack_settings: Settings, second_cluster: TimescaleCluster
) -> None:
    spec = traffic_spec(seed=43, events=120_000, invalid_fraction=0.01)
    with two_shards(stack_settings, second_cluster) as sharded:
        truth = load(sharded, spec)
        crashing = sharded.model_copy(update={"ingest_batch_size": 2_000})
        worker = ingest_process(crashing)
        wait_for(lambda: committed_offsets(sharded) > 0, 90, "the first commit on shard 0")
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
        worker = ingest_process(crashing)
        wait_for(lambda: committed_offsets(sharded) > 20_000, 90, "ingest to go on")
        second_cluster.stop(immediate=True)  # shard 1 crashes while ingest writes to it
        time.sleep(3)
        second_cluster.start()
        worker.send_signal(signal.SIGTERM)
        _out, err = worker.communicate(timeout=120)
        final = ingest_process(crashing, "--exit-when-idle", "3")
        _out, err = final.communicate(timeout=600)
        assert final.returncode == 0, err.decode()[-2000:]
        shard_offsets = sum(
            int(query(s, "SELECT coalesce(sum(next_offset), 0) FROM ingest_offsets")[0][0])
            for s in sharded.shard_settings()
        )
        assert shard_offsets == spec.events
        assert compare(sharded, truth) == []
        assert_each_shard_holds_its_partitions(sharded)


def test_a_retention_change_reaches_every_shard(
    stack_settings: Settings, second_cluster: TimescaleCluster
) -> None:
    with two_shards(stack_settings, second_cluster) as sharded:
        api = sharded.for_process(ProcessKind.API)
        with ConnectionPool(api.database_url, kwargs={"autocommit": True}) as pool:
            Admin(api, pool).set_retention("clicks_1m", "P120D", "P0D", "test")
        for shard in sharded.shard_settings():
            rows = query(
                shard, "SELECT hot, cold FROM retention_policies WHERE relation = 'clicks_1m'"
            )
            assert rows == [(timedelta(days=120), timedelta(0))], shard.describe_database()


def test_the_api_process_answers_from_both_shards_and_is_unready_without_one(
    stack_settings: Settings, second_cluster: TimescaleCluster, tmp_path: Path
) -> None:
    """`adclick api` with ADCLICK_SHARDS in its environment: exact answers over both
    shards, the reconciliation metric over both, and /readyz failing, naming the shard,
    while shard 1's database is down."""
    with two_shards(stack_settings, second_cluster) as sharded:
        settings, tokens = with_tokens(sharded, api_refresh_interval_s=0.2)
        truth = load(settings, traffic_spec(seed=47))
        ingest_until_idle(settings)
        api = ApiProcess(settings, tmp_path / "api.log")
        try:
            reader = api.client(tokens.reader)
            for minutes in (5, 60):
                answer = top_ads(reader, {"lastMinutes": minutes}, 100)
                assert_top_equals_truth(answer, truth, 100)
            # A rollup row of shard 1 corrupted, then `adclick reconcile` (every shard):
            # the API's metric counts shard 1's discrepancy with shard 0's none.
            shard_1 = settings.shard_settings()[1]
            # By its key: a ctid names a row only within one chunk, and clicks_1m has many.
            execute(shard_1, "UPDATE clicks_1m SET clicks = clicks + 1 WHERE (ad_id, minute) = "
                             "(SELECT ad_id, minute FROM clicks_1m LIMIT 1)")  # fmt: skip
            minutes_s = sorted({minute for _ad, minute in truth.by_ad_minute})
            span = (_at(minutes_s[0] - 3600), _at(minutes_s[-1] + 3600))
            maintaining = settings.for_process(ProcessKind.MAINTAIN)
            found = [len(reconcile(s, *span).discrepancies) for s in maintaining.shard_settings()]
            assert found == [0, 1]
            metric = metric_values(api.url, "adclick_reconcile_discrepancies")
            assert metric == {"": 1.0}
            second_cluster.stop(immediate=True)
            try:
                status, body = readiness(api.url)
                assert status == 503 and "shard 1 database" in body["problems"], body
            finally:
                second_cluster.start()
            wait_for(lambda: readiness(api.url)[0] == 200, 30, "/readyz after the restart")
        finally:
            assert api.stop() == 0
