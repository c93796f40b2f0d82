"""A private database and topics for one benchmark run on the local stack."""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass

import psycopg
from psycopg import sql

from adclick.db.migrate import upgrade
from adclick.kafka import create_topics
from adclick.settings import Settings
from adclick.stack import stack_up
from adclick.stack.lifecycle import local_targets

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


def fresh_bench_settings(base: Settings, partitions: int) -> Settings:
    """Bring the stack up, recreate the bench database, and name fresh topics."""
    stack_up(base, lambda message: print(f"stack: {message}"))
    targets = local_targets(base)
    admin_url = f"postgresql://postgres@127.0.0.1:{targets.db_port}/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(BENCH_DATABASE)
            )
        )
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(BENCH_DATABASE), sql.Identifier(targets.db_user)
            )
        )
    bench_db_url = base.database_url.rsplit("/", 1)[0] + f"/{BENCH_DATABASE}"
    with psycopg.connect(
        f"postgresql://postgres@127.0.0.1:{targets.db_port}/{BENCH_DATABASE}", autocommit=True
    ) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    run = int(time.time())
    settings = base.model_copy(
        update={
            "database_url": bench_db_url,
            "clicks_topic": f"bench-clicks-{run}",
            "dlq_topic": f"bench-clicks-dlq-{run}",
            "top_ads_topic": f"bench-top-ads-{run}",
            "consumer_group": f"bench-{run}",
            "topic_partitions": partitions,
        }
    )
    upgrade(settings)
    create_topics(settings)
    return settings
