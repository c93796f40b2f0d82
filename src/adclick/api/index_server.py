"""Several API worker processes, one copy of the indexes.

With ``api_workers`` above 1, ``adclick api`` is a supervising process that holds the
query host (the window and hour indexes, their refresher, the database pools of the
queries: api/query_host.py) and N uvicorn worker processes that do the HTTP, GraphQL and
WebSocket work, the part of a request that costs the CPU (docs/api.md, Workers). Each
field a worker resolves is one call to the supervisor over a Unix socket: the standard
library's multiprocessing managers, which pickle the call and its answer and
authenticate each connection with a key (HMAC) that only the supervisor and its workers
know. The socket is a file in a directory only the service's user may enter (Address),
and a connection must authenticate within HANDSHAKE_TIMEOUT_S, at most HANDSHAKE_SLOTS at
a time (_BoundedServer): no client gets a thread of the supervisor for nothing.

An answer from the index is the same whichever process computes it, so workers answer
exactly what one process would. Only the request's budget (query/budget.py) spans
fields: the supervisor charges a copy of it, refusing before any database work as
before, and answers with the copy as charged; the worker adds that to its own budget
(``RequestBudget.add_charged``, which checks the sum again), so fields resolved in
parallel cannot overspend it together and the charging rules live in one place.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import socket
import struct
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import Connection, Listener
from multiprocessing.managers import BaseManager, BaseProxy, Server
from pathlib import Path
from typing import Any

from adclick.api.query_host import QueryHost, distinct, request_pool, write_pool
from adclick.api.shared_state import MemoryState, SharedState
from adclick.query.budget import RequestBudget
from adclick.query.service import (
    AdClicks,
    AdsClicks,
    Granularity,
    TopAds,
    WindowArgs,
    check_list_limit,
)
from adclick.settings import Settings
from adclick.top_lists.wire import TopList

log = logging.getLogger(__name__)

# Where a worker finds the supervisor: uvicorn starts workers from an import string, so
# what is not a setting reaches them through their environment.
ADDRESS_VARIABLE = "ADCLICK_API_INDEX_SOCKET"
KEY_VARIABLE = "ADCLICK_API_INDEX_KEY"
STATE_VARIABLE = "ADCLICK_API_INDEX_STATE"

_METHODS = (
    "ad_clicks",
    "ads_clicks",
    "top_ads",
    "top_list_history",
    "ingest_status",
    "index_problem",
    "index_metrics",
)


# A worker connects and authenticates at once (a challenge each way, a few hundred bytes):
# a connection that has not done so within this time is closed. Until it has, a connection
# holds one of HANDSHAKE_SLOTS; further ones wait in the kernel's listen backlog, so
# clients that never speak cost a bounded number of threads, never one each.
HANDSHAKE_TIMEOUT_S = 5.0
HANDSHAKE_SLOTS = 16


@dataclass(frozen=True)
class Address:
    """How a worker reaches the supervisor's query host: a Unix socket in a directory of
    mode 0700 (only the service's user may connect; the supervisor removes it when it
    stops) and the key that authenticates each connection."""

    socket: str
    key: bytes
    state: str  # the file of the indexes' state, beside the socket (api/shared_state.py)

    def environment(self) -> dict[str, str]:
        return {
            ADDRESS_VARIABLE: self.socket,
            KEY_VARIABLE: self.key.hex(),
            STATE_VARIABLE: self.state,
        }

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Address:
        return cls(
            environ[ADDRESS_VARIABLE],
            bytes.fromhex(environ[KEY_VARIABLE]),
            environ[STATE_VARIABLE],
        )


def _returning_budget(method: Callable[..., Any]) -> Callable[..., tuple[Any, Any]]:
    """A query method whose last argument is the request's budget (a copy, charged
    here), answering with the budget as charged: the worker adds what it was charged to
    its own, so the charging rules are applied in one place, ClickQueries."""

    def call(*args: Any) -> tuple[Any, Any]:
        return method(*args), args[-1]

    return call


class _Served:
    """The query host's calls, as the supervisor serves them."""

    def __init__(self, host: QueryHost, metrics_shared: bool) -> None:
        self._host = host
        self._metrics_shared = metrics_shared
        queries = host.queries
        self.ad_clicks = _returning_budget(queries.ad_clicks)
        self.ads_clicks = _returning_budget(queries.ads_clicks)
        self.top_ads = _returning_budget(queries.top_ads)
        self.top_list_history = _returning_budget(queries.top_list_history)
        self.ingest_status = queries.ingest_status

    def index_problem(self) -> str | None:
        return self._host.index_problem()

    def index_metrics(self) -> bytes:
        # With PROMETHEUS_MULTIPROC_DIR set when this process started, its metrics are
        # files the workers' /metrics already sums.
        return b"" if self._metrics_shared else self._host.exposition()


