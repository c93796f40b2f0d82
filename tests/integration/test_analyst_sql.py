"""Analyst SQL (docs/sql.md), seen from an analyst's login on real ingested clicks.

The views equal the tables they read; the role adclick_analyst reads those views and
nothing else and writes nowhere; raw clicks carry keyed, stable pseudonyms and never a
user_id or an ip; and every example query of the docs runs and returns rows.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic import command
from psycopg import errors, sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from adclick.close.closer import MinuteCloser
from adclick.db.connect import connect
from adclick.db.migrate import alembic_config, upgrade
from adclick.db.rollups import ensure_filtered_rollups
from adclick.demo.talkingdata import read_sample, shift_to_now, to_event
from adclick.kafka import make_producer
from adclick.settings import Settings
from tests.conftest import fresh_settings
from tests.helpers import ingest_until_idle, query, send

DOCS = Path(__file__).resolve().parents[2] / "docs" / "sql.md"
GROUP = "adclick_analyst"
VIEWS = {
    "clicks_per_minute",
    "clicks_per_hour",
    "clicks_per_minute_by_country",
    "top_ads",
    "top_ads_revisions",
    "raw_clicks",
}
SAMPLE_CLICKS = 100_000
LATE_AD = "late-ad"
LATE_CLICKS = 60  # more than any minute of the sample holds (53): the late ad ranks first
TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")


def as_user(settings: Settings, user: str, password: str | None = None) -> str:
    """The test database's connection string for another role (the stack's roles find
    their passwords in PGPASSFILE; others give theirs)."""
    params = conninfo_to_dict(settings.database_url)
    params["user"] = user
    if password is not None:
        params["password"] = password
    return make_conninfo("", **params)


def rows(url: str, statement: str | sql.Composable, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(statement, params or None).fetchall()  # type: ignore[arg-type]


def select(columns: str, *relation: str) -> sql.Composed:
    """SELECT columns FROM a relation, e.g. ``select("ad_id", "analyst", "top_ads")``."""
    return sql.SQL("SELECT {} FROM {}").format(sql.SQL(columns), sql.Identifier(*relation))


@contextlib.contextmanager
def analyst_login(settings: Settings) -> Iterator[str]:
    """A login of this test's own in the group adclick_analyst; yields its connection string.

    Roles are cluster-wide: the group is made by the migration of the session's template
    and shared by every test database, so a test only adds (and drops) its own login.
    """
    name = f"test_analyst_{uuid.uuid4().hex[:12]}"
    password = uuid.uuid4().hex
    superuser = as_user(settings, "postgres")
    with psycopg.connect(superuser, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (GROUP,)).fetchone()
        assert exists, f"role {GROUP} missing: migration 0005 makes it"
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE {}").format(
                sql.Identifier(name), sql.Literal(password), sql.Identifier(GROUP)
            )
        )
    try:
        yield as_user(settings, name, password)
    finally:
        with psycopg.connect(superuser, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


@dataclass
class AnalystData:
    settings: Settings
    analyst: str  # connection string of the analyst's login
    superuser: str  # the cluster's superuser, on the test's database
    login: str  # the analyst's role name
    late_end: datetime  # end of the 1-minute list the late clicks revised


def close_once(settings: Settings) -> None:
    MinuteCloser(settings).run(threading.Event(), once=True)


@pytest.fixture(scope="module")
def data(stack_settings: Settings) -> Iterator[AnalystData]:
    """The TalkingData sample (three days ending now) ingested and closed, plus late clicks
    that revise closed lists; an analyst login on that database."""
    with fresh_settings(stack_settings) as base, analyst_login(base) as analyst:
        settings = base.model_copy(update={"close_filters": [{"country": ["US"]}]})
        sample = read_sample()
        shift = shift_to_now(sample, int(time.time() * 1000))
        producer = make_producer(settings)
        for row in sample:
            event = to_event(row, shift)
            producer.produce(settings.clicks_topic, value=event.to_json(), key=event.ad_id.encode())
            producer.poll(0)
        assert producer.flush(60) == 0
        assert ingest_until_idle(settings).inserted == SAMPLE_CLICKS
        close_once(settings)

        # Late clicks ten minutes before the newest closed minute: the lists holding that
        # minute get revision 2, with the late ad first.
        newest_end = query(settings, "SELECT max(window_end) FROM top_ad_lists")[0][0]
        late_minute = newest_end - timedelta(minutes=10)
        send(
            settings,
            [
                {
                    "ad_id": LATE_AD,
                    "timestamp": int((late_minute.timestamp() + 30) * 1000),
                    "user_id": f"late-user-{i % 5}",
                    "ip": f"192.0.2.{i % 7 + 1}",
                    "country": "US",
                    "click_id": f"late-{i}",
                }
                for i in range(LATE_CLICKS)
            ],
        )
        assert ingest_until_idle(settings).inserted == LATE_CLICKS
        close_once(settings)
        yield AnalystData(
            settings,
            analyst,
            as_user(settings, "postgres"),
            conninfo_to_dict(analyst)["user"],
            late_minute + timedelta(minutes=1),
        )


def doc_examples() -> list[str]:
    """The ```sql blocks of the section "Example queries" of docs/sql.md."""
    section = DOCS.read_text().split("\n## Example queries\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sql\n(.*?)```", section, flags=re.DOTALL)


