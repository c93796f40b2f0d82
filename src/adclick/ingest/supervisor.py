"""Running N ingest workers as processes (the GIL makes threads useless for this work)."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
from types import FrameType

from adclick.ingest.worker import IngestWorker, WorkerTotals
from adclick.logs import configure_logging
from adclick.settings import Settings

log = logging.getLogger(__name__)


def run_worker(settings: Settings, name: str, exit_when_idle_s: float | None) -> WorkerTotals:
    """Run one worker in this process until stopped (SIGTERM/SIGINT) or idle."""
    worker = IngestWorker(settings, name)
    worker.install_signal_handlers()
    totals = worker.run(exit_when_idle_s)
    log.info("%s done: %s", name, totals)
    return totals


def _child(settings: Settings, name: str, exit_when_idle_s: float | None, level: int) -> None:
    # Out of the terminal's process group: Ctrl-C reaches the parent only, which stops the
    # workers one after the other (see run_workers).
    os.setpgrp()
    configure_logging(level)
    run_worker(settings, name, exit_when_idle_s)


def run_workers(settings: Settings, count: int, exit_when_idle_s: float | None) -> int:
    """Run ``count`` worker processes; returns the number that failed."""
    if count == 1:
        run_worker(settings, "worker-0", exit_when_idle_s)
        return 0
    context = multiprocessing.get_context("spawn")
    level = logging.getLogger().getEffectiveLevel()
    children = [
        context.Process(
            target=_child, args=(settings, f"worker-{i}", exit_when_idle_s, level), name=f"w{i}"
        )
        for i in range(count)
    ]
    for child in children:
        child.start()

    # Workers are stopped one at a time: each finishes its batch and leaves the group
    # before the next is told to. Members leaving all at once left the Tansu broker's group
    # waiting forever for a leader that was gone, so no later worker got partitions
    # (docs/architecture.md has the case this does not avoid).
    stop_signal: list[int] = []

    def stop_next() -> None:
        for child in children:
            if child.pid is not None and child.is_alive():
                os.kill(child.pid, stop_signal[0])
                return

    def forward(signum: int, _frame: FrameType | None) -> None:
        if not stop_signal:
            stop_signal.append(signum)
            stop_next()

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for child in children:
        child.join()
        if stop_signal:
            stop_next()
    failed = [c.name for c in children if c.exitcode != 0]
    if failed:
        log.error("workers failed: %s", failed)
    return len(failed)
