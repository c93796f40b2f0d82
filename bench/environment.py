"""A private database and topics for one benchmark run on the local stack."""

from __future__ import annotations

import os
import platform
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from psycopg import sql

from adclick.db.migrate import upgrade
from adclick.kafka import create_topics
from adclick.settings import ProcessKind, Settings, at_location
from adclick.stack import stack_up
from adclick.stack.lifecycle import local_shards, local_targets, with_local_shards
from adclick.stack.secrets import passfile_path
from adclick.stack.timescaledb import TimescaleCluster

BENCH_DATABASE = "adclick_bench"


@dataclass(frozen=True)
class Machine:
    """What the figures were measured on."""

    cpu: str
    cores: int
    memory_gib: float

    def describe(self) -> str:
        return f"{self.cpu}, {self.cores} cores, {self.memory_gib:.0f} GiB"


def this_machine() -> Machine:
    """CPU model, core count and memory of this machine."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):  # noqa: SIM115 - read once, closed at exit
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return Machine(cpu, os.cpu_count() or 0, memory)


def ensure_database_cluster(base: Settings) -> None:
    """Bring the local stack up unless its database cluster runs already.

    For benchmarks that need only the database: an ``adclick up`` also migrates the
    main database, which a benchmark has no business doing when the stack is up.
    """
    cluster = TimescaleCluster(base.state_dir, local_targets(base).db_port)
    if not (cluster.initialised() and cluster.running()):
        stack_up(base, lambda message: print(f"stack: {message}"))


def bench_database_settings(base: Settings, database: str, *, recreate: bool) -> Settings:
    """Point the settings at the private database ``database`` on the local stack.

    The database is dropped and created again when ``recreate``, and created when missing.
    The local stack's database cluster must be running.
    """
    targets = local_targets(base)
    admin_url = f"postgresql://postgres@127.0.0.1:{targets.db_port}/postgres"
    passfile = str(passfile_path(base.state_dir))  # the stack's passwords
    with psycopg.connect(admin_url, autocommit=True, passfile=passfile) as conn:
        if recreate:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database])
        if exists.fetchone() is None:
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(database), sql.Identifier(targets.db_user)
                )
            )
    with psycopg.connect(
        f"postgresql://postgres@127.0.0.1:{targets.db_port}/{database}",
        autocommit=True,
        passfile=passfile,
    ) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    # Every URL that names a database: the owner's, and each process kind's when set.
    urls = {"database_url": base.database_url} | {
        f"{kind.value}_database_url": url
        for kind in ProcessKind
        if (url := getattr(base, f"{kind.value}_database_url")) is not None
    }
    return base.model_copy(update={name: _on_database(url, database) for name, url in urls.items()})


@contextmanager
def bench_run(base: Settings, partitions: int, shards: int = 1) -> Iterator[Settings]:
    """Settings of one run on fresh topics and database; the topics are deleted after.

    The local broker keeps every message in memory: a run's 3 million clicks stayed there
    until the broker stopped (5.3 GB after nine runs), slowing the runs that followed.
    """
    settings = fresh_bench_settings(base, partitions, shards)
    try:
        yield settings
    finally:
        delete_topics(settings, [settings.clicks_topic, settings.dlq_topic, settings.top_ads_topic])


def delete_topics(settings: Settings, topics: list[str]) -> None:
    """Delete a run's topics (and with them the broker's copy of their messages)."""
    admin = AdminClient(settings.kafka_client_config())
    for name, future in admin.delete_topics(topics, operation_timeout=30).items():
        try:
            future.result()
        except KafkaException as exc:
            print(f"could not delete bench topic {name}: {exc}")


def fresh_topic_names(prefix: str) -> dict[str, str]:
    """Settings naming topics and a consumer group no earlier run used: ``<prefix>-clicks-
    <time>`` and its dead-letter and top-ads siblings, group ``<prefix>-<time>``."""
    run = int(time.time())
    return {
        "clicks_topic": f"{prefix}-clicks-{run}",
        "dlq_topic": f"{prefix}-clicks-dlq-{run}",
        "top_ads_topic": f"{prefix}-top-ads-{run}",
        "consumer_group": f"{prefix}-{run}",
    }


def fresh_bench_settings(base: Settings, partitions: int, shards: int = 1) -> Settings:
    """Bring the stack up (with ``shards`` shards: ``adclick up --shards``), recreate the
    bench database on every shard, and name fresh topics."""
    base = base.model_copy(update={"topic_partitions": partitions})
    base = with_local_shards(base, shards) if shards > 1 else base
    stack_up(base, lambda message: print(f"stack: {message}"))
    settings = bench_database_settings(base, BENCH_DATABASE, recreate=True).model_copy(
        update={**fresh_topic_names("bench")}
    )
    if shards > 1:
        layout = local_shards(base, shards)
        for shard in layout[1:]:
            shard_url = at_location(base.database_url, shard.url)
            at_shard = base.model_copy(update={"database_url": shard_url})
            bench_database_settings(at_shard, BENCH_DATABASE, recreate=True)
        settings = settings.model_copy(
            update={
                "shards": [
                    shard.model_copy(update={"url": _on_database(shard.url, BENCH_DATABASE)})
                    for shard in layout
                ]
            }
        )
    for database in settings.every_database():
        upgrade(database)
    create_topics(settings)
    return settings


def _on_database(url: str, database: str) -> str:
    return url.rsplit("/", 1)[0] + f"/{database}"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
