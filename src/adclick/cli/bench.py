"""``adclick bench``: benchmarks against the local stack (code in the repository's bench/)."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from adclick.cli.app import app
from adclick.logs import configure_logging
from adclick.resources import REPO_ROOT
from adclick.settings import get_settings

bench_app = typer.Typer(help="Benchmarks: measured figures, never asserted (docs/benchmarks.md).")
app.add_typer(bench_app, name="bench")


def _bench_module(name: str) -> Any:
    # Benchmarks live beside the package, not in it: they are tools, not the product.
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    return __import__(f"bench.{name}", fromlist=[name])


@bench_app.command("ingest")
def bench_ingest(
    events: Annotated[int, typer.Option(min=1, help="Events to preload.")] = 1_000_000,
    workers: Annotated[int, typer.Option(min=1, help="Ingest worker processes.")] = 1,
    partitions: Annotated[int, typer.Option(min=1, help="Partitions of the topic.")] = 8,
    ads: Annotated[int, typer.Option(min=1, help="Distinct ads.")] = 2_000_000,
    zipf: Annotated[float, typer.Option(min=0, help="Ad popularity skew (0: uniform).")] = 1.1,
    rate: Annotated[float, typer.Option(min=1, help="Produce rate of the freshness run.")] = 20_000,
    duration: Annotated[float, typer.Option(min=1, help="Seconds of the freshness run.")] = 30,
    skip_freshness: Annotated[bool, typer.Option(help="Only the throughput run.")] = False,
) -> None:
    """Sustained events/s from a preloaded topic to committed rollups, and freshness.

    Runs on the local stack (brought up if needed) in a private database and fresh topics.
    Prints one JSON line per run, with the machine it ran on.
    """
    configure_logging()
    module = _bench_module("ingest")
    settings = get_settings()
    machine = module.machine_line()
    result = module.throughput(settings, events, workers, zipf, ads, partitions)
    typer.echo(json.dumps({"run": "throughput", "workers": workers, "zipf": zipf,
                           "ads": ads, "machine": machine, **result}))  # fmt: skip
    if not skip_freshness:
        result = module.freshness(settings, rate, duration, workers, zipf, ads, partitions)
        typer.echo(json.dumps({"run": "freshness", "workers": workers, "zipf": zipf,
                               "machine": machine, **result}))  # fmt: skip
