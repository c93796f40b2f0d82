"""The API on a read replica: a streaming standby of the test cluster (``adclick up
--replica``'s code), its answers, its readiness, its writes and recovery conflicts.

The standby replicates the whole cluster, so the shared API data's database is on it
too; an API whose ADCLICK_DATABASE_READ_URL names the standby must answer exactly what
the truth says once the standby has replayed everything, send retention changes to the
primary, fail /readyz while the standby lags, and retry a query the standby cancelled
for a conflict with recovery.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import pytest
from psycopg_pool import ConnectionPool

from adclick.api.query_host import QueryHost
from adclick.db.connect import Connection
from adclick.db.replica import lag_problem, read_with_retry, replica_state
from adclick.kafka.clients import make_producer
from adclick.settings import ProcessKind, Settings, Shard
from adclick.stack.replica import replica_remove, replica_up
from adclick.stack.secrets import passfile_path
from adclick.stack.timescaledb import SUPERUSER, TimescaleCluster
from tests.api_client import ApiProcess, free_port
from tests.conftest import TEMPLATE, _admin_connection, fresh_settings
from tests.helpers import execute, ingest_until_idle, query
from tests.integration.conftest import ApiData
from tests.integration.test_api import (
    AD_CLICKS,
    SET_RETENTION,
    assert_top_equals_truth,
    top_ads,
)
from tests.integration.test_database_identity import another_database
from tests.truth_ranking import iso

# A conflict cancels a standby's query after this long (30 s by default).
STANDBY_DELAY = "500ms"


@dataclass(frozen=True)
class Replica:
    cluster: TimescaleCluster
    settings: Settings  # the session's, with ADCLICK_DATABASE_READ_URL naming the standby

    def url(self, database: str, role: str) -> str:
        return f"postgresql://{role}@127.0.0.1:{self.cluster.port}/{database}"

    def superuser(self, database: str = "postgres") -> Connection:
        return psycopg.connect(
            self.url(database, SUPERUSER),
            autocommit=True,
            passfile=str(passfile_path(self.settings.state_dir)),
        )


@pytest.fixture(scope="module")
def replica(stack_settings: Settings) -> Iterator[Replica]:
    settings = stack_settings.model_copy(
        update={"database_read_url": f"postgresql://adclick_api@127.0.0.1:{free_port()}/{TEMPLATE}"}
    )
    cluster = replica_up(settings, lambda message: print(f"replica: {message}"))
    cluster.configure(max_standby_streaming_delay=STANDBY_DELAY)
    try:
        yield Replica(cluster, settings)
    finally:
        replica_remove(settings, lambda message: print(f"replica: {message}"))


def database_of(settings: Settings) -> str:
    return settings.database_url.rsplit("/", 1)[1]


def wait_caught_up(replica: Replica, primary: Settings, timeout_s: float = 30.0) -> None:
    """Until the standby has replayed the primary's WAL as of now."""
    (target,) = query(primary, "SELECT pg_current_wal_lsn()::text")[0]
    deadline = time.monotonic() + timeout_s
    with replica.superuser() as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [target]).fetchone()
            if row is not None and row[0]:
                return
            time.sleep(0.05)
    raise AssertionError(f"the standby did not replay up to {target} in {timeout_s} s")


@pytest.fixture(scope="module")
def replica_api(
    api_data: ApiData, replica: Replica, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiProcess]:
    """Two API workers whose queries and indexes read the standby."""
    wait_caught_up(replica, api_data.settings)
    settings = api_data.settings.model_copy(
        update={
            "api_workers": 2,
            "api_port": free_port(),
            "database_read_url": replica.url(database_of(api_data.settings), "adclick_api"),
        }
    )
    api = ApiProcess(settings, tmp_path_factory.mktemp("replica-api") / "api.log")
    try:
        yield api
    finally:
        assert api.stop() == 0


def test_the_standby_says_it_is_one(replica: Replica, api_data: ApiData) -> None:
    wait_caught_up(replica, api_data.settings)
    (primary_lsn,) = query(api_data.settings, "SELECT pg_current_wal_lsn()::text")[0]
    with replica.superuser(database_of(api_data.settings)) as conn:
        state = replica_state(conn, primary_lsn)
    assert state.standby and state.streaming
    assert state.problem(max_lag_s=30) is None
    with psycopg.connect(api_data.settings.database_url, autocommit=True) as conn:
        primary = replica_state(conn, primary_lsn)
    assert not primary.standby and primary.problem(max_lag_s=0.001) is None


