"""Least privilege on the real database: each process kind's role can do its work and
nothing it must not; the local stack refuses connections without the role's password;
no output of a failed connection shows the password."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import errors

from adclick.close.closer import MinuteCloser
from adclick.db.connect import connect
from adclick.db.rollups import ensure_filtered_rollups
from adclick.errors import ConfigurationError, DependencyUnavailableError
from adclick.lifecycle.reconcile import reconcile
from adclick.lifecycle.tiering import Maintainer
from adclick.settings import PROCESS_ROLES, ProcessKind, Settings
from adclick.stack.lifecycle import local_targets
from adclick.stack.secrets import passfile_path
from tests.helpers import ingest_until_idle, load, query, recent_spec, rollup_counts

SECRET = "Sup3r-Secret-Passw0rd"


def as_role(settings: Settings, kind: ProcessKind) -> psycopg.Connection[tuple[object, ...]]:
    return connect(settings.for_process(kind))


def refused(settings: Settings, kind: ProcessKind, statement: str) -> None:
    """``statement`` as ``kind``'s role fails for lack of privilege."""
    with as_role(settings, kind) as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute(statement)


@pytest.fixture
def counted(settings: Settings) -> Settings:
    """A few minutes of clicks ingested by the ingest role (so it can do its work)."""
    spec = recent_spec(2_000, seed=5, ads=50, event_rate=10.0, duplicate_fraction=0.05)
    truth = load(settings, spec)
    ingest_until_idle(settings)  # tests.helpers runs it as adclick_ingest
    assert rollup_counts(settings) == truth.by_ad_minute
    return settings


def test_each_process_runs_as_its_own_role(settings: Settings) -> None:
    for kind, role in PROCESS_ROLES.items():
        with as_role(settings, kind) as conn:
            row = conn.execute(
                "SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user"
            ).fetchone()
        assert row == (role, False)


def test_the_closer_the_maintainer_and_reconcile_work_as_their_roles(
    counted: Settings, tmp_path: Path
) -> None:
    settings = counted.model_copy(update={"cold_storage_url": str(tmp_path / "cold")})
    closer = MinuteCloser(settings.for_process(ProcessKind.CLOSE)).run(threading.Event(), once=True)
    assert closer.lists > 0
    assert query(settings, "SELECT count(*) FROM top_ad_lists")[0][0] > 0

    maintain = settings.for_process(ProcessKind.MAINTAIN)
    newest = query(settings, "SELECT max(ts) FROM raw_clicks")[0][0]
    first = query(settings, "SELECT min(ts) FROM raw_clicks")[0][0]
    start = first.replace(minute=0, second=0, microsecond=0)
    end = newest.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    report = reconcile(maintain, start, end)
    assert report.rows_checked > 0 and report.discrepancies == []
    # Every raw chunk is past a hot time of 1 hour once stream time is a day ahead: tiered
    # to Parquet and dropped through adclick_drop_chunk.
    with connect(settings) as conn:
        conn.execute(
            "UPDATE partition_watermarks SET max_event_time = max_event_time + INTERVAL '2 days'"
        )
        conn.execute(
            "UPDATE retention_policies SET hot = INTERVAL '1 hour' WHERE relation = 'raw_clicks'"
        )
    done = Maintainer(maintain, say=lambda message: None).run()
    assert done.exported > 0 and done.dropped_chunks > 0
    assert query(settings, "SELECT count(*) FROM raw_clicks")[0][0] == 0


def test_the_api_role_reads_what_it_answers_from_and_changes_no_counts(counted: Settings) -> None:
    with as_role(counted, ProcessKind.API) as conn:
        total = conn.execute("SELECT sum(clicks) FROM clicks_1m").fetchone()
        assert total is not None and total[0] == sum(rollup_counts(counted).values())
        # Raw-filtered answers read these columns of raw_clicks, and count rows.
        conn.execute("SELECT ts, ad_id, country, attributes, count(*) OVER () FROM raw_clicks")
        conn.execute("SELECT * FROM clicks_1m_by_country LIMIT 1")
        # An admin token may change a retention policy through the API.
        conn.execute("UPDATE retention_policies SET hot = hot WHERE relation = 'clicks_1m'")
    for statement in (
        "INSERT INTO clicks_1m VALUES (now(), 'forged', 1)",
        "UPDATE clicks_1h SET clicks = clicks + 1",
        "INSERT INTO raw_clicks (ts, click_id, ad_id, user_id, ip, country, kafka_partition,"
        " kafka_offset) VALUES (now(), 'c', 'a', 'u', '10.0.0.1', 'US', 0, 0)",
        "INSERT INTO clicks_1m_by_country VALUES (now(), 'forged', 'US', 1)",
        "SELECT user_id FROM raw_clicks",
        "SELECT ip FROM raw_clicks",
        "SELECT click_id FROM raw_clicks",
        "SELECT * FROM raw_clicks",
        "INSERT INTO top_ad_lists (window_minutes, filter_key, window_end, revision,"
        " input_revision) VALUES (1, '', now(), 1, 0)",
        "DELETE FROM retention_policies",
        "UPDATE ingest_offsets SET next_offset = 0",
        "SELECT * FROM private.pseudonym_key",
    ):
        refused(counted, ProcessKind.API, statement)


