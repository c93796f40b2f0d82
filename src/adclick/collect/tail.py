"""``adclick tail``: follow application log files and send each new complete line.

Positions survive restarts and log rotation:

- Each followed path has a checkpoint: the file's device and inode, the byte offset after
  the last line sent, and a fingerprint (a hash of the file's first 64 bytes) that tells
  the same file from a new one that happens to reuse the inode.
- A checkpoint is written (atomically: temp file, fsync, rename) only after the producer
  confirmed the delivery of every line before its offset. A crash between delivery and
  checkpoint sends those lines again on restart. Such duplicates are harmless: the
  click_id of a line without one is derived from the line's fields, so the ingest counts
  the repeat once.
- Rename rotation (``app.log`` -> ``app.log.1``, new ``app.log``): the old file is read
  through the still-open descriptor until it has been quiet for ``rotate_wait_s``
  (the application may write to it until it reopens its log), then the new file is read
  from its start. Both positions are in the checkpoint meanwhile; after a restart the
  rotated file is found again by its inode in the same directory.
- Copy-truncate rotation (``app.log`` copied to ``app.log.1``, then truncated): the
  truncation is seen as a file shorter than the offset (or with a different beginning);
  the unread rest is taken from the copy, recognised by its fingerprint, and ``app.log``
  is read again from 0. Lines written between the copy and the truncation are lost by
  copy-truncate itself; no reader can see them.
- A partial last line (no newline yet) is sent once it is complete. Only a rotated file's
  final unterminated line is sent as it is, when the file is given up.

The :class:`Follower` only reads files and reports lines and checkpoints, so it is tested
on temporary files; :func:`run_tail` couples it to Kafka.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console

from adclick.collect.produce import LineFormat, RejectReporter, collect_line
from adclick.collect.sender import ClickSender
from adclick.errors import ConfigurationError
from adclick.settings import Settings

logger = logging.getLogger(__name__)

FINGERPRINT_SIZE = 64
STATE_VERSION = 1
DEFAULT_MAX_LINE_BYTES = 1 << 20


class StateFileError(ConfigurationError):
    """The tail state file cannot be used: unreadable, corrupt, or held by another tail."""


# ---------------------------------------------------------------- checkpoints and state


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """How far one file has been sent, and how to recognise that file again."""

    name: str  # where the file was last seen; informational, the inode is what counts
    device: int
    inode: int
    offset: int  # byte offset after the last line sent
    fingerprint: str  # hash of the file's first ``fingerprint_size`` bytes
    fingerprint_size: int

    def to_dict(self) -> dict[str, Any]:
        """The checkpoint as JSON-ready data."""
        return {
            "name": self.name,
            "device": self.device,
            "inode": self.inode,
            "offset": self.offset,
            "fingerprint": self.fingerprint,
            "fingerprint_size": self.fingerprint_size,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Checkpoint:
        """The checkpoint from :meth:`to_dict`'s data."""
        return cls(
            name=str(data["name"]),
            device=int(data["device"]),
            inode=int(data["inode"]),
            offset=int(data["offset"]),
            fingerprint=str(data["fingerprint"]),
            fingerprint_size=int(data["fingerprint_size"]),
        )


@dataclass(frozen=True, slots=True)
class PathState:
    """The checkpoints of one followed path: its current file and rotated ones not done."""

    current: Checkpoint | None = None
    rotated: tuple[Checkpoint, ...] = ()


TailState = dict[str, PathState]


def _state_to_json(state: Mapping[str, PathState]) -> bytes:
    files = {
        path: {
            "current": entry.current.to_dict() if entry.current else None,
            "rotated": [cp.to_dict() for cp in entry.rotated],
        }
        for path, entry in sorted(state.items())
    }
    return orjson.dumps({"version": STATE_VERSION, "files": files}, option=orjson.OPT_INDENT_2)


def _state_from_json(raw: bytes) -> TailState:
    data = orjson.loads(raw)
    if data.get("version") != STATE_VERSION:
        raise ValueError(f"unknown state version {data.get('version')!r}")
    state: TailState = {}
    for path, entry in data["files"].items():
        current = entry.get("current")
        state[path] = PathState(
            current=Checkpoint.from_dict(current) if current else None,
            rotated=tuple(Checkpoint.from_dict(cp) for cp in entry.get("rotated", [])),
        )
    return state