def test_lag_is_measured_against_the_primary_when_its_sender_stalls(
    replica: Replica, api_data: ApiData
) -> None:
    """A standby that replayed all it received is not current when the primary stopped
    sending: the primary went on committing, and readers of the standby must be told."""
    primary = api_data.settings
    wait_caught_up(replica, primary)
    with _admin_connection(primary) as admin:
        (sender,) = admin.execute("SELECT pid FROM pg_stat_replication").fetchone() or (None,)
        assert sender is not None
        os.kill(sender, signal.SIGSTOP)
        try:
            execute(primary, "CREATE TABLE stalled_probe AS SELECT 1 AS x")
            time.sleep(2.5)
            execute(primary, "INSERT INTO stalled_probe VALUES (2)")
            with replica.superuser(database_of(primary)) as standby:
                # What it received, it replayed: measured against that, it looked current.
                row = standby.execute(
                    "SELECT pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()"
                ).fetchone()
                assert row == (True,)
                problem = lag_problem(standby, primary, max_lag_s=1.0)
        finally:
            os.kill(sender, signal.SIGCONT)
    try:
        assert problem is not None and "ADCLICK_API_MAX_REPLICA_LAG_S" in problem
        wait_caught_up(replica, primary)
        with replica.superuser(database_of(primary)) as standby:
            assert lag_problem(standby, primary, max_lag_s=1.0) is None
    finally:
        execute(primary, "DROP TABLE stalled_probe")


@pytest.mark.parametrize("countries", [None, ["US"], ["DE", "IN"]])
def test_answers_from_the_standby_equal_the_truth(
    api_data: ApiData, replica: Replica, replica_api: ApiProcess, countries: list[str] | None
) -> None:
    reader = replica_api.client(api_data.tokens.reader)
    filter_ = {"country": countries} if countries else {}
    for minutes in (1, 5, 60):
        answer = top_ads(reader, {"lastMinutes": minutes}, 100, **filter_)
        assert_top_equals_truth(answer, api_data.truth, 100, countries)
    # A range that SQL answers (it reaches the newest, incomplete minute) and one of
    # whole hours and edges.
    minutes_seen = sorted({minute for _ad, minute in api_data.truth.by_ad_minute})
    first, last = minutes_seen[0], minutes_seen[-1]
    for start_s, end_s in ((last - 5 * 60, last + 60), (first - first % 3600 - 3600, last + 60)):
        window = {"from": iso(start_s), "to": iso(end_s)}
        assert_top_equals_truth(
            top_ads(reader, window, 200, **filter_), api_data.truth, 200, countries
        )
    # adClicks: the same answer as the primary's API gives, series and all.
    per_ad: Counter[str] = Counter()
    for (ad, _minute), clicks in api_data.truth.by_ad_minute.items():
        per_ad[ad] += clicks
    ads = [ad for ad, _clicks in per_ad.most_common(3)]
    for ad in ads:
        variables: dict[str, Any] = {
            "adId": ad,
            "window": {"from": iso(first), "to": iso(last + 60)},
            "filter": filter_ or None,
            "granularity": "MINUTE",
        }
        assert reader.run(AD_CLICKS, **variables) == api_data.reader.run(AD_CLICKS, **variables)
    # And it really read the standby: its backends are there.
    with replica.superuser() as conn:
        names = {
            row[0]
            for row in conn.execute(
                "SELECT application_name FROM pg_stat_activity WHERE datname = %s",
                [database_of(api_data.settings)],
            )
        }
    assert {"adclick-api", "adclick-api-index"} <= names


def test_retention_changes_go_to_the_primary(api_data: ApiData, replica_api: ApiProcess) -> None:
    admin = replica_api.client(api_data.tokens.admin)
    before = query(api_data.settings, "SELECT hot, cold FROM retention_policies"
                   " WHERE relation = 'raw_clicks'")[0]  # fmt: skip
    try:
        changed = admin.run(SET_RETENTION, relation="raw_clicks", hot="P15D", cold="P300D")
        assert changed["setRetention"]["hot"] == "P15D"
        stored = query(api_data.settings, "SELECT extract(day FROM hot)::int FROM"
                       " retention_policies WHERE relation = 'raw_clicks'")[0]  # fmt: skip
        assert stored == (15,)
    finally:
        execute(
            api_data.settings,
            "UPDATE retention_policies SET hot = %s, cold = %s WHERE relation = 'raw_clicks'",
            *before,
        )


def test_readiness_fails_while_the_standby_lags(
    api_data: ApiData, replica: Replica, tmp_path: Path
) -> None:
    settings = api_data.settings.model_copy(
        update={
            "api_port": free_port(),
            "api_max_replica_lag_s": 1.0,
            "database_read_url": replica.url(database_of(api_data.settings), "adclick_api"),
        }
    )
    wait_caught_up(replica, api_data.settings)
    api = ApiProcess(settings, tmp_path / "api.log")
    ready_url = f"{api.url}/readyz"
    try:
        with replica.superuser() as conn:
            conn.execute("SELECT pg_wal_replay_pause()")
            try:
                # Something to replay: a transaction committed on the primary now.
                execute(api_data.settings, "CREATE TEMP TABLE lag_probe AS SELECT 1")
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    response = httpx.get(ready_url, timeout=5)
                    if response.status_code == 503:
                        break
                    time.sleep(0.2)
                assert response.status_code == 503, response.text
                assert "ADCLICK_API_MAX_REPLICA_LAG_S" in response.json()["problems"]["replica"]
            finally:
                conn.execute("SELECT pg_wal_replay_resume()")
        wait_caught_up(replica, api_data.settings)
        deadline = time.monotonic() + 30
        while httpx.get(ready_url, timeout=5).status_code != 200:
            assert time.monotonic() < deadline, httpx.get(ready_url, timeout=5).text
            time.sleep(0.2)
    finally:
        assert api.stop() == 0


