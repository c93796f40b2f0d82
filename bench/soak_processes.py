"""The soak's processes: each adclick command in its own process with its log file, kept
running as an orchestrator would (a process killed on purpose is started again), and a
record of every exit, so that the report can tell planned deaths from unexpected ones."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from adclick.settings import Settings


@dataclass
class Exit:
    name: str
    code: int
    at_s: float
    planned: bool


@dataclass
class Managed:
    """One long-running adclick process (restarted under the same name)."""

    name: str
    args: list[str]
    process: subprocess.Popen[bytes]
    started_s: float
    restarts: int = 0


@dataclass
class Processes:
    settings: Settings
    log_dir: Path
    started: float = field(default_factory=time.monotonic)
    running: dict[str, Managed] = field(default_factory=dict)
    exits: list[Exit] = field(default_factory=list)
    _planned: set[int] = field(default_factory=set)

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop_all()

    def now(self) -> float:
        return time.monotonic() - self.started

    def start(self, name: str, *args: str) -> Managed:
        log = (self.log_dir / f"{name}.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "adclick", *args],
            env={**os.environ, **self.settings.as_environment()},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a signal to one never reaches the others
        )
        previous = self.running.get(name)
        managed = Managed(name, list(args), process, self.now(),
                          previous.restarts + 1 if previous else 0)  # fmt: skip
        self.running[name] = managed
        return managed

    def kill(self, name: str) -> None:
        """SIGKILL on purpose (the exit is recorded as planned); not restarted here."""
        managed = self.running[name]
        self._planned.add(managed.process.pid)
        managed.process.send_signal(signal.SIGKILL)
        managed.process.wait()

    def kill_child(self, name: str) -> int | None:
        """SIGKILL one child (an ingest worker) of a process; its parent replaces it."""
        children = psutil.Process(self.running[name].process.pid).children()
        workers = [c for c in children if "spawn_main" in " ".join(c.cmdline())]
        if not workers:
            return None
        victim = min(workers, key=lambda c: c.pid)
        victim.kill()
        return victim.pid

    def restart(self, name: str) -> None:
        managed = self.running[name]
        self.start(name, *managed.args)

    def poll(self) -> None:
        """Record processes that exited by themselves (and leave them down)."""
        for name, managed in list(self.running.items()):
            code = managed.process.poll()
            if code is not None and managed.process.pid not in self._planned:
                self.exits.append(Exit(name, code, self.now(), planned=False))
                self._planned.add(managed.process.pid)  # recorded once

    def cpu_seconds(self, others: Mapping[str, int | None]) -> dict[str, float]:
        """CPU time (user and system) so far of each process and its children, and of
        ``others`` (name: pid, e.g. the broker and the postmaster)."""
        roots = {name: m.process.pid for name, m in self.running.items()} | dict(others)
        out = {}
        for name, pid in roots.items():
            if pid is None:
                continue
            try:
                root = psutil.Process(pid)
                members = [root, *root.children(recursive=True)]
                out[name] = sum(sum(p.cpu_times()[:2]) for p in members)
            except psutil.NoSuchProcess:
                continue
        return out

    def rss_mib(self) -> dict[str, float]:
        """Resident memory per process, an ingest supervisor's workers included."""
        out = {}
        for name, managed in self.running.items():
            try:
                root = psutil.Process(managed.process.pid)
                members = [root, *root.children(recursive=True)]
                out[name] = round(sum(p.memory_info().rss for p in members) / 2**20, 1)
            except psutil.NoSuchProcess:
                continue
        return out

    def stop_all(self, timeout_s: float = 60.0) -> dict[str, int | None]:
        """SIGTERM to every process, then their exit codes (None: had to be killed)."""
        for managed in self.running.values():
            if managed.process.poll() is None:
                managed.process.send_signal(signal.SIGTERM)
        codes: dict[str, int | None] = {}
        deadline = time.monotonic() + timeout_s
        for name, managed in self.running.items():
            try:
                codes[name] = managed.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                managed.process.kill()
                codes[name] = None
        return codes
