"""``adclick tail``: follow application log files and send each new complete line.

:class:`~adclick.collect.follow.Follower` reads the files across rotation and restarts,
:class:`~adclick.collect.checkpoints.StateStore` keeps how far each one was sent, and
:func:`run_tail` couples them to Kafka. A checkpoint is written only after the producer
confirmed the delivery of every line before its offset. A crash between delivery and
checkpoint sends those lines again on restart. Such duplicates are harmless: the click_id
of a line without one is derived from the line's fields, so the ingest counts the repeat
once.

Every line ends as a click or a dead letter, whatever its bytes and length (a line over
1 MiB as ``too_large``, its first bytes with its size and hash): no input stops the
collector or holds its checkpoint back.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from adclick.collect.checkpoints import StateStore, TailState
from adclick.collect.file_names import display_name, name_fields
from adclick.collect.follow import DEFAULT_MAX_LINE_BYTES, Follower, Line
from adclick.collect.produce import (
    LineFormat,
    RejectReporter,
    Sink,
    collect_line,
    collect_long_line,
)
from adclick.collect.sender import ClickSender
from adclick.settings import Settings

logger = logging.getLogger(__name__)


# Follower is exported too: it was defined here before the split, and adclick.collect
# imports it from this module.
def default_state_path(settings: Settings) -> Path:
    """Where ``adclick tail`` keeps its checkpoints unless told otherwise."""
    return settings.state_dir / "tail" / "checkpoints.json"


@dataclass
class TailSummary:
    """What one tail run did."""

    sent: int = 0
    rejected: int = 0
    checkpoints: int = 0


def send_lines(
    lines: Iterable[Line],
    fmt: LineFormat,
    sink: Sink,
    reporter: RejectReporter,
    summary: TailSummary,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> None:
    """Send each line's click to ``sink``, or its dead letter; blank lines are skipped."""
    for line in lines:
        # A file name that is not UTF-8 is shown escaped, its exact bytes in file_base64.
        file = name_fields("file", line.name)
        where = f"{file['file']}@{line.offset}"
        location: dict[str, object] = {**file, "offset": line.offset}
        if line.long is not None:
            collect_long_line(line.long, sink, reporter, "tail", where, location, max_line_bytes)
            summary.rejected += 1
        elif not line.data.strip():
            continue
        elif collect_line(line.data, fmt, sink, reporter, "tail", where, location):
            summary.sent += 1
        else:
            summary.rejected += 1


def run_tail(
    settings: Settings,
    paths: Sequence[str | os.PathLike[str]],
    *,
    fmt: LineFormat = LineFormat.LOG,
    state_path: Path | None = None,
    from_end: bool = False,
    poll_interval_s: float = 0.5,
    exit_when_idle_s: float | None = None,
    checkpoint_lines: int = 10_000,
    checkpoint_interval_s: float = 1.0,
    rotate_wait_s: float = 5.0,
    delivery_timeout_s: float = 120.0,
    stop: threading.Event | None = None,
    console: Console | None = None,
) -> TailSummary:
    """Follow ``paths`` and send their lines until ``stop`` is set or the files stay idle.

    Every ``checkpoint_lines`` lines or ``checkpoint_interval_s`` seconds, and at the end,
    the producer is flushed and then the checkpoints are saved. Raises
    :class:`~adclick.collect.sender.DeliveryError` (without saving) if Kafka did not
    confirm every message.
    """
    stop = stop or threading.Event()
    console = console or Console(stderr=True)
    reporter = RejectReporter(
        lambda text: console.print(text, markup=False, highlight=False, soft_wrap=True)
    )
    store = StateStore(state_path or default_state_path(settings))
    try:
        follower = Follower(paths, store.load(), from_end=from_end, rotate_wait_s=rotate_wait_s)
    except BaseException:
        store.close()
        raise
    sender = ClickSender(settings, source="tail", delivery_timeout_s=delivery_timeout_s)
    summary = TailSummary()
    saved: TailState | None = None

    def checkpoint() -> None:
        nonlocal saved
        snapshot = follower.snapshot()
        if snapshot == saved:
            return
        sender.flush()  # only delivered lines may be checkpointed
        store.save(snapshot)
        saved = snapshot
        summary.checkpoints += 1

    logger.info(
        "following %s; checkpoints in %s",
        ", ".join(map(display_name, follower.paths)),
        display_name(store.path),
    )
    try:
        # Saved before anything is read, so a restart keeps the starting points (--from-end
        # positions, files not there yet) instead of choosing them again.
        checkpoint()
        last_data = last_checkpoint = time.monotonic()
        unsaved_lines = 0
        while not stop.is_set():
            lines = follower.poll(checkpoint_lines)
            send_lines(lines, fmt, sender, reporter, summary)
            sender.poll()
            now = time.monotonic()
            if lines:
                last_data = now
                unsaved_lines += len(lines)
            if unsaved_lines >= checkpoint_lines or now - last_checkpoint >= checkpoint_interval_s:
                checkpoint()
                last_checkpoint, unsaved_lines = now, 0
            if exit_when_idle_s is not None and now - last_data >= exit_when_idle_s:
                break
            if not lines:
                stop.wait(poll_interval_s)
        checkpoint()
    finally:
        follower.close()
        store.close()
        reporter.finish()
    # Clicks Kafka refused as too large went to the dead-letter topic instead.
    summary.sent -= sender.refused_clicks
    summary.rejected += sender.refused_clicks
    return summary
