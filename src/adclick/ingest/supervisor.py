"""Running N ingest workers as processes (the GIL makes threads useless for this work).

The supervisor keeps N running: a worker that dies (a crash, an OOM kill, kill -9) is
started again after a backoff, logged and counted (adclick_ingest_worker_restarts_total).
Nothing is lost by a restart: offsets live in the database, and the new worker resumes
from them. A worker that keeps dying soon after each start is reported at every restart;
only when one has died :data:`MAX_QUICK_DEATHS` times in a row, each time within
:data:`QUICK_DEATH_S` of its start, does the supervisor stop the others and exit non-zero:
it cannot keep N running, and a restart loop would only hide that.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
from dataclasses import dataclass
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType

from adclick.ingest import metrics
from adclick.ingest.worker import IngestWorker, WorkerTotals
from adclick.logs import configure_logging
from adclick.settings import Settings

log = logging.getLogger(__name__)

QUICK_DEATH_S = 60.0
MAX_QUICK_DEATHS = 5
BACKOFF_MAX_S = 30.0


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


@dataclass
class _Slot:
    """One of the N places a worker process runs in, and its history of deaths."""

    name: str
    process: BaseProcess | None = None
    started_at: float = 0.0
    quick_deaths: int = 0
    restart_at: float | None = None
    done: bool = False  # exited 0: stopped or idle, not to be restarted
    exit_code: int | None = None  # of its last process


class _Supervisor:
    def __init__(self, settings: Settings, count: int, exit_when_idle_s: float | None) -> None:
        self.settings = settings
        self.exit_when_idle_s = exit_when_idle_s
        self.context = multiprocessing.get_context("spawn")
        self.level = logging.getLogger().getEffectiveLevel()
        self.slots = [_Slot(f"worker-{i}") for i in range(count)]
        self.stop_signal: int | None = None
        self.gave_up = False

    def start(self, slot: _Slot) -> None:
        slot.process = self.context.Process(
            target=_child,
            args=(self.settings, slot.name, self.exit_when_idle_s, self.level),
            name=slot.name,
        )
        slot.process.start()
        slot.started_at = time.monotonic()
        slot.restart_at = None

    def alive(self) -> list[_Slot]:
        return [s for s in self.slots if s.process is not None and s.process.is_alive()]

    def stop_next(self) -> None:
        # Workers are stopped one at a time: each finishes its batch and leaves the group
        # before the next is told to. Members leaving all at once left the Tansu broker's
        # group waiting forever for a leader that was gone, so no later worker got
        # partitions (docs/architecture.md has the case this does not avoid).
        assert self.stop_signal is not None
        for slot in self.alive():
            assert slot.process is not None and slot.process.pid is not None
            os.kill(slot.process.pid, self.stop_signal)
            return

    def on_exit(self, slot: _Slot) -> None:
        assert slot.process is not None
        code = slot.exit_code = slot.process.exitcode
        if code == 0 or self.stop_signal is not None:
            slot.done = True
            return
        lived_s = time.monotonic() - slot.started_at
        slot.quick_deaths = slot.quick_deaths + 1 if lived_s < QUICK_DEATH_S else 1
        metrics.WORKER_RESTARTS.inc()
        if slot.quick_deaths >= MAX_QUICK_DEATHS:
            log.error(
                "%s died %d times in a row, each within %.0f s of its start (last exit "
                "code %s): cannot keep the workers running, stopping",
                slot.name,
                slot.quick_deaths,
                QUICK_DEATH_S,
                code,
            )
            slot.done = True
            self.gave_up = True
            self.stop_signal = signal.SIGTERM
            self.stop_next()
            return
        delay = min(BACKOFF_MAX_S, 0.5 * 2 ** (slot.quick_deaths - 1))
        log.error(
            "%s died (exit code %s after %.1f s); restarting it in %.1f s%s",
            slot.name,
            code,
            lived_s,
            delay,
            f" ({slot.quick_deaths} quick deaths in a row)" if slot.quick_deaths > 1 else "",
        )
        slot.restart_at = time.monotonic() + delay

    def run(self) -> int:
        def forward(signum: int, _frame: FrameType | None) -> None:
            if self.stop_signal is None:
                self.stop_signal = signum
                self.stop_next()

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        for slot in self.slots:
            self.start(slot)
        while True:
            running = {s.process.sentinel: s for s in self.alive() if s.process is not None}
            waiting = [s for s in self.slots if s.restart_at is not None]
            if not running and not waiting:
                break
            now = time.monotonic()
            timeout = (
                max(0.0, min((s.restart_at or now) - now for s in waiting)) if waiting else None
            )
            for sentinel in wait(list(running), timeout=timeout):
                slot = running[sentinel]  # type: ignore[index]
                assert slot.process is not None
                slot.process.join()
                self.on_exit(slot)
                if self.stop_signal is not None:
                    self.stop_next()
            for slot in self.slots:
                if slot.restart_at is not None:
                    if self.stop_signal is not None:
                        slot.restart_at = None  # stopping: nothing to restart
                    elif slot.restart_at <= time.monotonic():
                        self.start(slot)
        failed = [s.name for s in self.slots if s.exit_code not in (None, 0)]
        if self.gave_up or (failed and self.stop_signal is None):
            log.error("workers failed: %s", failed)
            return max(len(failed), 1)
        return 0


def run_workers(settings: Settings, count: int, exit_when_idle_s: float | None) -> int:
    """Run and keep ``count`` worker processes; returns non-zero if they could not be kept.

    One worker runs in this process (a process manager restarts it); more run as child
    processes that this one restarts when they die.
    """
    if count == 1:
        run_worker(settings, "worker-0", exit_when_idle_s)
        return 0
    return _Supervisor(settings, count, exit_when_idle_s).run()
