"""The ASGI application: /graphql (HTTP and WebSocket), /metrics, /healthz, /readyz.

Beside the server run the feed of published top lists (for subscriptions) and, in a
single-process API, the query host (api/query_host.py: the indexes and their refresher);
the workers of a multi-process API ask their supervisor's (api/index_server.py). An HTTP request
is read whole, up to ``api_max_body_bytes``, before anything parses it, and every refusal
is a GraphQL-shaped JSON body with a code (docs/api.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from cross_web import HTTPException  # strawberry raises its refusals as this
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Gauge,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from psycopg_pool import ConnectionPool
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET, UnsetType

from adclick.api.admin import Admin
from adclick.api.auth import Principal, authenticate
from adclick.api.context import Context
from adclick.api.errors import ApiErrorCode, error_response
from adclick.api.http import RequestTooLarge, http_error_code, read_body
from adclick.api.http_cache import with_cache_headers
from adclick.api.index_server import WorkerBackend, worker_address
from adclick.api.media_types import (
    GRAPHQL_RESPONSE,
    JSON,
    is_request_error,
    prefers_graphql_response,
)
from adclick.api.metrics import INVALID, REQUESTS, count_request
from adclick.api.query_host import QueryHost
from adclick.api.response_cache import ResponseCache
from adclick.api.schema import build_schema
from adclick.api.trusted_documents import TrustedDocuments
from adclick.api.web_app import WebApp
from adclick.api.websocket import LegacyWSHandler, TransportWSHandler
from adclick.db.connect import Connection, connect
from adclick.db.identity import identity_problems
from adclick.db.migrate import head_revision
from adclick.db.replica import lag_problem
from adclick.lifecycle.reconciliations import last_run
from adclick.logs import configure_logging
from adclick.query.service import QueryService
from adclick.redact import mask_secrets
from adclick.resources import OPERATIONS_DIR, WEB_DIST
from adclick.settings import ProcessKind, Settings, get_settings
from adclick.top_lists.feed import TopListFeed

log = logging.getLogger(__name__)

RESOLVER_THREADS = 32
_CONTEXT_KEY = "adclick.context"
_SUB_RESPONSE_KEY = "adclick.sub_response"
_PRINCIPAL_KEY = "adclick.principal"
# Requests in flight may finish for GRACEFUL_S after SIGTERM (WebSocket subscriptions are
# closed then); the background parts get STOP_WAIT_S each after that. Together under the
# 10 s docs/api.md promises, whatever is in flight.
GRACEFUL_S = 5
STOP_WAIT_S = 0.5


class AdclickGraphQL(GraphQL[Context, None]):
    """strawberry's ASGI view with our context (the principal from the bearer token), a
    cap on what it reads, JSON refusals with codes, and WebSocket messages checked."""

    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = LegacyWSHandler

    def __init__(
        self, settings: Settings, queries: QueryService, feed: TopListFeed, admin: Admin
    ) -> None:
        super().__init__(
            build_schema(settings), graphql_ide="graphiql" if settings.api_graphiql else None
        )
        self.settings = settings
        self.queries = queries
        self.feed = feed
        self.admin = admin
        self.documents = TrustedDocuments.load(OPERATIONS_DIR)
        self.answers = ResponseCache(settings.api_response_cache_mb * 1024 * 1024)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        response: Response
        try:
            body, receive = await read_body(scope, receive, self.settings.api_max_body_bytes)
        except RequestTooLarge as too_large:
            REQUESTS.labels(INVALID, "error").inc()
            response = error_response(413, ApiErrorCode.REQUEST_TOO_LARGE, str(too_large))
        else:
            try:
                response = await self._answer(Request(scope, receive=receive), body)
            except HTTPException as exc:  # strawberry's refusals, as plain text before
                REQUESTS.labels(INVALID, "error").inc()
                response = error_response(exc.status_code, http_error_code(exc), exc.reason)
            except Exception:
                log.exception("request failed")
                REQUESTS.labels(INVALID, "error").inc()
                response = error_response(
                    500,
                    ApiErrorCode.INTERNAL_SERVER_ERROR,
                    "internal error; the server log has the details",
                )
        is_json = response.headers.get("content-type", "").startswith(JSON)
        if is_json and prefers_graphql_response(Headers(scope=scope).get("accept")):
            response.headers["content-type"] = f"{GRAPHQL_RESPONSE}; charset=utf-8"
        await response(scope, receive, send)

    async def _answer(self, request: Request, body: bytes) -> Response:
        """The answer kept for this request if the indexes have not moved since it was
        made (api/response_cache.py), else strawberry's; with the HTTP cache headers."""
        started = time.perf_counter()
        principal = authenticate(request.headers.get("authorization"), self.settings)
        request.scope[_PRINCIPAL_KEY] = principal  # for get_context: authenticated once
        key = self.answers.key(request.scope, body, principal)
        state = self.queries.memory_state()
        kept = self.answers.get(key, state)
        if kept is not None:
            response, cacheability = self.answers.response(kept)
            count_request(kept.operation, failed=False, started=started)
        else:
            response = await self.run(request)
            context = request.scope.get(_CONTEXT_KEY)
            if not isinstance(context, Context):  # strawberry answered without executing
                return response
            cacheability = context.cacheability
            states = (state, self.queries.memory_state())
            self.answers.keep(key, states, response, cacheability, context.operation)
        return with_cache_headers(response, request.headers, cacheability, self.settings)

    async def process_result(self, request: Any, result: ExecutionResult) -> GraphQLHTTPResponse:
        data = await super().process_result(request, result)
        if prefers_graphql_response(request.headers.get("accept")) and is_request_error(dict(data)):
            # GraphQL did not execute: a 400 without a data entry (api/media_types.py).
            data.pop("data", None)
            request.scope[_SUB_RESPONSE_KEY].status_code = 400
        return data

    def decode_json(self, data: str | bytes) -> object:
        # Whatever the bytes (invalid UTF-8, nesting deeper than the parser recurses), a
        # JSONDecodeError: strawberry turns that into a 400 (HTTP) or a 4400 (WebSocket),
        # anything else into a 500 or a dropped connection.
        try:
            return json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise json.JSONDecodeError(f"not valid JSON ({exc})", "", 0) from exc

    def parse_json(self, data: str | bytes) -> Any:
        decoded = super().parse_json(data)
        if not isinstance(decoded, dict | list):  # strawberry would fail on it (a 500)
            raise HTTPException(400, "the request must be a JSON object")
        return self.documents.resolve(decoded)

    def should_render_graphql_ide(self, request: Any) -> bool:
        # A GET naming a document by id is a query, not a browser asking for the IDE.
        return "documentId" not in request.query_params and bool(
            super().should_render_graphql_ide(request)
        )

    def parse_query_params(self, params: Any) -> dict[str, Any]:
        resolved: dict[str, Any] = self.documents.resolve(super().parse_query_params(params))
        return resolved

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        principal = request.scope.get(_PRINCIPAL_KEY)
        if not isinstance(principal, Principal):  # a WebSocket (see on_ws_connect too)
            principal = authenticate(request.headers.get("authorization"), self.settings)
        context = Context(
            principal=principal,
            queries=self.queries,
            feed=self.feed,
            admin=self.admin,
            settings=self.settings,
        )
        request.scope[_CONTEXT_KEY] = context  # for the HTTP cache headers (__call__)
        request.scope[_SUB_RESPONSE_KEY] = response  # for the status code (process_result)
        return context

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        # Browsers cannot set headers on a WebSocket: the token comes in connection_init,
        # as {"Authorization": "Bearer <token>"}.
        params = context.connection_params or {}
        value = params.get("Authorization", params.get("authorization"))
        if isinstance(value, str):
            context.principal = authenticate(value, self.settings)
        unset: UnsetType = UNSET
        return unset


