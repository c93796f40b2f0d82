"""Lines of any length in bounded memory: the limit both collectors put on one line.

A line longer than :data:`MAX_LINE_BYTES` cannot be a click (a valid event is a few
kilobytes at most), and holding it whole would let one unterminated file take all memory.
Such a line is read in pieces into a :class:`LongLine` -- its first bytes, its size and
its SHA-256 -- and ends as one dead letter with the reason
``DeadLetterReason.TOO_LARGE``, like any other line that is not a click. A line ends at
``\\n``; a ``\\r`` before it (or before the end of the input) is its terminator too, as
for every other line.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any, BinaryIO

from adclick.events.dead_letter import MAX_PAYLOAD_BYTES, DeadLetterReason, dead_letter

MAX_LINE_BYTES = 1 << 20
# Kept bytes: what a dead letter keeps, and a few more so that the dead letter itself can
# tell a multi-byte character cut at its limit from bytes that are not UTF-8.
_KEPT_BYTES = MAX_PAYLOAD_BYTES + 4
_CHUNK = 1 << 16


class LongLine:
    """A line over the limit, taken piece by piece: its first bytes, its size, its hash."""

    def __init__(self) -> None:
        self.prefix = b""
        self.size = 0
        self._hash = hashlib.sha256()
        self._held_cr = False  # a "\r" at the end of a piece: the terminator, or more text

    def add(self, piece: bytes) -> None:
        """Append the next bytes of the line (never its ``\\n``)."""
        if self._held_cr:
            piece = b"\r" + piece
            self._held_cr = False
        if piece.endswith(b"\r"):
            piece = piece[:-1]
            self._held_cr = True
        if len(self.prefix) < _KEPT_BYTES:
            self.prefix += piece[: _KEPT_BYTES - len(self.prefix)]
        self.size += len(piece)
        self._hash.update(piece)

    @property
    def sha256(self) -> str:
        """The SHA-256 of the line's bytes so far (hex)."""
        return self._hash.hexdigest()

    def dead_letter(self, source: str, limit: int, **where: object) -> dict[str, Any]:
        """The dead-letter record of the line: its prefix, with the whole line's size and hash."""
        record = dead_letter(
            DeadLetterReason.TOO_LARGE,
            f"line of {self.size:,} bytes is longer than the limit of {limit:,} bytes",
            source,
            self.prefix,
            **where,
        )
        record["payload_bytes"] = self.size
        record["payload_sha256"] = self.sha256
        record["payload_truncated"] = True
        return record


def read_lines(stream: BinaryIO, max_line: int = MAX_LINE_BYTES) -> Iterator[bytes | LongLine]:
    """The lines of ``stream`` with their terminators (a final line may have none), or a
    :class:`LongLine` for each line longer than ``max_line`` bytes without its terminator.

    Memory stays within ``max_line`` plus a few bytes whatever the input.
    """
    while True:
        raw = stream.readline(max_line + 2)  # room for the line, "\r" and "\n"
        if not raw:
            return
        if len(raw) <= max_line or len(strip_newline(raw)) <= max_line:
            yield raw  # (a line cut by readline's limit is longer than max_line)
            continue
        complete = raw.endswith(b"\n")
        long = LongLine()
        long.add(raw.removesuffix(b"\n"))
        while not complete:
            raw = stream.readline(_CHUNK)
            if not raw:
                break
            complete = raw.endswith(b"\n")
            long.add(raw.removesuffix(b"\n"))
        yield long


def strip_newline(raw: bytes) -> bytes:
    """The line without its ``\\n`` or ``\\r\\n`` terminator."""
    if raw.endswith(b"\n"):
        raw = raw[:-1]
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    return raw