class StateStore:
    """The JSON state file of one tail process, locked against a second one.

    Entries of paths this process does not follow are kept, so one state file can serve
    successive runs over different sets of files.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise StateFileError(f"state file {path} is in use by another adclick tail") from None
        self._stored: TailState = {}

    def load(self) -> TailState:
        """The saved checkpoints; empty when there is no state file yet."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        try:
            self._stored = _state_from_json(raw)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            # Starting over could resend or skip whole files: an operator must decide.
            raise StateFileError(
                f"state file {self.path} is unreadable ({exc}); fix or remove it"
            ) from None
        return dict(self._stored)

    def save(self, state: Mapping[str, PathState]) -> None:
        """Replace the state file atomically: a crash leaves the old or the new one."""
        self._stored = {**self._stored, **state}
        temp = self.path.with_name(f".{self.path.name}.tmp")
        with temp.open("wb") as out:
            out.write(_state_to_json(self._stored))
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # makes the rename itself durable
        finally:
            os.close(directory)

    def close(self) -> None:
        """Release the lock."""
        os.close(self._lock_fd)


# ---------------------------------------------------------------- following files


@dataclass(frozen=True, slots=True)
class Line:
    """One line read from a followed file."""

    path: str  # the followed path
    name: str  # the file it was read from: ``path`` or, after rotation, the rotated name
    offset: int  # byte offset of the line's first byte in that file
    data: bytes  # without its line terminator


def _hash_prefix(fd: int, size: int) -> str:
    return hashlib.blake2b(os.pread(fd, size, 0), digest_size=16).hexdigest()


@dataclass(eq=False)
class _Segment:
    """An open file of a followed path and the position in it."""

    fd: int
    name: str
    device: int
    inode: int
    offset: int
    fingerprint: str
    fingerprint_size: int
    last_data: float  # clock time of the last line read (or of the rotation)
    last_size: int = -1

    @classmethod
    def open(cls, name: str, now: float) -> _Segment | None:
        try:
            fd = os.open(name, os.O_RDONLY)
        except (FileNotFoundError, PermissionError, IsADirectoryError):
            return None
        st = os.fstat(fd)
        segment = cls(fd, name, st.st_dev, st.st_ino, 0, "", 0, now)
        segment.grow_fingerprint(st.st_size)
        return segment

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def prefix_matches(self, fingerprint: str, fingerprint_size: int, size: int) -> bool:
        if fingerprint_size == 0:
            return True  # an empty file's fingerprint says nothing
        return size >= fingerprint_size and _hash_prefix(self.fd, fingerprint_size) == fingerprint

    def grow_fingerprint(self, size: int) -> None:
        # A young file has fewer than 64 bytes; the fingerprint grows with it.
        if self.fingerprint_size < FINGERPRINT_SIZE and size > self.fingerprint_size:
            self.fingerprint_size = min(size, FINGERPRINT_SIZE)
            self.fingerprint = _hash_prefix(self.fd, self.fingerprint_size)

    def checkpoint(self) -> Checkpoint:
        return Checkpoint(
            self.name, self.device, self.inode, self.offset, self.fingerprint, self.fingerprint_size
        )

    def read(self, path: str, budget: int, max_line: int, final: bool = False) -> list[Line]:
        """Complete lines from the offset on, at most ``budget``; ``final`` also takes the
        unterminated rest (the file will not be written to any more)."""
        lines: list[Line] = []
        while len(lines) < budget:
            data = os.pread(self.fd, max_line, self.offset)
            if not data:
                break
            pieces = data.split(b"\n")
            rest = pieces.pop()
            for piece in pieces:
                if len(lines) >= budget:
                    return lines
                lines.append(Line(path, self.name, self.offset, piece.removesuffix(b"\r")))
                self.offset += len(piece) + 1
            if pieces:
                continue  # the rest may continue past this read
            if len(data) >= max_line or final:
                # A line longer than max_line is sent in pieces (the parser rejects them to
                # the dead-letter topic): waiting for its end could stall the file forever.
                lines.append(Line(path, self.name, self.offset, rest.removesuffix(b"\r")))
                self.offset += len(rest)
                continue
            break  # a partial line: wait for its newline
        return lines

    def close(self) -> None:
        os.close(self.fd)


@dataclass(eq=False)
class _Watch:
    path: str
    current: _Segment | None = None
    rotated: list[_Segment] = field(default_factory=list)
    unreadable: bool = False  # warned once that the file at the path cannot be opened


def _new_name(path: str, inode: int) -> str | None:
    """The rotated file's name next to ``path``, found by its inode (for dead letters)."""
    try:
        with os.scandir(os.path.dirname(path)) as entries:
            return next((e.path for e in entries if e.inode() == inode and e.path != path), None)
    except OSError:
        return None