def test_a_query_cancelled_by_a_recovery_conflict_is_asked_again(
    api_data: ApiData, replica: Replica
) -> None:
    """The primary truncates a table while the standby reads it: replaying the
    truncation's lock cancels the read (after max_standby_streaming_delay); the read is
    asked again and answers from the table as it is now."""
    execute(api_data.settings, "CREATE TABLE conflict_probe AS SELECT generate_series(1, 10) AS x")
    try:
        execute(api_data.settings, "GRANT SELECT ON conflict_probe TO adclick_api")
        wait_caught_up(replica, api_data.settings)
        pool: ConnectionPool[Connection] = ConnectionPool(
            replica.url(database_of(api_data.settings), "adclick_api"),
            min_size=1,
            max_size=2,
            kwargs={"autocommit": True},
        )
        attempts: list[float] = []
        answer: list[Any] = []

        def read(conn: Connection) -> Any:
            attempts.append(time.monotonic())
            # Long enough for the truncation to be replayed while it runs.
            return conn.execute(
                "SELECT count(*), max(pg_sleep(3)::text) FROM conflict_probe"
            ).fetchone()

        with pool:
            reader = threading.Thread(target=lambda: answer.append(read_with_retry(pool, read)))
            reader.start()
            time.sleep(1.0)  # the read holds its lock on the standby now
            execute(api_data.settings, "TRUNCATE conflict_probe")
            reader.join(timeout=30)
        assert not reader.is_alive()
        assert len(attempts) == 2, "the first read should have been cancelled, once"
        assert answer[0][0] == 0  # the table as the primary left it
    finally:
        execute(api_data.settings, "DROP TABLE IF EXISTS conflict_probe")


def _clicks_now(settings: Settings, partitions: list[int], user: str) -> None:
    producer = make_producer(settings)
    at_ms = int(time.time() * 1000)
    for partition in partitions:
        event = {"ad_id": f"ad{partition}", "timestamp": at_ms, "user_id": user,
                 "ip": "10.0.0.1", "country": "DE"}  # fmt: skip
        producer.produce(
            settings.clicks_topic,
            value=orjson.dumps(event),
            key=str(event["ad_id"]).encode(),  # with shards, keyed by its ad
            partition=partition,
        )
    assert producer.flush(30) == 0


def test_a_shard_whose_standby_lags_never_looks_idle(
    stack_settings: Settings, replica: Replica
) -> None:
    """Shard A is read from the standby, whose replay is paused; shard B from its
    primary. Ingest goes on in both: A's partitions must hold the watermark back at what
    the standby has of them, not look idle because its clocks are old."""
    with fresh_settings(stack_settings) as home, another_database(stack_settings, home) as b:
        port = home.database_url.rsplit(":", 1)[1].split("/", 1)[0]
        a = database_of(home)
        settings = Settings(
            **{
                **home.model_dump(),
                "idle_partition_timeout": timedelta(seconds=1),
                "shards": [
                    Shard(
                        url=f"postgresql://127.0.0.1:{port}/{a}",
                        partitions=[0, 1],
                        read_url=replica.url(a, "adclick_api"),
                    ),
                    Shard(url=f"postgresql://127.0.0.1:{port}/{b}", partitions=[2, 3]),
                ],
            }
        )
        _clicks_now(settings, [0, 1, 2, 3], "u1")
        ingest_until_idle(settings)
        wait_caught_up(replica, home)
        with replica.superuser() as standby:
            standby.execute("SELECT pg_wal_replay_pause()")
            try:
                time.sleep(1.5)  # longer than the idle timeout
                _clicks_now(settings, [0, 1, 2, 3], "u2")
                ingest_until_idle(settings, idle_s=1.0)
                host = QueryHost(settings.for_process(ProcessKind.API))
                host.start()
                try:
                    clock = host.queries.clock()
                finally:
                    host.stop(timeout_s=5)
                with replica.superuser(a) as shard_a:
                    rows = shard_a.execute(
                        "SELECT (extract(epoch FROM watermark) * 1000)::bigint "
                        "FROM partition_watermarks WHERE topic = %s",
                        [settings.clicks_topic],
                    ).fetchall()
            finally:
                standby.execute("SELECT pg_wal_replay_resume()")
        assert len(rows) == 2
        assert clock.watermark_ms is not None
        assert clock.watermark_ms <= min(watermark for (watermark,) in rows)
