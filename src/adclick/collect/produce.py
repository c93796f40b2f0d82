"""``adclick produce``: send the click events of a file (or stdin) to the clicks topic.

Each line is one event, a JSON object or an application log line. A line that does not
parse never stops the run and is never dropped: it is reported on stderr and written to
the dead-letter topic with its reason, line number and original text. Blank lines carry
nothing and are skipped. A line longer than 1 MiB is read in bounded memory and
dead-lettered as ``too_large`` (see :mod:`adclick.collect.lines`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from adclick.collect.file_names import display_name, name_fields
from adclick.collect.lines import MAX_LINE_BYTES, LongLine, read_lines, strip_newline
from adclick.collect.sender import ClickSender
from adclick.errors import InvalidEventError
from adclick.events import ClickEvent, parse_json_event, parse_log_line
from adclick.events.dead_letter import DeadLetterReason, dead_letter
from adclick.settings import Settings

logger = logging.getLogger(__name__)

# Exit code of a run that delivered every good line but rejected some (dead-lettered).
EXIT_REJECTED = 3
# Individual rejections shown on stderr before only a count is kept.
REPORT_LIMIT = 20
# Serve delivery reports this often, so failures surface while sending, not only at the end.
_POLL_EVERY = 1000


class LineFormat(StrEnum):
    """The wire format of one input line."""

    JSON = "json"
    LOG = "log"


class Sink(Protocol):
    """Where collected lines go: :class:`~adclick.collect.sender.ClickSender` in production."""

    def send(self, event: ClickEvent, where: Mapping[str, object]) -> None: ...
    def send_dead_letter(self, record: dict[str, Any]) -> None: ...
    def poll(self) -> None: ...


def parse_line(line: bytes, fmt: LineFormat) -> ClickEvent:
    """Parse one line (without terminator); raise :class:`InvalidEventError` if it is bad."""
    try:
        text = line.decode()
    except UnicodeDecodeError as exc:
        raise InvalidEventError(
            DeadLetterReason.MALFORMED, f"not UTF-8: {exc.reason} at byte {exc.start}"
        ) from None
    if fmt is LineFormat.JSON:
        return parse_json_event(text)
    return parse_log_line(text)


class RejectReporter:
    """Tells the operator about rejected lines: the first ``limit`` in full, then a count."""

    def __init__(self, write: Callable[[str], None], limit: int = REPORT_LIMIT) -> None:
        self._write = write
        self._limit = limit
        self.count = 0

    def reject(self, where: str, error: InvalidEventError) -> None:
        """Report one rejected line; ``where`` names it, e.g. ``line 12`` or ``app.log@3456``."""
        self.count += 1
        if self.count <= self._limit:
            detail = f": {error.detail}" if error.detail else ""
            self._write(f"{where}: rejected ({error.reason}){detail}")
        elif self.count == self._limit + 1:
            self._write(
                f"more rejected lines: only counting them from now on (limit {self._limit})"
            )

    def finish(self) -> None:
        """Say how many rejections were not shown, if any."""
        hidden = self.count - self._limit
        if hidden > 0:
            self._write(f"{hidden} more rejected line(s) not shown")


def collect_line(
    line: bytes,
    fmt: LineFormat,
    sink: Sink,
    reporter: RejectReporter,
    source: str,
    where: str,
    location: dict[str, object],
) -> bool:
    """Send one line's event, or dead-letter the line; True if it was a good event.

    ``where`` names the line for the operator; ``source`` (the collector) and ``location``
    (e.g. file and line number) go into the dead letter so the line can be found again.
    """
    try:
        event = parse_line(line, fmt)
    except InvalidEventError as error:
        reporter.reject(where, error)
        sink.send_dead_letter(dead_letter(error.reason, error.detail, source, line, **location))
        return False
    except Exception as exc:  # the last resort: no line may stop a collector
        unforeseen = InvalidEventError(
            DeadLetterReason.PARSER_FAILED, f"{type(exc).__name__}: {exc}"
        )
        _log_unforeseen(exc)
        reporter.reject(where, unforeseen)
        sink.send_dead_letter(
            dead_letter(unforeseen.reason, unforeseen.detail, source, line, **location)
        )
        return False
    sink.send(event, location)
    return True


def collect_long_line(
    line: LongLine,
    sink: Sink,
    reporter: RejectReporter,
    source: str,
    where: str,
    location: dict[str, object],
    limit: int = MAX_LINE_BYTES,
) -> None:
    """Dead-letter a line longer than ``limit`` bytes: its first bytes, its size and hash."""
    record = line.dead_letter(source, limit, **location)
    reporter.reject(where, InvalidEventError(record["reason"], record["detail"]))
    sink.send_dead_letter(record)


_unforeseen: set[str] = set()


def _log_unforeseen(exc: Exception) -> None:
    # Once per kind with its traceback: enough to find the bug, not a log line per input.
    kind = type(exc).__qualname__
    if kind not in _unforeseen:
        _unforeseen.add(kind)
        logger.error(
            "the parser failed unexpectedly (%s); such lines are dead-lettered as %s",
            kind,
            DeadLetterReason.PARSER_FAILED,
            exc_info=exc,
        )


@dataclass
class ProduceSummary:
    """What one produce run did with its input."""

    lines: int = 0
    sent: int = 0
    rejected: int = 0
    blank: int = 0


def produce_lines(
    lines: Iterable[bytes | LongLine],
    fmt: LineFormat,
    sink: Sink,
    reporter: RejectReporter,
    name: str | Path,
    on_bytes: Callable[[int], None] | None = None,
) -> ProduceSummary:
    """Send every line's event to ``sink``; bad lines become dead letters. Does not flush.

    ``lines`` are raw lines with their terminators, or :class:`LongLine` for those over the
    limit (see :func:`~adclick.collect.lines.read_lines`). ``name`` (the file name, ``-``
    for stdin) goes into each dead letter with the line number (a name that is not UTF-8
    escaped, with its bytes in ``file_base64``); ``on_bytes`` is told now and then how many
    input bytes were read (for a progress bar).
    """
    summary = ProduceSummary()
    file = name_fields("file", name)
    unreported_bytes = 0
    for number, raw in enumerate(lines, start=1):
        summary.lines = number
        where, location = f"line {number}", {"line": number, **file}
        if isinstance(raw, LongLine):
            unreported_bytes += raw.size
            collect_long_line(raw, sink, reporter, "produce", where, location)
            summary.rejected += 1
        else:
            unreported_bytes += len(raw)
            line = strip_newline(raw)
            if not line.strip():
                summary.blank += 1
            elif collect_line(line, fmt, sink, reporter, "produce", where, location):
                summary.sent += 1
            else:
                summary.rejected += 1
        if number % _POLL_EVERY == 0:
            sink.poll()
            if on_bytes is not None:
                on_bytes(unreported_bytes)
                unreported_bytes = 0
    if on_bytes is not None and unreported_bytes:
        on_bytes(unreported_bytes)
    return summary


def run_produce(
    settings: Settings,
    source: Path | None,
    fmt: LineFormat,
    *,
    delivery_timeout_s: float = 120.0,
    console: Console | None = None,
    show_progress: bool | None = None,
) -> ProduceSummary:
    """Send the events of ``source`` (None: stdin) and wait until Kafka has all of them.

    Rejections are reported on ``console`` (stderr by default). A progress bar is shown
    for files when stderr is a terminal. Raises
    :class:`~adclick.collect.sender.DeliveryError` if anything was not delivered.
    """
    console = console or Console(stderr=True)
    reporter = RejectReporter(
        lambda text: console.print(text, markup=False, highlight=False, soft_wrap=True)
    )
    sender = ClickSender(settings, source="produce", delivery_timeout_s=delivery_timeout_s)
    if show_progress is None:
        show_progress = source is not None and source.is_file() and console.is_terminal
    with ExitStack() as stack:
        stream: BinaryIO = (
            stack.enter_context(source.open("rb")) if source is not None else sys.stdin.buffer
        )
        on_bytes: Callable[[int], None] | None = None
        name = source if source is not None else "-"
        if show_progress and source is not None:
            progress = stack.enter_context(
                Progress(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    DownloadColumn(),
                    TimeRemainingColumn(),
                    console=console,
                    transient=True,
                )
            )
            task = progress.add_task(display_name(source.name), total=source.stat().st_size)

            def on_bytes(size: int) -> None:
                progress.advance(task, size)

        summary = produce_lines(read_lines(stream), fmt, sender, reporter, name, on_bytes)
    reporter.finish()
    sender.flush()
    # Clicks Kafka refused as too large went to the dead-letter topic instead.
    summary.sent -= sender.refused_clicks
    summary.rejected += sender.refused_clicks
    return summary