def test_every_example_in_the_docs_runs_as_the_analyst_and_returns_rows(
    data: AnalystData,
) -> None:
    examples = doc_examples()
    assert len(examples) >= 6
    with psycopg.connect(data.analyst) as conn:
        for example in examples:
            assert conn.execute(example).fetchall(), f"no rows from:\n{example}"


def test_the_views_hold_exactly_the_rows_of_their_tables(data: AnalystData) -> None:
    owner = data.settings.database_url
    same = [
        ("minute, ad_id, clicks", "clicks_per_minute", "clicks_1m"),
        ("hour, ad_id, clicks", "clicks_per_hour", "clicks_1h"),
        (
            "minute, ad_id, country, clicks",
            "clicks_per_minute_by_country",
            "clicks_1m_by_country",
        ),
        (
            "window_end, window_minutes, filter_key, rank, ad_id, clicks, revision",
            "top_ads_revisions",
            "top_ads",
        ),
    ]
    for columns, view, table in same:
        expected = Counter(rows(owner, select(columns, table)))
        assert expected, f"{table} is empty: the comparison would prove nothing"
        assert Counter(rows(data.analyst, select(columns, "analyst", view))) == expected, view

    total = SAMPLE_CLICKS + LATE_CLICKS
    for view in ["clicks_per_minute", "clicks_per_hour", "clicks_per_minute_by_country"]:
        assert rows(data.analyst, select("sum(clicks)", "analyst", view)) == [(total,)]
    assert rows(data.analyst, "SELECT count(*) FROM analyst.raw_clicks") == [(total,)]

    # analyst.top_ads: exactly the rows of each list's highest revision.
    newest = {
        (minutes, key, end): revision
        for minutes, key, end, revision in rows(
            owner,
            "SELECT window_minutes, filter_key, window_end, max(revision) FROM top_ad_lists"
            " GROUP BY window_minutes, filter_key, window_end",
        )
    }
    assert max(newest.values()) > 1, "no list was revised: 'current only' would be untested"
    columns = "window_end, window_minutes, filter_key, rank, ad_id, clicks, revision"
    current = Counter(
        (end, minutes, key, rank, ad, clicks, revision)
        for end, minutes, key, rank, ad, clicks, revision in rows(owner, select(columns, "top_ads"))
        if revision == newest[(minutes, key, end)]
    )
    assert Counter(rows(data.analyst, select(columns, "analyst", "top_ads"))) == current

    # The revised 1-minute list: the late ad leads the current revision only.
    revised = (
        "SELECT revision, rank, ad_id, clicks FROM analyst.{} WHERE window_minutes = 1"
        " AND filter_key = '' AND window_end = %s ORDER BY revision, rank"
    )
    assert rows(data.analyst, revised.format("top_ads"), data.late_end)[0] == (
        2,
        1,
        LATE_AD,
        LATE_CLICKS,
    )
    history = rows(data.analyst, revised.format("top_ads_revisions"), data.late_end)
    assert {r[0] for r in history} == {1, 2}
    assert LATE_AD not in {ad for revision, _, ad, _ in history if revision == 1}


