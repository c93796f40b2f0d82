"""The ``adclick`` Typer application that every command module registers on."""

from __future__ import annotations

import math
import sys
from typing import Annotated, Any

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


def finite(value: float | None) -> float | None:
    """Every float option's callback: NaN and infinities refused.

    click's FloatRange compares NaN false with any bound, so lets it through: ``maintain
    --every nan`` ran pass after pass without a pause, and ``--every 1e300`` overflowed the
    clock after its first pass (tests/unit/test_cli_options.py checks every option).
    """
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value


def number_option(*, min: float, max: float, help: str) -> Any:
    """A float option within [min, max], NaN and infinities refused (``finite``): what
    every float option of every command is made with."""
    return typer.Option(min=min, max=max, callback=finite, help=help)


DAY_S = 86_400.0  # the longest wait or interval an option takes, in seconds
MetricsPortOption = Annotated[
    int | None, typer.Option(min=1, max=65_535, help="Serve Prometheus metrics on this port.")
]
