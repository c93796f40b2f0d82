"""``adclick close``: the minute closer."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Annotated

import typer
from prometheus_client import start_http_server

from adclick.cli.app import MetricsPortOption, app
from adclick.close.closer import MinuteCloser
from adclick.logs import configure_logging
from adclick.settings import ProcessKind, get_settings


@app.command()
def close(
    once: Annotated[
        bool, typer.Option("--once", help="Close what can be closed, revise, then exit.")
    ] = False,
    metrics_port: MetricsPortOption = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="One log line per closed minute.")
    ] = False,
) -> None:
    """Rank the top ads of every configured window and filter at each closed minute.

    A minute is closed when the global watermark passes its end. Lists are stored in
    top_ads and published to the top-ads topic, once each; late events that change a
    closed list publish a new revision. One closer works at a time (others stand by).
    SIGTERM or Ctrl-C stops it after the pass in flight.
    """
    configure_logging(logging.DEBUG if verbose else logging.INFO)
    settings = get_settings().for_process(ProcessKind.CLOSE)
    if metrics_port is not None:
        start_http_server(metrics_port, addr=settings.metrics_host)
    stop = threading.Event()
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda *_: stop.set())
    totals = MinuteCloser(settings).run(stop, once=once)
    typer.echo(
        f"closed {totals.closed_minutes} minutes: {totals.lists} lists published, "
        f"{totals.revisions} of them revisions",
        err=True,
    )