def pseudonym(key: bytes, value: str) -> str:
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def test_raw_clicks_have_keyed_stable_pseudonyms_and_no_user_id_or_ip(
    data: AnalystData,
) -> None:
    # The key, read as superuser: the view must be HMAC-SHA256 under exactly this key.
    [(key,)] = rows(data.superuser, "SELECT key FROM private.pseudonym_key")
    key = bytes(key)
    assert len(key) == 32
    raw = rows(
        data.settings.database_url,
        "SELECT ts, click_id, ad_id, country, attributes::text, user_id, host(ip) FROM raw_clicks",
    )
    expected = Counter(
        (
            ts,
            pseudonym(key, click),
            ad,
            country,
            attributes,
            pseudonym(key, user),
            pseudonym(key, ip),
        )
        for ts, click, ad, country, attributes, user, ip in raw
    )
    seen = rows(
        data.analyst,
        "SELECT ts, click_pseudonym, ad_id, country, attributes::text, user_pseudonym,"
        " ip_pseudonym, v::text FROM analyst.raw_clicks AS v",
    )
    assert Counter(row[:7] for row in seen) == expected

    # No user_id or ip in any column of any row: not as a cell, not inside one.
    users = {row[5] for row in raw}
    ips = {row[6] for row in raw}
    assert len(users) > 1000 and len(ips) > 1000
    identity = {pseudonym(key, click): (user, ip) for _, click, _, _, _, user, ip in raw}
    user_pseudonyms: defaultdict[str, set[str]] = defaultdict(set)
    ip_pseudonyms: defaultdict[str, set[str]] = defaultdict(set)
    identities = users | ips
    for *cells, text in seen:
        user, ip = identity[cells[1]]
        assert user not in text and ip not in text, text
        tokens = set(re.findall(r"[\w.-]+", text)) | {str(cell) for cell in cells}
        assert not tokens & identities, text
        user_pseudonyms[user].add(cells[5])
        ip_pseudonyms[ip].add(cells[6])

    # Stable (one pseudonym per user) and distinct (different users, different ones).
    assert all(len(found) == 1 for found in user_pseudonyms.values())
    assert len(set.union(*user_pseudonyms.values())) == len(users)
    assert all(len(found) == 1 for found in ip_pseudonyms.values())
    assert len(set.union(*ip_pseudonyms.values())) == len(ips)
    assert rows(
        data.analyst,
        "SELECT count(DISTINCT user_pseudonym), count(DISTINCT ip_pseudonym)"
        " FROM analyst.raw_clicks",
    ) == [(len(users), len(ips))]

    # Keyed: not the unkeyed hash anyone could compute from a guessed user id.
    all_user_pseudonyms = set.union(*user_pseudonyms.values())
    assert not {hashlib.sha256(user.encode()).hexdigest() for user in users} & all_user_pseudonyms

    # Nothing the analyst can read about the views and functions names the key.
    definitions = rows(
        data.analyst,
        "SELECT pg_get_viewdef(c.oid) FROM pg_class AS c"
        " WHERE c.relnamespace = 'analyst'::regnamespace AND c.relkind = 'v'"
        " UNION ALL SELECT prosrc FROM pg_proc"
        " WHERE pronamespace IN ('analyst'::regnamespace, 'private'::regnamespace)",
    )
    assert len(definitions) >= len(VIEWS)
    for (definition,) in definitions:
        assert key.hex() not in definition.lower()


