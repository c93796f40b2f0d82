"""Session fixtures: a real TimescaleDB and a real Kafka-compatible broker (the local stack).

The stack is started once per session under a private state directory on free ports;
each test gets its own database (a copy of the migrated template) and its own topics and
consumer group, so tests never see each other's data.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from hypothesis import settings as hypothesis_settings
from psycopg import sql

from adclick.db.connect import Connection
from adclick.kafka import create_topics
from adclick.settings import ProcessKind, Settings
from adclick.stack import stack_down, stack_up
from adclick.stack.lifecycle import local_targets, with_local_roles
from adclick.stack.secrets import passfile_path

# The developer's own ADCLICK_* variables must not leak into the tests.
for _name in [n for n in os.environ if n.startswith("ADCLICK_")]:
    del os.environ[_name]

# Property-based tests are reproducible: the same examples on every run, in CI and here
# (a failure prints the example; HYPOTHESIS_PROFILE=explore searches afresh).
hypothesis_settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
hypothesis_settings.register_profile("explore", deadline=None, print_blob=True)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

TEST_PARTITIONS = 4
TEMPLATE = "adclick_template"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def stack_settings() -> Iterator[Settings]:
    """The local stack, up for the whole session, torn down at its end.

    Each process kind's URL names its own role (as ``adclick env`` does); the passwords
    are the stack's (``<state>/secrets/pgpass``), which PGPASSFILE also gives every direct
    psycopg connection of the tests.
    """
    state_dir = Path(tempfile.mkdtemp(prefix="adclick-test-"))
    state_dir.chmod(0o755)  # the database runs as the postgres user when we are root
    settings = Settings(
        state_dir=state_dir,
        database_url=f"postgresql://adclick@127.0.0.1:{free_port()}/{TEMPLATE}",
        kafka_bootstrap_servers=f"127.0.0.1:{free_port()}",
    )
    stack_up(settings, say=lambda message: print(f"stack: {message}"))
    settings = with_local_roles(settings)
    previous_passfile = os.environ.get("PGPASSFILE")
    os.environ["PGPASSFILE"] = str(passfile_path(state_dir))
    with _admin_connection(settings) as conn:
        # A template must have no sessions; TimescaleDB's scheduler would hold one.
        conn.execute(f"ALTER DATABASE {TEMPLATE} WITH ALLOW_CONNECTIONS false")
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (TEMPLATE,),
        )
    try:
        yield settings
    finally:
        stack_down(settings, say=lambda message: print(f"stack: {message}"))
        shutil.rmtree(state_dir, ignore_errors=True)
        if previous_passfile is None:
            del os.environ["PGPASSFILE"]
        else:
            os.environ["PGPASSFILE"] = previous_passfile


def _admin_connection(base: Settings) -> Connection:
    # The cluster's superuser, on the maintenance database: the template must stay unused.
    port = local_targets(base).db_port
    return psycopg.connect(
        f"postgresql://postgres@127.0.0.1:{port}/postgres",
        autocommit=True,
        passfile=str(passfile_path(base.state_dir)),
    )


def _on_database(url: str, database: str) -> str:
    return url.rsplit("/", 1)[0] + f"/{database}"


@contextlib.contextmanager
def fresh_settings(stack_settings: Settings) -> Iterator[Settings]:
    """A fresh migrated database, fresh topics and consumer group on the session's stack."""
    suffix = uuid.uuid4().hex[:12]
    database = f"test_{suffix}"
    with _admin_connection(stack_settings) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {} OWNER adclick").format(
                sql.Identifier(database), sql.Identifier(TEMPLATE)
            )
        )
    process_urls = {
        f"{kind.value}_database_url": _on_database(
            getattr(stack_settings, f"{kind.value}_database_url"), database
        )
        for kind in ProcessKind
    }
    settings = stack_settings.model_copy(
        update={
            "database_url": _on_database(stack_settings.database_url, database),
            **process_urls,
            "clicks_topic": f"ad-clicks-{suffix}",
            "dlq_topic": f"ad-clicks-dlq-{suffix}",
            "top_ads_topic": f"ad-top-ads-{suffix}",
            "consumer_group": f"ingest-{suffix}",
            "topic_partitions": TEST_PARTITIONS,
        }
    )
    create_topics(settings)
    try:
        yield settings
    finally:
        admin = AdminClient(settings.kafka_client_config())
        topics = [settings.clicks_topic, settings.dlq_topic, settings.top_ads_topic]
        for future in admin.delete_topics(topics, operation_timeout=10).values():
            # Best effort: the broker is in-memory and goes away with the session anyway.
            with contextlib.suppress(KafkaException):
                future.result()
        with _admin_connection(stack_settings) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Commands run in-process (CliRunner) configure logging on their own streams, which
    are closed after them: later log records must not go to those."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def settings(stack_settings: Settings) -> Iterator[Settings]:
    """Settings of one test: a fresh migrated database, fresh topics and consumer group."""
    with fresh_settings(stack_settings) as settings:
        yield settings


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The modules with the longest tests first (``@pytest.mark.slow(seconds=...)``, a
    rough figure), each module's tests together and in their order: pytest-xdist
    (scripts/test runs three workers) hands modules out in this order, so a long one does
    not start last and keep the run going after the other worker is done."""

    def module(item: pytest.Item) -> str:
        return item.nodeid.split("::")[0]

    seconds: dict[str, float] = {}
    first_seen: dict[str, int] = {}
    for item in items:
        first_seen.setdefault(module(item), len(first_seen))
        marker = item.get_closest_marker("slow")
        if marker is not None:
            seconds[module(item)] = max(seconds.get(module(item), 0), marker.kwargs["seconds"])
    items.sort(key=lambda i: (-seconds.get(module(i), 0), first_seen[module(i)]))
