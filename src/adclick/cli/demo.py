"""``adclick demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from adclick.cli.app import app, number_option
from adclick.demo.runner import run_demo
from adclick.demo.talkingdata import DEFAULT_SAMPLE
from adclick.settings import get_settings


@app.command()
def demo(
    rate: Annotated[
        float,
        number_option(min=0, max=1_000_000, help="Synthetic clicks per second (0: none)."),
    ] = 1000.0,
    sample: Annotated[
        Path, typer.Option(help="TalkingData sample CSV to replay first.")
    ] = DEFAULT_SAMPLE,
    no_sample: Annotated[bool, typer.Option("--no-sample", help="Skip the real clicks.")] = False,
) -> None:
    """Run the service on the local stack with real and synthetic clicks, and watch it.

    Brings the stack up (installing it the first time), starts an ingest worker, replays
    the real TalkingData clicks ending at the current minute, sends synthetic traffic, and
    shows the most-clicked ads live. Ctrl-C stops; the stack stays up.
    """
    run_demo(
        get_settings(),
        None if no_sample else sample,
        rate,
        lambda message: typer.echo(f"adclick: {message}", err=True),
    )
