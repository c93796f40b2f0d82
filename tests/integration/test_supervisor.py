"""`adclick ingest --workers N` keeps N workers: a killed one is restarted, counted, and
nothing is lost or counted twice (issue 14: a crashed worker was not replaced)."""

from __future__ import annotations

import os
import signal
import urllib.request
from pathlib import Path

from adclick.settings import Settings
from tests.conftest import free_port
from tests.helpers import (
    committed_offsets,
    ingest_process,
    load,
    recent_spec,
    rollup_counts,
    wait_for,
)


def children(pid: int) -> set[int]:
    """The worker processes whose parent is ``pid`` (Linux /proc).

    Workers are started by multiprocessing's spawn, which also starts a resource tracker:
    that one is told apart by its command line.
    """
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue  # exited meanwhile
        if int(fields[1]) == pid and b"spawn_main" in command:
            found.add(int(stat.parent.name))
    return found


def test_a_killed_worker_is_restarted_and_the_counts_stay_exact(settings: Settings) -> None:
    spec = recent_spec(60_000, seed=23, ads=2_000, duplicate_fraction=0.02)
    truth = load(settings, spec)
    small = settings.model_copy(update={"ingest_batch_size": 2_000})
    port = free_port()
    supervisor = ingest_process(small, "--workers", "2", "--metrics-port", str(port))
    try:
        wait_for(lambda: len(children(supervisor.pid)) == 2, 60, "two workers")
        wait_for(lambda: committed_offsets(settings) > 0, 90, "the workers to commit")
        first = children(supervisor.pid)
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        wait_for(
            lambda: len(children(supervisor.pid) - first) == 1, 30, "the worker to be restarted"
        )
        wait_for(lambda: committed_offsets(settings) == spec.events, 120, "everything committed")
        assert rollup_counts(settings) == truth.by_ad_minute
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as page:
            text = page.read().decode()
        assert "adclick_ingest_worker_restarts_total 1.0" in text
    finally:
        supervisor.send_signal(signal.SIGTERM)
        _out, err = supervisor.communicate(timeout=60)
    assert supervisor.returncode == 0, err.decode()[-2000:]
    assert "worker-" in err.decode() and "restarting it" in err.decode()
