"""The supervisor's index socket (api/index_server.py, ``adclick api --workers N``) against
clients that connect and never speak: only the service's user can reach it, each such
connection is closed after the handshake timeout, they cost the supervisor a bounded
number of threads whatever their number, and workers are answered all the while.

The host behind the socket is a stand-in: what is under test is the socket server, which
answers every call alike (test_ad_reads.py serves the real query host)."""

from __future__ import annotations

import os
import socket
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from adclick.api import index_server
from adclick.api.index_server import Address, RemoteQueries, serving
from adclick.settings import Settings

STATUS = [("clicks", 0, 42)]
TIMEOUT_S = 1.0
IDLE = 40  # well beyond HANDSHAKE_SLOTS, well within the listen backlog (128)


def _stand_in_host() -> Any:
    def answer(*_args: Any) -> None:
        return None

    queries = SimpleNamespace(
        ad_clicks=answer,
        ads_clicks=answer,
        top_ads=answer,
        top_list_history=answer,
        ingest_status=lambda: STATUS,
        memory_state=lambda: None,
    )
    refresher = SimpleNamespace(on_refreshed=lambda: None)
    return SimpleNamespace(
        queries=queries, refresher=refresher, index_problem=lambda: None, exposition=lambda: b""
    )


@pytest.fixture
def address(monkeypatch: pytest.MonkeyPatch) -> Iterator[Address]:
    monkeypatch.setattr(index_server, "HANDSHAKE_TIMEOUT_S", TIMEOUT_S)
    with serving(_stand_in_host(), metrics_shared=False) as served:
        yield served


def _answered_in_a_new_thread(address: Address) -> list[Any]:
    """ingest_status from a thread of its own: a worker's proxy opens a connection per
    thread, so this is a new connection that must get through the handshake."""
    answers: list[Any] = []
    worker = RemoteQueries(Settings(), address)
    thread = threading.Thread(target=lambda: answers.append(worker.ingest_status()))
    thread.start()
    thread.join(timeout=IDLE / index_server.HANDSHAKE_SLOTS * TIMEOUT_S + 10)
    return answers


def _read_until_closed(sock: socket.socket, deadline: float) -> bool:
    """Whether the server closed ``sock`` before ``deadline`` (its challenge read first)."""
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            if not sock.recv(4096):
                return True
        except TimeoutError:
            return False
    return False


def test_clients_that_never_speak_cost_bounded_threads_and_are_closed(
    address: Address,
) -> None:
    assert _answered_in_a_new_thread(address) == [STATUS]
    before = threading.active_count()
    idle = []
    try:
        for _ in range(IDLE):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(address.socket)
            idle.append(sock)
        time.sleep(0.5)  # time to accept as many as it will
        assert threading.active_count() - before <= index_server.HANDSHAKE_SLOTS
        # A worker's new connection waits at most for the slots to turn over.
        assert _answered_in_a_new_thread(address) == [STATUS]
        deadline = time.monotonic() + IDLE / index_server.HANDSHAKE_SLOTS * TIMEOUT_S + 5
        assert all(_read_until_closed(sock, deadline) for sock in idle)
    finally:
        for sock in idle:
            sock.close()
    assert threading.active_count() <= before + 1  # the handshakes' threads are gone


def test_only_the_services_user_can_reach_the_socket(address: Address) -> None:
    directory = Path(address.socket).parent
    mode = directory.stat()
    assert stat.S_IMODE(mode.st_mode) == 0o700
    assert mode.st_uid == os.getuid()
    assert stat.S_ISSOCK(Path(address.socket).stat().st_mode)


def test_the_socket_is_removed_when_serving_ends() -> None:
    with serving(_stand_in_host(), metrics_shared=False) as served:
        directory = Path(served.socket).parent
        assert directory.is_dir()
    assert not directory.exists()
