"""``adclick api``, ``adclick api-token`` and ``adclick graphql-schema``.

The API's modules (strawberry, uvicorn, alembic) are imported inside the commands: every
``adclick`` process loads this module, ingest workers included, and those imports were
most of a worker's start-up (docs/operations.md).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sys
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from adclick.cli.app import app
from adclick.db.identity import check_databases
from adclick.logs import configure_logging
from adclick.settings import ProcessKind, Role, Settings, get_settings


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="Listen address [ADCLICK_API_HOST].")] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65_535, help="Listen port [ADCLICK_API_PORT].")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, max=64, help="Worker processes [ADCLICK_API_WORKERS].")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    """Serve the GraphQL API at /graphql (HTTP and WebSocket), with /metrics, /healthz, /readyz.

    Requests need a bearer token from ADCLICK_API_TOKENS unless ADCLICK_API_ALLOW_ANONYMOUS
    is on; ADCLICK_API_GRAPHIQL serves the GraphiQL IDE. With more than one worker, this
    process holds the indexes and the workers ask it (docs/api.md, Workers). SIGTERM or
    Ctrl-C stops it gracefully: requests in flight finish first.
    """
    import uvicorn

    from adclick.api.app import GRACEFUL_S, STOP_WAIT_S, create_app

    configure_logging(logging.DEBUG if verbose else logging.INFO)
    settings = get_settings().for_process(ProcessKind.API)
    # Shards that are one database, or a read URL of another database: refused at start.
    check_databases(settings, reachable_only=True)
    workers = workers or settings.api_workers
    # uvicorn stops gracefully on these, then re-raises the signal to the handler it found:
    # make that handler a clean exit, so an orchestrator sees status 0.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda *_: sys.exit(0))
    options: dict[str, Any] = {
        "host": host or settings.api_host,
        "port": port or settings.api_port,
        "log_config": None,  # ours, from configure_logging
        "ws": "websockets-sansio",
        "ws_max_size": settings.api_max_body_bytes,  # the body cap, for WebSocket messages
        "timeout_graceful_shutdown": GRACEFUL_S,
        # A log line per request costs more than an answer from the window index.
        "access_log": settings.api_access_log,
    }
    if workers == 1:
        uvicorn.run(create_app(settings), **options)
        return
    from adclick.api.index_server import serving
    from adclick.api.query_host import QueryHost

    metrics_shared = "PROMETHEUS_MULTIPROC_DIR" in os.environ
    if not metrics_shared:  # the workers' counters, summed by whichever serves /metrics
        directory = settings.state_dir.resolve() / "metrics" / f"api-{os.getpid()}"
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    query_host = QueryHost(settings)
    query_host.start()
    try:
        with serving(query_host, metrics_shared=metrics_shared) as address:
            os.environ.update(address.environment())  # the workers inherit it
            # uvicorn's supervisor: starts the workers, replaces one that dies, and on
            # SIGTERM stops them all (each gracefully, as one process would) and returns.
            uvicorn.run(
                "adclick.api.app:create_worker_app", factory=True, workers=workers, **options
            )
    finally:
        query_host.stop(STOP_WAIT_S)


@app.command("api-token")
def api_token(
    name: Annotated[str, typer.Option(help="Who the token is for (shown in logs).")],
    role: Annotated[Role, typer.Option(help="What it may do.")] = Role.READER,
) -> None:
    """Make a new bearer token: prints the token once, and the ADCLICK_API_TOKENS entry.

    The configuration keeps only the token's SHA-256: add the entry to the JSON list in
    ADCLICK_API_TOKENS (or the config file) and hand the token to its user.
    """
    from adclick.api.auth import new_token

    try:
        token, entry = new_token(name, role)
    except ValidationError:
        raise typer.BadParameter(
            "1 to 128 printable characters (no control characters)", param_hint="--name"
        ) from None
    typer.echo(f"token: {token}")
    typer.echo(f"ADCLICK_API_TOKENS entry: {json.dumps(entry.model_dump(mode='json'))}")


@app.command("graphql-schema")
def graphql_schema() -> None:
    """Print the GraphQL schema (SDL) for the current configuration."""
    typer.echo(schema_sdl(get_settings()), nl=False)


def schema_sdl(settings: Settings) -> str:
    """The SDL of the schema ``settings`` build, as graphql/schema.graphql holds it."""
    from adclick.api.schema import build_schema

    return build_schema(settings).as_str() + "\n"