def test_the_analyst_reads_the_views_and_nothing_else(data: AnalystData) -> None:
    refused = [
        *(
            select("*", "public", table)
            for table in [
                "raw_clicks",
                "clicks_1m",
                "clicks_1h",
                "clicks_1m_by_country",
                "top_ads",
                "top_ad_lists",
                "filtered_rollups",
                "ingest_offsets",
                "partition_watermarks",
                "retention_policies",
                "alembic_version",
            ]
        ),
        "SELECT key FROM private.pseudonym_key",
        "SELECT private.hmac('user'::bytea, (SELECT key FROM private.pseudonym_key), 'sha256')",
        "SELECT private.hmac('user'::bytea, 'a guess'::bytea, 'sha256')",
        "SELECT private.gen_random_bytes(32)",
        "SELECT analyst.refresh_views()",
        "INSERT INTO analyst.clicks_per_minute VALUES (now(), 'x', 1)",
        "UPDATE analyst.clicks_per_hour SET clicks = 0",
        "DELETE FROM analyst.clicks_per_minute_by_country",
        "UPDATE analyst.top_ads SET clicks = 0",
        "INSERT INTO public.clicks_1m VALUES (now(), 'x', 1)",
        "UPDATE public.raw_clicks SET user_id = 'x'",
        "DELETE FROM public.top_ads",
        "TRUNCATE public.clicks_1m",
        "UPDATE private.pseudonym_key SET key = key",
        "CREATE TABLE analyst_table (x int)",
        "CREATE TABLE public.analyst_table (x int)",
        "CREATE TABLE analyst.analyst_table (x int)",
        "CREATE TABLE private.analyst_table (x int)",
        "CREATE VIEW analyst.analyst_view AS SELECT 1 AS one",
        "CREATE FUNCTION public.analyst_function() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "CREATE SCHEMA analyst_schema",
        "ALTER VIEW analyst.raw_clicks RENAME TO anything",
        "DROP VIEW analyst.raw_clicks",
    ]
    with psycopg.connect(data.analyst, autocommit=True) as conn:
        for statement in refused:
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(statement)
                pytest.fail(f"the analyst may: {statement}")

    # Every privilege the login has, from the catalogs: SELECT on the analyst views only.
    privileges = sql.SQL(", ").join(
        sql.SQL("CASE WHEN has_table_privilege({role}, c.oid, {p}) THEN {p} END").format(
            role=sql.Literal(data.login), p=sql.Literal(p)
        )
        for p in TABLE_PRIVILEGES
    )
    statement = sql.SQL(
        "SELECT n.nspname, c.relname, array_remove(ARRAY[{privileges}], NULL),"
        " has_any_column_privilege({role}, c.oid, 'SELECT, INSERT, UPDATE, REFERENCES')"
        " FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace"
        " WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')"
        " AND (n.nspname IN ('public', 'private', 'analyst') OR (n.nspname, c.relname) IN"
        " (SELECT chunk_schema, chunk_name FROM timescaledb_information.chunks))"
    ).format(privileges=privileges, role=sql.Literal(data.login))
    with psycopg.connect(data.superuser) as conn:
        relations = conn.execute(statement).fetchall()
    granted = {(schema, name): (set(held), columns) for schema, name, held, columns in relations}
    assert {name for schema, name in granted if schema == "analyst"} == VIEWS
    assert any(schema == "_timescaledb_internal" for schema, _ in granted)  # chunks checked
    for (schema, name), (held, columns) in granted.items():
        if schema == "analyst":
            assert held == {"SELECT"}, name
        else:
            assert held == set() and not columns, f"{schema}.{name}: {held}"

    schemas = rows(
        data.superuser,
        "SELECT nspname, has_schema_privilege(%s, oid, 'CREATE'),"
        " has_schema_privilege(%s, oid, 'USAGE') FROM pg_namespace"
        " WHERE nspname NOT LIKE 'pg\\_temp\\_%%' AND nspname NOT LIKE 'pg\\_toast\\_temp\\_%%'",
        data.login,
        data.login,
    )
    assert [name for name, create, _ in schemas if create] == []
    usage = {name: usage for name, _, usage in schemas}
    assert usage["analyst"] and not usage["private"]
    assert rows(
        data.superuser,
        "SELECT has_database_privilege(%s, current_database(), 'CREATE'),"
        " has_function_privilege(%s, 'analyst.refresh_views()', 'EXECUTE')",
        data.login,
        data.login,
    ) == [(False, False)]

    # Statistics describe values too: the analyst sees none of the tables it cannot read.
    with psycopg.connect(data.superuser, autocommit=True) as conn:
        conn.execute("ANALYZE raw_clicks")
        conn.execute("ANALYZE private.pseudonym_key")
    assert rows(
        data.analyst,
        "SELECT count(*) FROM pg_stats WHERE schemaname IN ('public', 'private')"
        " OR tablename LIKE '\\_hyper\\_%'",
    ) == [(0,)]

    # Temporary tables are PostgreSQL's default for every role; the revoke of docs/sql.md
    # takes them away (the owner keeps them).
    database = conninfo_to_dict(data.analyst)["dbname"]
    with psycopg.connect(data.superuser, autocommit=True) as conn:
        conn.execute(
            sql.SQL("REVOKE TEMPORARY ON DATABASE {} FROM PUBLIC").format(sql.Identifier(database))
        )
    with psycopg.connect(data.analyst) as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute("CREATE TEMPORARY TABLE analyst_scratch (x int)")
    with psycopg.connect(data.settings.database_url) as conn:
        conn.execute("CREATE TEMPORARY TABLE owner_scratch (x int)")