def test_ingest_can_neither_drop_chunks_nor_change_retention(counted: Settings) -> None:
    for statement in (
        "SELECT drop_chunks('raw_clicks', older_than => now() + INTERVAL '1 year')",
        "SELECT adclick_drop_chunk(chunk) FROM show_chunks('raw_clicks') AS chunk",
        "UPDATE retention_policies SET hot = INTERVAL '1 day'",
        "INSERT INTO retention_policies (relation, hot) VALUES ('x', INTERVAL '1 day')",
        "DELETE FROM raw_clicks",
        "DELETE FROM clicks_1m",
        "TRUNCATE clicks_1h",
        "DROP TABLE clicks_1m",
        "CREATE TABLE public.mine (x int)",
        "INSERT INTO top_ads VALUES (1, '', now(), 1, 1, 'a', 1)",
        "DELETE FROM cold_files",
    ):
        refused(counted, ProcessKind.INGEST, statement)


def test_the_closer_and_maintenance_stay_in_their_lanes(counted: Settings) -> None:
    for statement in (
        "INSERT INTO clicks_1m VALUES (now(), 'forged', 1)",
        "SELECT ad_id FROM raw_clicks",
        "DELETE FROM top_ad_lists",
        "UPDATE retention_policies SET hot = INTERVAL '1 day'",
        "UPDATE ingest_offsets SET next_offset = 0",
    ):
        refused(counted, ProcessKind.CLOSE, statement)
    for statement in (
        "INSERT INTO raw_clicks (ts, click_id, ad_id, user_id, ip, country, kafka_partition,"
        " kafka_offset) VALUES (now(), 'c', 'a', 'u', '10.0.0.1', 'US', 0, 0)",
        "DELETE FROM raw_clicks",
        "DROP TABLE raw_clicks",
        "SELECT drop_chunks('raw_clicks', older_than => now() + INTERVAL '1 year')",
        "UPDATE ingest_offsets SET next_offset = 0",
        "INSERT INTO top_ads VALUES (1, '', now(), 1, 1, 'a', 1)",
        "SELECT * FROM private.pseudonym_key",
    ):
        refused(counted, ProcessKind.MAINTAIN, statement)
    # adclick_drop_chunk drops chunks of relations with a policy, and nothing else.
    with (
        as_role(counted, ProcessKind.MAINTAIN) as conn,
        pytest.raises(errors.InsufficientPrivilege, match="no chunk"),
    ):
        conn.execute("SELECT adclick_drop_chunk('raw_clicks')")


def test_a_filtered_rollup_made_later_gets_the_roles_grants(settings: Settings) -> None:
    wider = settings.model_copy(update={"dimension_sets": [["country"], ["app", "os"]]})
    # A worker's role may not create the table: it says what to do instead.
    with (
        as_role(wider, ProcessKind.INGEST) as conn,
        pytest.raises(ConfigurationError, match="adclick migrate"),
    ):
        ensure_filtered_rollups(conn, wider)
    with connect(wider) as conn:  # the owner, as `adclick migrate` does
        ensure_filtered_rollups(conn, wider)
    with as_role(wider, ProcessKind.INGEST) as conn:
        ensure_filtered_rollups(conn, wider)  # finds it made: nothing to do
        conn.execute("INSERT INTO clicks_1m_by_app_os VALUES (now(), 'a', 'x', 'y', 1)")
    with as_role(wider, ProcessKind.API) as conn:
        assert conn.execute("SELECT count(*) FROM clicks_1m_by_app_os").fetchone() == (1,)
    refused(wider, ProcessKind.API, "DELETE FROM clicks_1m_by_app_os")
    refused(
        wider, ProcessKind.CLOSE, "INSERT INTO clicks_1m_by_app_os VALUES (now(), 'a', 'x', 'y', 1)"
    )


