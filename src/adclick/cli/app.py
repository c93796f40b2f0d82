"""The ``adclick`` Typer application that every command module registers on."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="adclick",
    help="Exact, real-time ad click aggregation on Kafka and TimescaleDB.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
