"""Small process helpers shared by the stack's components."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from adclick.errors import StackError


def run(
    args: Sequence[str | Path],
    *,
    user: str | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """Run a command to completion; on failure raise StackError with its output.

    ``env``: variables added to this process's environment (a password, never an
    argument: arguments are visible to every user of the machine)."""
    command = [str(a) for a in args]
    if user is not None and os.geteuid() == 0:
        command = ["runuser", "-u", user, "--", *command]
    result = subprocess.run(
        command,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env=None if env is None else {**os.environ, **env},
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()[-3000:]
        raise StackError(f"command failed ({result.returncode}): {shlex.join(command)}\n{output}")
    return result.stdout


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout_s: float, what: str) -> None:
    """Wait until host:port accepts connections, or raise StackError naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if port_open(host, port):
            return
        time.sleep(0.1)
    raise StackError(f"{what} did not open {host}:{port} within {timeout_s:.0f} s")


def read_pid(pid_file: Path) -> int | None:
    """The pid in ``pid_file`` if that process is alive."""
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def terminate(pid: int, timeout_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout_s`` if the process is still there."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        # Reap it if it is our own child, or a dead child would look alive forever.
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