def _set_io_timeout(connection: Connection, timeout_s: float) -> None:
    """Bound every read and write on ``connection`` to ``timeout_s`` (0: no bound).

    SO_RCVTIMEO/SO_SNDTIMEO, because multiprocessing's connections read with blocking
    os.read and have no timeout of their own; a read or write that times out raises
    OSError, which ends the handshake like any failed one."""
    value = struct.pack("ll", int(timeout_s), int(timeout_s % 1 * 1_000_000))
    # fromfd duplicates the descriptor; the options belong to the socket both refer to.
    with socket.fromfd(connection.fileno(), socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)


class _BoundedServer(Server):
    """multiprocessing's manager server, with its unauthenticated phase bounded.

    The standard server starts a thread per accepted connection, which waits for the
    client's HMAC answer with no timeout, and its accept loop ends on any error but
    OSError (a thread that cannot be started). Here a connection is accepted only when
    one of HANDSHAKE_SLOTS is free, must authenticate and make its first request within
    HANDSHAKE_TIMEOUT_S, and gives its slot back once authenticated or closed."""

    # Set by Server (typeshed does not declare them).
    listener: Listener
    stop_event: threading.Event

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._slots = threading.BoundedSemaphore(HANDSHAKE_SLOTS)
        self._holder = threading.local()  # does this connection's thread hold a slot?

    def accepter(self) -> None:
        while True:
            self._slots.acquire()  # until one is free, the kernel's backlog holds them
            try:
                connection = self.listener.accept()
                _set_io_timeout(connection, HANDSHAKE_TIMEOUT_S)
            except OSError:
                self._slots.release()
                if self.stop_event.is_set():  # the listener was closed: serving ended
                    return
                continue
            try:
                threading.Thread(
                    target=self.handle_request, args=(connection,), daemon=True
                ).start()
            except RuntimeError as exc:  # no thread to be had: refuse this one, go on
                log.warning("refused a connection to the index socket: %s", exc)
                connection.close()
                self._slots.release()

    def handle_request(self, conn: Connection) -> None:
        self._holder.slot = True
        try:
            super().handle_request(conn)
        finally:
            self._release_slot()

    def accept_connection(self, c: Connection, name: str) -> None:
        # Authenticated: the proxy's connection lives as long as its worker's thread, and
        # waits between calls for as long as it likes.
        _set_io_timeout(c, 0)
        self._release_slot()
        super().accept_connection(c, name)

    def _release_slot(self) -> None:
        if getattr(self._holder, "slot", False):
            self._holder.slot = False
            self._slots.release()


def sharing(state: SharedState, queries: Any) -> Callable[[], None]:
    """What the refresh threads call after each refresh: publish the indexes' state.

    Read and published under one lock: each of the two threads publishes, and a state
    read before the other's newer one was published must not be published after it (the
    workers' kept answers of the older state would be sent again)."""
    lock = threading.Lock()

    def share() -> None:
        with lock:
            state.publish(queries.memory_state())

    return share


@contextmanager
def serving(host: QueryHost, *, metrics_shared: bool) -> Iterator[Address]:
    """Serve ``host`` to workers while the block runs; yields where to reach it.
    ``metrics_shared``: this process writes its metrics to PROMETHEUS_MULTIPROC_DIR."""
    served = _Served(host, metrics_shared)

    class Manager(BaseManager):
        pass

    Manager.register("queries", callable=lambda: served, exposed=_METHODS)
    directory = tempfile.mkdtemp(prefix=f"adclick-api-{os.getpid()}-")  # mode 0700
    try:
        address = Address(
            str(Path(directory) / "index.sock"),
            secrets.token_bytes(32),
            str(Path(directory) / "index.state"),
        )
        state = SharedState.create(Path(address.state))
        share_state = sharing(state, host.queries)
        host.refresher.on_refreshed = share_state
        share_state()
        server = _BoundedServer(Manager._registry, address.socket, address.key, "pickle")  # type: ignore[attr-defined]

        def serve() -> None:
            with suppress(SystemExit):  # how serve_forever returns once stop_event is set
                server.serve_forever()

        thread = threading.Thread(target=serve, name="index-server", daemon=True)
        thread.start()
        log.info("serving the indexes to the API's workers (socket %s)", address.socket)
        try:
            yield address
        finally:
            server.stop_event.set()
            server.listener.close()  # and unlinks the socket, which exit would do otherwise
            thread.join(timeout=2)
            host.refresher.on_refreshed = lambda: None
            state.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


class _Client(BaseManager):
    pass


_Client.register("queries", exposed=_METHODS)