class QueryBackend(Protocol):
    """What answers the routes' queries: the query host itself (one process), or a
    worker's link to its supervisor's (api/index_server.py)."""

    @property
    def queries(self) -> QueryService: ...

    @property
    def pool(self) -> ConnectionPool[Connection]: ...  # readiness: where queries read

    @property
    def writes(self) -> ConnectionPool[Connection]: ...  # retention changes: the primary

    @property
    def background(self) -> ConnectionPool[Connection]: ...  # scrape-time metrics

    def start(self) -> None: ...

    def stop(self, timeout_s: float) -> None: ...

    def index_problem(self) -> str | None: ...

    def index_metrics(self) -> bytes: ...


def create_app(settings: Settings) -> Starlette:
    """The API in one process, which holds the indexes itself."""
    return _app(settings, QueryHost(settings))


def create_worker_app() -> Starlette:
    """One worker of ``adclick api`` with ``api_workers`` above 1 (uvicorn's app factory,
    in a process of its own): the supervisor answers its queries (api/index_server.py)."""
    configure_logging(logging.INFO)
    settings = get_settings().for_process(ProcessKind.API)
    return _app(settings, WorkerBackend(settings, worker_address()))


@dataclass(frozen=True)
class Served:
    """What the routes share (``app.state.served``), as starlette keeps shared objects."""

    settings: Settings
    backend: QueryBackend
    feed: TopListFeed
    expected_revision: str | None
    # With ADCLICK_SHARDS, each shard's settings and those it is read with, made once.
    shards: list[tuple[Settings, Settings]] = field(init=False)

    def __post_init__(self) -> None:
        shards = self.settings.shard_settings() if self.settings.shards else []
        object.__setattr__(self, "shards", [(shard, shard.for_reads()) for shard in shards])


