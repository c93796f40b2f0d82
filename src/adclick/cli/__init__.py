"""Command line interface: ``adclick <command>``; each module holds one concept's commands."""

from __future__ import annotations

from adclick.cli import (  # noqa: F401  (each module registers its commands)
    api,
    close,
    collect,
    config,
    demo,
    ingest,
    lifecycle,
    loadgen,
    stack,
    verify,
)
from adclick.cli.app import app, run


def main() -> None:
    """Entry point: run the CLI and turn adclick errors into one clear line and exit 1."""
    run(app, "adclick")