class RemoteQueries:
    """The query service of a worker: every call is answered by the supervisor."""

    def __init__(self, settings: Settings, address: Address) -> None:
        self.settings = settings
        self.address = address
        self._proxy: BaseProxy | None = None
        self._state: SharedState | None = None
        self._lock = threading.Lock()

    def _remote(self) -> Any:
        # Connected on first use: the supervisor is serving before any worker starts,
        # and a proxy keeps one connection per thread of the worker.
        with self._lock:
            if self._proxy is None:
                client = _Client(address=self.address.socket, authkey=self.address.key)
                client.connect()
                self._proxy = client.queries()  # type: ignore[attr-defined]
            return self._proxy

    def _charged(self, method: str, *args: Any, budget: RequestBudget | None) -> Any:
        """Call ``method`` with a copy of ``budget``; add what the supervisor charged it."""
        if budget is None:
            return getattr(self._remote(), method)(*args, None)[0]
        sent = budget.copy()
        answer, charged = getattr(self._remote(), method)(*args, sent)
        budget.add_charged(sent, charged)
        return answer

    def ad_clicks(
        self,
        ad_id: str,
        window_args: WindowArgs,
        filter_args: Mapping[str, Sequence[str] | None],
        granularity: Granularity = Granularity.MINUTE,
        budget: RequestBudget | None = None,
    ) -> AdClicks:
        answer: AdClicks = self._charged(
            "ad_clicks", ad_id, window_args, filter_args, granularity, budget=budget
        )
        return answer

    def ad_clicks_in_memory(self, *_args: Any, **_kwargs: Any) -> AdClicks | None:
        """None: every answer is a call to the supervisor, which the worker waits for in a
        thread, never on its event loop (``ad_clicks``)."""
        return None

    def ads_clicks_in_memory(self, *_args: Any, **_kwargs: Any) -> AdsClicks | None:
        """None, as ``ad_clicks_in_memory``."""
        return None

    def ads_clicks(
        self,
        ad_ids: Sequence[str],
        window_args: WindowArgs,
        filter_args: Mapping[str, Sequence[str] | None],
        granularity: Granularity = Granularity.MINUTE,
        budget: RequestBudget | None = None,
    ) -> AdsClicks:
        answer: AdsClicks = self._charged(
            "ads_clicks", list(ad_ids), window_args, filter_args, granularity, budget=budget
        )
        return answer

    def top_ads(
        self,
        limit: int,
        window_args: WindowArgs,
        filter_args: Mapping[str, Sequence[str] | None],
        budget: RequestBudget | None = None,
    ) -> TopAds:
        answer: TopAds = self._charged("top_ads", limit, window_args, filter_args, budget=budget)
        return answer

    def top_list_history(
        self,
        window_minutes: int,
        start: datetime,
        end: datetime,
        filter_args: Mapping[str, Sequence[str] | None],
        limit: int,
        all_revisions: bool,
        budget: RequestBudget | None = None,
    ) -> list[TopList]:
        lists: list[TopList] = self._charged(
            "top_list_history", window_minutes, start, end, filter_args, limit, all_revisions,
            budget=budget,
        )  # fmt: skip
        return lists

    def check_list_limit(self, limit: int) -> None:
        check_list_limit(limit, self.settings)

    def ingest_status(self) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = self._remote().ingest_status()
        return rows

    def memory_state(self) -> MemoryState:
        """The supervisor's indexes' state, as it shares it (api/shared_state.py): what
        this worker checks the answers it keeps against (api/response_cache.py)."""
        with self._lock:
            if self._state is None:
                self._state = SharedState(Path(self.address.state), writable=False)
        return self._state.read()

    def index_problem(self) -> str | None:
        problem: str | None = self._remote().index_problem()
        return problem

    def index_metrics(self) -> bytes:
        exposition: bytes = self._remote().index_metrics()
        return exposition


class WorkerBackend:
    """A worker's backend (api/app.py): its queries answered by the supervisor, and
    small pools of its own for readiness and scrape-time metrics (where queries read)
    and retention changes (the primary)."""

    def __init__(self, settings: Settings, address: Address) -> None:
        self.queries = RemoteQueries(settings, address)
        self.pool = self.background = request_pool(settings.for_reads(), max_size=2)
        self.writes = write_pool(settings, self.pool, max_size=1)

    def start(self) -> None:
        for pool in distinct(self.pool, self.writes):
            pool.open(wait=False)

    def stop(self, timeout_s: float) -> None:
        for pool in distinct(self.pool, self.writes):
            pool.close(timeout=timeout_s)

    def index_problem(self) -> str | None:
        return self.queries.index_problem()

    def index_metrics(self) -> bytes:
        return self.queries.index_metrics()


def worker_address() -> Address:
    """The supervisor's address, as a worker's environment holds it."""
    return Address.from_environment(os.environ)