def test_views_made_later_are_readable_by_the_analyst(settings: Settings) -> None:
    """A dimension set added to the configuration gets its view when its table is made;
    any view the owner adds to schema analyst is granted by default privileges."""
    wider = settings.model_copy(update={"dimension_sets": [["country"], ["device", "os"]]})
    with connect(wider) as conn:
        ensure_filtered_rollups(conn, wider)
        conn.execute("CREATE VIEW analyst.added_later AS SELECT 1 AS one")
        conn.commit()
        # Nothing left to make; the existing views are not touched.
        assert conn.execute("SELECT analyst.refresh_views()").fetchone() == (0,)
    send(
        wider,
        [
            {
                "ad_id": "ad-1",
                "timestamp": int(time.time() * 1000) - 120_000,
                "user_id": f"user-{i}",
                "ip": "198.51.100.7",
                "country": "DE",
                "device": "phone",
                "os": "7",
            }
            for i in range(3)
        ],
    )
    assert ingest_until_idle(wider).inserted == 3
    with analyst_login(settings) as analyst:
        assert rows(
            analyst,
            "SELECT ad_id, device, os, sum(clicks) FROM analyst.clicks_per_minute_by_device_os"
            " GROUP BY ad_id, device, os",
        ) == [("ad-1", "phone", "7", 3)]
        assert rows(analyst, "SELECT one FROM analyst.added_later") == [(1,)]


def test_the_migration_goes_down_and_up_again_with_a_new_key(settings: Settings) -> None:
    superuser = as_user(settings, "postgres")
    [(key_before,)] = rows(superuser, "SELECT key FROM private.pseudonym_key")
    command.downgrade(alembic_config(settings), "0004")
    assert (
        rows(
            settings.database_url,
            "SELECT nspname FROM pg_namespace WHERE nspname IN ('analyst', 'private')",
        )
        == []
    )
    # The role is the cluster's: other databases may use it.
    assert rows(superuser, "SELECT count(*) FROM pg_roles WHERE rolname = %s", GROUP) == [(1,)]

    upgrade(settings)  # as `adclick migrate`: with the role there already
    upgrade(settings)  # and once more: nothing to do
    views = rows(
        settings.database_url,
        "SELECT relname FROM pg_class WHERE relnamespace = 'analyst'::regnamespace"
        " AND relkind = 'v'",
    )
    assert {name for (name,) in views} == VIEWS
    [(key_after,)] = rows(superuser, "SELECT key FROM private.pseudonym_key")
    assert bytes(key_after) != bytes(key_before)
    with analyst_login(settings) as analyst:
        for view in VIEWS:
            rows(analyst, select("*", "analyst", view))