def test_the_local_stack_refuses_a_connection_without_the_password(settings: Settings) -> None:
    port = local_targets(settings).db_port
    socket_dir = settings.state_dir.resolve() / "run"
    for role in ["postgres", "adclick", *PROCESS_ROLES.values()]:
        for host in ("127.0.0.1", str(socket_dir)):
            # os.devnull as the password file: none from anywhere (PGPASSFILE included).
            with pytest.raises(psycopg.OperationalError, match="password"):
                psycopg.connect(
                    host=host,
                    port=port,
                    user=role,
                    dbname="postgres",
                    passfile=os.devnull,
                    connect_timeout=5,
                )
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(
                host="127.0.0.1",
                port=port,
                user=role,
                dbname="postgres",
                password="wrong",
                passfile=os.devnull,
                connect_timeout=5,
            )
    # The secrets are the owner's alone.
    passfile = passfile_path(settings.state_dir)
    assert passfile.stat().st_mode & 0o777 == 0o600
    assert passfile.parent.stat().st_mode & 0o777 == 0o700
    hba = (settings.state_dir / "pgdata" / "pg_hba.conf").read_text()
    methods = {line.split()[-1] for line in hba.splitlines() if line and not line.startswith("#")}
    assert methods == {"scram-sha-256"}


def test_a_failed_connection_shows_no_password(settings: Settings) -> None:
    port = local_targets(settings).db_port
    database = settings.database_url.rsplit("/", 1)[1]
    wrong = f"postgresql://adclick:{SECRET}@127.0.0.1:{port}/{database}"
    nobody = f"postgresql://adclick:{SECRET}@127.0.0.1:1/{database}?connect_timeout=2"
    broken = f"postgresql://adclick:{SECRET}@127.0.0.1:notaport/{database}"
    dsn = f"host=127.0.0.1 port={port} dbname={database} user=adclick password='{SECRET} x'"
    for url in (wrong, nobody, broken, dsn):
        bad = settings.model_copy(update={"database_url": url})
        with pytest.raises(DependencyUnavailableError) as caught:
            connect(bad)
        shown = str(caught.value) + repr(caught.value) + str(caught.value.__cause__)
        assert SECRET not in shown and "database at" in shown
        # The same through the CLI: its one-line error, its logs, migrations' errors.
        for command in (["retention", "show"], ["migrate"], ["maintain"]):
            environment = {
                **{k: v for k, v in os.environ.items() if not k.startswith("ADCLICK_")},
                **bad.as_environment(),
                "ADCLICK_MAINTAIN_DATABASE_URL": url,
                "PGPASSFILE": os.devnull,
            }
            result = subprocess.run(
                [sys.executable, "-m", "adclick", *command],
                env=environment,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert result.returncode != 0
            output = result.stdout + result.stderr
            assert SECRET not in output, f"adclick {' '.join(command)}: {output}"
            assert "********" in output or "not reachable" in output


def test_adclick_env_points_each_process_at_its_role_without_a_password(
    settings: Settings,
) -> None:
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ADCLICK_")},
        "ADCLICK_STATE_DIR": str(settings.state_dir),
        "ADCLICK_DATABASE_URL": settings.database_url,
        "ADCLICK_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
    }
    run = subprocess.run(
        [sys.executable, "-m", "adclick", "env"],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    exported = dict(line.removeprefix("export ").split("=", 1) for line in run.stdout.splitlines())
    for kind, role in PROCESS_ROLES.items():
        assert f"://{role}@" in exported[f"ADCLICK_{kind.value.upper()}_DATABASE_URL"]
    assert exported["PGPASSFILE"] == str(passfile_path(settings.state_dir))
    for line in passfile_path(settings.state_dir).read_text().splitlines():
        if not line.startswith("#"):
            assert line.rsplit(":", 1)[1] not in run.stdout + run.stderr
    # What it exports connects, as the role named, with the stack's password file.
    url = exported["ADCLICK_API_DATABASE_URL"].strip("'")
    started = time.monotonic()
    with psycopg.connect(url, passfile=exported["PGPASSFILE"]) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("adclick_api",)
    assert time.monotonic() - started < 10
