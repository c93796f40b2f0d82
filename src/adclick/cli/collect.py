"""Collector commands: ``adclick produce`` (a file or stdin) and ``adclick tail`` (live logs)."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console

from adclick.cli.app import DAY_S, app, number_option
from adclick.collect.file_names import display_name
from adclick.collect.follow import NotARegularFileError
from adclick.collect.produce import EXIT_REJECTED, LineFormat, run_produce
from adclick.collect.sender import DeliveryError
from adclick.collect.tail import default_state_path, run_tail
from adclick.logs import configure_logging
from adclick.settings import get_settings

FormatOption = Annotated[
    LineFormat,
    typer.Option(
        "--format",
        "-f",
        case_sensitive=False,
        help="Line format: json (one JSON object) or log "
        "('[AdClickEvent] ad001, 2024-07-09 00:00:01, user-1, 207.148.22.22, USA').",
    ),
]
DeliveryTimeoutOption = Annotated[
    float,
    number_option(
        min=1.0,
        max=DAY_S,
        help="Seconds a message may wait for Kafka before it counts as undelivered.",
    ),
]


def _say(message: str) -> None:
    typer.echo(f"adclick: {message}", err=True)


@app.command()
def produce(
    source: Annotated[
        str, typer.Argument(metavar="FILE|-", help="File of events, one per line; - for stdin.")
    ],
    fmt: FormatOption = LineFormat.JSON,
    delivery_timeout: DeliveryTimeoutOption = 120.0,
) -> None:
    """Send click events from a file or stdin to the clicks topic, one event per line.

    Lines that do not parse never stop the run, whatever their bytes: each is reported on
    stderr (the first 20, then a count) and written to the dead-letter topic with its reason,
    line number and original text (a line over 1 MiB as too_large, with its first 16 KiB,
    size and SHA-256). Blank lines are skipped.

    Exit status: 0 when every line was sent; 3 when some lines were rejected (all good
    lines were still sent); 1 when Kafka did not confirm the delivery of every message.
    """
    settings = get_settings()
    console = Console(stderr=True)
    path = None if source == "-" else Path(source)
    if path is not None and (not path.exists() or path.is_dir()):
        raise typer.BadParameter(f"{display_name(source)} is not a file", param_hint="FILE")
    try:
        summary = run_produce(
            settings, path, fmt, delivery_timeout_s=delivery_timeout, console=console
        )
    except DeliveryError as exc:
        _say(str(exc))
        raise typer.Exit(1) from None
    _say(
        f"sent {summary.sent} event(s) to {settings.clicks_topic}, rejected {summary.rejected} "
        f"line(s) to {settings.dlq_topic}"
        + (f", skipped {summary.blank} blank line(s)" if summary.blank else "")
    )
    raise typer.Exit(EXIT_REJECTED if summary.rejected else 0)


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """An event set by the first SIGINT or SIGTERM; a second one interrupts at once."""
    stop = threading.Event()

    def handle(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt  # e.g. a flush hanging on an unreachable broker
        _say(f"{signal.Signals(signum).name}: stopping after the last checkpoint")
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@app.command()
def tail(
    files: Annotated[
        list[Path],
        typer.Argument(
            metavar="FILE",
            help="Log files to follow; a missing one is read once it appears. Regular files "
            "only: a symbolic link, FIFO or device is refused.",
        ),
    ],
    fmt: FormatOption = LineFormat.LOG,
    state: Annotated[
        Path | None,
        typer.Option(
            help="JSON file of checkpoints (default: <state dir>/tail/checkpoints.json). "
            "One tail process at a time may use it.",
            show_default=False,
        ),
    ] = None,
    from_end: Annotated[
        bool,
        typer.Option(
            "--from-end/--from-start",
            help="For files never seen before: skip or send their existing content. "
            "Files with a checkpoint always resume from it.",
        ),
    ] = False,
    poll_interval: Annotated[
        float,
        number_option(min=0.01, max=DAY_S, help="Seconds between looks at idle files."),
    ] = 0.5,
    checkpoint_lines: Annotated[
        int, typer.Option(min=1, help="Checkpoint at least every this many lines.")
    ] = 10_000,
    checkpoint_interval: Annotated[
        float,
        number_option(
            min=0.01,
            max=DAY_S,
            help="Checkpoint at least every this many seconds.",
        ),
    ] = 1.0,
    rotate_wait: Annotated[
        float,
        number_option(
            min=0.0,
            max=DAY_S,
            help="Keep reading a rotated (renamed or deleted) file until it was quiet this "
            "many seconds: the application may write to it until it reopens its log.",
        ),
    ] = 5.0,
    exit_when_idle: Annotated[
        float | None,
        number_option(
            min=0.0,
            max=DAY_S,
            help="Stop once no file got new data for this many seconds.",
        ),
    ] = None,
    delivery_timeout: DeliveryTimeoutOption = 120.0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    """Follow application log files and send each new complete line to the clicks topic.

    Survives log rotation (rename + create, and copy + truncate) and restarts without
    losing lines: the position in every file is checkpointed, only after Kafka confirmed
    the delivery of every line before it. After a crash the lines since the last
    checkpoint are sent again; the ingest counts them once, because a line's click_id is
    derived from its fields. A partial last line is sent once its newline is written.

    Rejected lines go to the dead-letter topic with their reason, file and byte offset; a
    line over 1 MiB is rejected as too_large with its first 16 KiB, size and SHA-256. No
    input line stops it. Only regular files are followed: give a symbolic link's target.
    SIGINT or SIGTERM stops after a last flush and checkpoint (exit status 0); exit
    status 1 means Kafka did not confirm delivery (nothing after the last checkpoint is
    taken as sent).
    """
    configure_logging(logging.DEBUG if verbose else logging.INFO)
    settings = get_settings()
    state_path = state or default_state_path(settings)
    with _stop_on_signals() as stop:
        try:
            summary = run_tail(
                settings,
                files,
                fmt=fmt,
                state_path=state_path,
                from_end=from_end,
                poll_interval_s=poll_interval,
                exit_when_idle_s=exit_when_idle,
                checkpoint_lines=checkpoint_lines,
                checkpoint_interval_s=checkpoint_interval,
                rotate_wait_s=rotate_wait,
                delivery_timeout_s=delivery_timeout,
                stop=stop,
            )
        except DeliveryError as exc:
            _say(str(exc))
            raise typer.Exit(1) from None
        except NotARegularFileError as exc:
            raise typer.BadParameter(str(exc), param_hint="FILE") from None
    _say(
        f"sent {summary.sent} event(s) to {settings.clicks_topic}, rejected {summary.rejected} "
        f"line(s) to {settings.dlq_topic}; checkpoints in {display_name(state_path)}"
    )
