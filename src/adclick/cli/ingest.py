"""``adclick ingest``: the exactly-once ingest workers."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from adclick.cli.app import DAY_S, MetricsPortOption, app, number_option
from adclick.ingest.metrics import serve_metrics
from adclick.ingest.supervisor import run_workers
from adclick.logs import configure_logging
from adclick.settings import ProcessKind, get_settings


@app.command()
def ingest(
    workers: Annotated[int, typer.Option(min=1, help="Worker processes in the group.")] = 1,
    exit_when_idle: Annotated[
        float | None,
        number_option(
            min=0.0,
            max=DAY_S,
            help="Exit once the topic is drained and no event arrived for this many seconds.",
        ),
    ] = None,
    metrics_port: MetricsPortOption = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="One log line per batch.")
    ] = False,
) -> None:
    """Consume click events and count them exactly, one database transaction per batch.

    Each batch's raw clicks (deduplicated on click_id), its rollups and the next Kafka
    offset of each partition commit together; on every partition assignment the worker
    resumes from the offsets stored in the database. Invalid, too-future and
    beyond-horizon events go to the dead-letter topic with their reason.
    """
    configure_logging(logging.DEBUG if verbose else logging.INFO)
    settings = get_settings().for_process(ProcessKind.INGEST)
    if metrics_port is not None:
        serve_metrics(settings, metrics_port, workers)
    failed = run_workers(settings, workers, exit_when_idle)
    raise typer.Exit(1 if failed else 0)