def _end_of_last_line(segment: _Segment) -> int:
    """The offset after the file's last newline: where ``--from-end`` starts."""
    size = segment.size()
    position = size
    while position > 0:
        start = max(0, position - 65536)
        chunk = os.pread(segment.fd, position - start, start)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        position = start
    return 0


class Follower:
    """Follows files by path across rotation, reading complete lines (no Kafka here).

    ``state`` holds the checkpoints of a previous run. A path without one is new to the
    follower: it is read from its start, or with ``from_end`` from the end of its existing
    content. A file that appears later at a path is always read from its start.
    Warnings (a checkpointed file that cannot be found again) go to ``warn``.
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        state: Mapping[str, PathState] | None = None,
        *,
        from_end: bool = False,
        rotate_wait_s: float = 5.0,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        clock: Callable[[], float] = time.monotonic,
        warn: Callable[[str], None] = logger.warning,
    ) -> None:
        self._rotate_wait_s = rotate_wait_s
        self._max_line = max_line_bytes
        self._clock = clock
        self._warn = warn
        unique = dict.fromkeys(os.path.abspath(os.fspath(path)) for path in paths)
        self._watches = [_Watch(path) for path in unique]
        self._next = 0  # round-robin start, so one busy file cannot starve the others
        state = state or {}
        for watch in self._watches:
            self._resume(watch, state.get(watch.path), from_end)

    @property
    def paths(self) -> list[str]:
        """The followed paths, absolute."""
        return [watch.path for watch in self._watches]

    def _resume(self, watch: _Watch, saved: PathState | None, from_end: bool) -> None:
        now = self._clock()
        if saved is None:
            segment = _Segment.open(watch.path, now)
            if segment is not None and from_end:
                segment.offset = _end_of_last_line(segment)
            watch.current = segment
            return
        for checkpoint in (*saved.rotated, saved.current):
            if checkpoint is None:
                continue
            segment = self._find(watch, checkpoint, now)
            if segment is None:
                self._warn(
                    f"{watch.path}: cannot find {checkpoint.name} (inode {checkpoint.inode}) "
                    f"again; lines written to it after byte {checkpoint.offset} were not sent"
                )
            elif checkpoint is saved.current and segment.name == watch.path:
                watch.current = segment
            else:
                watch.rotated.append(segment)
        # Otherwise a file at the path is new since the checkpoint: _check_path reads it from 0.

    def _find(self, watch: _Watch, checkpoint: Checkpoint, now: float) -> _Segment | None:
        """The checkpointed file, at the path or rotated next to it, positioned; else None."""
        directory = os.path.dirname(watch.path)
        candidates = [watch.path]
        with contextlib.suppress(OSError), os.scandir(directory) as entries:
            candidates += [
                entry.path
                for entry in entries
                if entry.path != watch.path and entry.inode() == checkpoint.inode
            ]
        for name in candidates:
            segment = self._open_at(name, checkpoint, now, same_inode=True)
            if segment is not None:
                return segment
        # Copy-truncate while we were down: the unread rest is in the copy.
        return self._find_copy(watch, checkpoint, now)

    def _find_copy(self, watch: _Watch, checkpoint: Checkpoint, now: float) -> _Segment | None:
        if checkpoint.fingerprint_size == 0:
            return None
        directory, base = os.path.split(watch.path)
        open_inodes = {s.inode for s in watch.rotated}
        if watch.current is not None:
            open_inodes.add(watch.current.inode)
        try:
            with os.scandir(directory) as entries:
                found = [
                    (entry.stat().st_mtime, entry.path)
                    for entry in entries
                    if entry.name.startswith(base)
                    and entry.path != watch.path
                    and entry.inode() not in open_inodes
                    and entry.is_file()
                ]
        except OSError:
            return None
        # The copy was written last; older rotated files may begin alike when the
        # fingerprint is still short, so the newest match wins.
        names = [name for _mtime, name in sorted(found, reverse=True)]
        for name in names:
            segment = self._open_at(name, checkpoint, now, same_inode=False)
            if segment is not None:
                return segment
        return None

    def _open_at(
        self, name: str, checkpoint: Checkpoint, now: float, *, same_inode: bool
    ) -> _Segment | None:
        segment = _Segment.open(name, now)
        if segment is None:
            return None
        size = segment.size()
        same = (segment.device, segment.inode) == (checkpoint.device, checkpoint.inode)
        if (
            same == same_inode
            and size >= checkpoint.offset
            and segment.prefix_matches(checkpoint.fingerprint, checkpoint.fingerprint_size, size)
        ):
            segment.offset = checkpoint.offset
            return segment
        segment.close()
        return None

    def _check_path(self, watch: _Watch, now: float) -> None:
        """Notice rotation, deletion, truncation and a new file at the path."""
        try:
            st: os.stat_result | None = os.stat(watch.path)
        except OSError:
            st = None
        current = watch.current
        if current is not None:
            if st is None or (st.st_dev, st.st_ino) != (current.device, current.inode):
                # Renamed or deleted: keep reading through the open descriptor for a while.
                current.last_data = now
                current.name = _new_name(watch.path, current.inode) or current.name
                watch.rotated.append(current)
                watch.current = None
            else:
                self._check_truncation(watch, current, now)
        if watch.current is None and st is not None:
            for segment in watch.rotated:
                if (segment.device, segment.inode) == (st.st_dev, st.st_ino):
                    watch.rotated.remove(segment)  # moved back: it is current again
                    watch.current = segment
                    return
            watch.current = _Segment.open(watch.path, now)
            if watch.current is None and not watch.unreadable:
                self._warn(f"{watch.path}: cannot open it; trying again at every poll")
            watch.unreadable = watch.current is None

    def _check_truncation(self, watch: _Watch, current: _Segment, now: float) -> None:
        size = current.size()
        if size == current.last_size:
            return
        previous_size, current.last_size = current.last_size, size
        if size >= current.offset and current.prefix_matches(
            current.fingerprint, current.fingerprint_size, size
        ):
            current.grow_fingerprint(size)
            return
        copy = self._find_copy(watch, current.checkpoint(), now)
        if copy is not None:
            watch.rotated.append(copy)
        elif previous_size > current.offset:
            self._warn(
                f"{watch.path}: truncated and no copy found; bytes {current.offset}.."
                f"{previous_size} of the old content were not sent"
            )
        current.offset = 0
        current.fingerprint, current.fingerprint_size = "", 0
        current.grow_fingerprint(size)

    def poll(self, max_lines: int = 10_000) -> list[Line]:
        """The complete lines written since the last poll, at most ``max_lines``.

        Lines count as consumed once returned: :meth:`snapshot` includes them.
        """
        now = self._clock()
        lines: list[Line] = []
        count = len(self._watches)
        for step in range(count):
            watch = self._watches[(self._next + step) % count]
            self._check_path(watch, now)
            for segment in list(watch.rotated):
                if len(lines) >= max_lines:
                    break
                got = segment.read(watch.path, max_lines - len(lines), self._max_line)
                if got:
                    segment.last_data = now
                    lines += got
                elif now - segment.last_data >= self._rotate_wait_s:
                    lines += segment.read(watch.path, 1, self._max_line, final=True)
                    if segment.offset >= segment.size():
                        watch.rotated.remove(segment)
                        segment.close()
            if watch.current is not None and len(lines) < max_lines:
                lines += watch.current.read(watch.path, max_lines - len(lines), self._max_line)
            if len(lines) >= max_lines:
                self._next = (self._next + step + 1) % count
                break
        return lines

    def snapshot(self) -> TailState:
        """Checkpoints covering every line :meth:`poll` returned so far."""
        return {
            watch.path: PathState(
                current=watch.current.checkpoint() if watch.current else None,
                rotated=tuple(segment.checkpoint() for segment in watch.rotated),
            )
            for watch in self._watches
        }

    def close(self) -> None:
        """Close every open file."""
        for watch in self._watches:
            for segment in [*watch.rotated, *([watch.current] if watch.current else [])]:
                segment.close()
            watch.rotated.clear()
            watch.current = None


# ---------------------------------------------------------------- sending


def default_state_path(settings: Settings) -> Path:
    """Where ``adclick tail`` keeps its checkpoints unless told otherwise."""
    return settings.state_dir / "tail" / "checkpoints.json"


@dataclass
class TailSummary:
    """What one tail run did."""

    sent: int = 0
    rejected: int = 0
    checkpoints: int = 0


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
    sender = ClickSender(settings, delivery_timeout_s=delivery_timeout_s)
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

    logger.info("following %s; checkpoints in %s", ", ".join(follower.paths), store.path)
    try:
        # Saved before anything is read, so a restart keeps the starting points (--from-end
        # positions, files not there yet) instead of choosing them again.
        checkpoint()
        last_data = last_checkpoint = time.monotonic()
        unsaved_lines = 0
        while not stop.is_set():
            lines = follower.poll(checkpoint_lines)
            for line in lines:
                if not line.data.strip():
                    continue
                where = f"{line.name}@{line.offset}"
                location = {"file": line.name, "offset": line.offset}
                if collect_line(line.data, fmt, sender, reporter, "tail", where, location):
                    summary.sent += 1
                else:
                    summary.rejected += 1
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
    return summary
