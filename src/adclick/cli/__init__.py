"""Command line interface: ``adclick <command>``; each module holds one concept's commands."""

from __future__ import annotations

import sys

from adclick.cli import bench, collect, demo, ingest, loadgen, stack, verify  # noqa: F401
from adclick.cli.app import app
from adclick.errors import AdclickError


def main() -> None:
    """Entry point: run the CLI and turn adclick errors into one clear line and exit 1."""
    try:
        app()
    except AdclickError as exc:
        print(f"adclick: {exc}", file=sys.stderr)
        sys.exit(1)