def _served(request: Request) -> Served:
    served: Served = request.app.state.served
    return served


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def readiness(served: Served) -> dict[str, str]:
    """What keeps this process from answering correctly now (empty: nothing)."""
    settings = served.settings
    problems: dict[str, str] = {}
    try:
        with served.backend.pool.connection(timeout=2) as conn:
            problems |= _database_problems(
                conn, served, primary=settings if settings.database_read_url is not None else None
            )
    except Exception as exc:
        problems["database"] = mask_secrets(str(exc))
    # With ADCLICK_SHARDS the counts are in every shard (read from its standby if it
    # names one): a shard that is down or behind makes answers short or stale.
    for index, (shard, reads) in enumerate(served.shards):
        try:
            with connect(reads, autocommit=True, timeout_s=2) as conn:
                found = _database_problems(
                    conn,
                    served,
                    primary=shard if reads.database_url != shard.database_url else None,
                )
        except Exception as exc:
            found = {"database": mask_secrets(str(exc))}
        problems |= {f"shard {index} {what}": problem for what, problem in found.items()}
    # Two shards that are one database, or a read URL that reaches another database,
    # answer with counts twice or not at all (adclick.db.identity); one that is down is
    # reported above.
    if settings.shards or settings.database_read_url is not None:
        wrong = identity_problems(settings, unreachable=lambda _label, _exc: None)
        if wrong:
            problems["databases"] = mask_secrets("; ".join(wrong))
    index_problem = served.backend.index_problem()
    if index_problem is not None:
        problems["window_index"] = index_problem
    feed_problem = served.feed.problem()
    if feed_problem is not None:
        problems["top_list_feed"] = feed_problem
    return problems


def _database_problems(
    conn: Connection, served: Served, *, primary: Settings | None
) -> dict[str, str]:
    """The schema revision of one database, and, if it is read as a standby of
    ``primary``, its replication lag behind that primary."""
    expected, problems = served.expected_revision, {}
    row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    if row is None or row[0] != expected:
        problems["migrations"] = f"database at {row[0] if row else None}, code at {expected}"
    lagging = (
        None
        if primary is None
        else lag_problem(conn, primary, served.settings.api_max_replica_lag_s)
    )
    if lagging is not None:
        problems["replica"] = lagging
    return problems


