"""The ``adclick`` Typer application that every command module registers on."""

from __future__ import annotations

import sys

import typer

from adclick.errors import AdclickError

app = typer.Typer(
    name="adclick",
    help="Exact, real-time ad click aggregation on Kafka and TimescaleDB.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def run(typer_app: typer.Typer, prog: str) -> None:
    """Run a command line; adclick's errors become one clear line (``prog: ...``) and
    exit status 1, never a traceback."""
    try:
        typer_app()
    except AdclickError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        sys.exit(1)