async def readyz(request: Request) -> Response:
    problems = await asyncio.to_thread(readiness, _served(request))
    return JSONResponse(
        {"ready": not problems, "problems": problems}, status_code=503 if problems else 200
    )


def reconciliation_metrics(background: ConnectionPool[Connection], settings: Settings) -> bytes:
    """From the database, at scrape time: `adclick reconcile` is a short-lived command.

    With ADCLICK_SHARDS each shard records its own runs: the discrepancies are the sum of
    every shard's newest run, and the time is the oldest of those runs (the shard whose
    check is the stalest is what an alert on it must see).
    """
    registry = CollectorRegistry()
    discrepancies = Gauge(
        "adclick_reconcile_discrepancies",
        "Rollup rows that differed from raw clicks in the newest reconciliation.",
        registry=registry,
    )
    ran_at = Gauge(
        "adclick_reconcile_last_run_timestamp_seconds",
        "When the newest reconciliation ran (Unix time).",
        registry=registry,
    )
    runs = []
    try:
        if not settings.shards:
            with background.connection(timeout=2) as conn:
                runs.append(last_run(conn))
        for shard in settings.shard_settings() if settings.shards else []:
            with connect(shard.for_reads(), autocommit=True, timeout_s=2) as conn:
                runs.append(last_run(conn))
    except Exception as exc:  # a scrape must not fail because the database is away
        log.warning("cannot read the last reconciliation: %s", exc)
        return b""
    newest = [run for run in runs if run is not None]
    if not newest:
        return b""
    ran_at.set(min(when for when, _found in newest).timestamp())
    discrepancies.set(sum(found for _when, found in newest))
    return generate_latest(registry)


async def metrics(request: Request) -> Response:
    backend = _served(request).backend
    registry: CollectorRegistry = REGISTRY
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:  # ingest workers on this host write their counters there
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    body = generate_latest(registry) + await asyncio.to_thread(
        lambda: (
            reconciliation_metrics(backend.background, _served(request).settings)
            + backend.index_metrics()
        )
    )
    return Response(body, media_type=CONTENT_TYPE_LATEST)


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    served: Served = app.state.served
    # Resolvers run in the loop's default executor (6 threads on 2 cores): fields
    # waiting for the database must not hold every thread while the window index
    # could answer others from memory.
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(max_workers=RESOLVER_THREADS, thread_name_prefix="api-field")
    )
    served.backend.start()
    served.feed.start()
    try:
        yield
    finally:
        # After the server's graceful part (cli/api.py): at most STOP_WAIT_S for each
        # of these. The threads are daemons, so one still loading an hour of the index
        # or waiting on the database does not hold the exit.
        served.feed.stop(timeout_s=STOP_WAIT_S)
        served.backend.stop(STOP_WAIT_S)


def _app(settings: Settings, backend: QueryBackend) -> Starlette:
    """The routes, with ``backend`` answering the fields and started and stopped with them."""
    feed = TopListFeed(settings)
    graphql = AdclickGraphQL(settings, backend.queries, feed, Admin(settings, backend.writes))
    # Pages on other origins (a frontend served elsewhere) may call the API when listed;
    # the browser sends the bearer token only if the page's script sets it.
    middleware = (
        [
            Middleware(
                CORSMiddleware,
                allow_origins=settings.api_cors_origins,
                allow_methods=["GET", "POST"],
                allow_headers=["authorization", "content-type", "if-none-match"],
                expose_headers=["etag"],
                max_age=600,
            )
        ]
        if settings.api_cors_origins
        else []
    )
    app = Starlette(
        middleware=middleware,
        routes=[
            Route("/graphql", graphql),
            WebSocketRoute("/graphql", graphql),
            Route("/metrics", metrics),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Mount("/", WebApp(WEB_DIST)),  # the ad manager
        ],
        lifespan=lifespan,
    )
    app.state.served = Served(settings, backend, feed, head_revision(settings))
    return app
