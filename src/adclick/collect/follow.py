"""Following log files by path across rotation: the reading half of ``adclick tail``.

- Rename rotation (``app.log`` -> ``app.log.1``, new ``app.log``): the old file is read
  through the still-open descriptor until it has been quiet for ``rotate_wait_s``
  (the application may write to it until it reopens its log), then the new file is read
  from its start. Both positions are in the checkpoint meanwhile; after a restart the
  rotated file is found again by its inode in the same directory.
- Copy-truncate rotation (``app.log`` copied to ``app.log.1``, then truncated): the
  truncation is seen as a file shorter than the offset, or with other bytes at its start
  or just before the offset (a file written again past the offset since the last look,
  even one that begins with the same banner); the unread rest is taken from the copy,
  recognised by the same fingerprints, and ``app.log`` is read again from 0. Lines
  written between the copy and the truncation are lost by copy-truncate itself; no
  reader can see them. Only the first 64 bytes and the 64 bytes before the offset are
  compared: new content that repeats the old byte for byte there (say the tail had read
  only a banner of 64 bytes or more) is taken for the old file.
- A partial last line (no newline yet) is sent once it is complete. Only a rotated file's
  final unterminated line is sent as it is, when the file is given up.
- A line longer than ``max_line_bytes`` is read on in pieces of bounded size up to its
  newline and reported once, as a :class:`~adclick.collect.lines.LongLine` (its first
  bytes, size and hash); the checkpoint stays at its start until its end was read.
- Only regular files are read. A symbolic link is refused (rotation is followed by inode,
  and a link would let the path name a file the operator did not mean); a FIFO, a device,
  a socket or a directory is refused too, and opening never blocks (``O_NONBLOCK``).

The :class:`Follower` only reads files and reports lines and checkpoints (see
:mod:`adclick.collect.checkpoints`), so it is tested on temporary files.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from adclick.collect.checkpoints import FINGERPRINT_SIZE, Checkpoint, PathState, TailState
from adclick.collect.file_names import display_name
from adclick.collect.lines import MAX_LINE_BYTES, LongLine
from adclick.errors import ConfigurationError

logger = logging.getLogger(__name__)

DEFAULT_MAX_LINE_BYTES = MAX_LINE_BYTES
_SCAN_CHUNK = 1 << 20  # read size while skipping through a long line


class NotARegularFileError(ConfigurationError):
    """A path given to ``adclick tail`` is a symbolic link, a FIFO, a device or a directory."""


def _not_regular(name: str) -> str | None:
    """Why ``name`` cannot be followed (a link, a FIFO...), or None (a file, or nothing yet)."""
    try:
        st = os.lstat(name)
    except OSError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return "is a symbolic link; give the file it points to"
    if not stat.S_ISREG(st.st_mode):
        return f"is not a regular file ({_kind(st.st_mode)})"
    return None


def _kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return "not a file"


@dataclass(frozen=True, slots=True)
class Line:
    """One line read from a followed file."""

    path: str  # the followed path
    name: str  # the file it was read from: ``path`` or, after rotation, the rotated name
    offset: int  # byte offset of the line's first byte in that file
    data: bytes  # without its line terminator; empty for a long line
    long: LongLine | None = None  # a line over the limit: its first bytes, size and hash


def _hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _hash_at(fd: int, start: int, size: int) -> str:
    return _hash(os.pread(fd, size, start))


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
    long: LongLine | None = None  # the line over the limit being read, from ``offset``
    scanned: int = 0  # where reading the long line goes on
    # The last bytes read, ending at ``offset`` (at most FINGERPRINT_SIZE), as they were
    # read: a file whose bytes there changed was truncated and written again.
    recent: bytes = b""
    long_recent: bytes = b""  # the same, ending at ``scanned`` while a long line is read

    @classmethod
    def open(cls, name: str, now: float) -> _Segment | None:
        """The regular file ``name``, open; None if it is missing, unreadable, or anything but
        a regular file (O_NOFOLLOW refuses a link, O_NONBLOCK keeps a FIFO from blocking)."""
        if _not_regular(name) is not None:
            return None  # not even opened: opening some devices does something
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
        except OSError:  # missing, unreadable, a link (ELOOP), a FIFO without a writer...
            return None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            return None
        segment = cls(fd, name, st.st_dev, st.st_ino, 0, "", 0, now)
        segment.grow_fingerprint(st.st_size)
        return segment

    def restart(self, offset: int, recent: bytes = b"") -> None:
        """Read on from ``offset``, after ``recent``: forget a long line being read."""
        self.offset = offset
        self.recent = recent
        self.long = None

    def seek(self, offset: int) -> None:
        """Read on from ``offset`` of a file opened again (its bytes before it were checked)."""
        start = max(0, offset - FINGERPRINT_SIZE)
        self.restart(offset, os.pread(self.fd, offset - start, start))

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def holds(self, checkpoint: Checkpoint, size: int) -> bool:
        """Whether this file (``size`` bytes) still has what was read up to the checkpoint:
        it is as long, begins with the same bytes and has the same bytes before the offset."""
        if size < checkpoint.offset or size < checkpoint.fingerprint_size:
            return False
        # An empty fingerprint (an empty file's, or an old state file's) says nothing.
        if checkpoint.fingerprint_size and checkpoint.fingerprint != _hash_at(
            self.fd, 0, checkpoint.fingerprint_size
        ):
            return False
        start = checkpoint.offset - checkpoint.recent_size
        return checkpoint.recent_size == 0 or checkpoint.recent_fingerprint == _hash_at(
            self.fd, start, checkpoint.recent_size
        )

    def grow_fingerprint(self, size: int) -> None:
        # A young file has fewer than 64 bytes; the fingerprint grows with it.
        if self.fingerprint_size < FINGERPRINT_SIZE and size > self.fingerprint_size:
            self.fingerprint_size = min(size, FINGERPRINT_SIZE)
            self.fingerprint = _hash_at(self.fd, 0, self.fingerprint_size)

    def checkpoint(self) -> Checkpoint:
        return Checkpoint(
            self.name,
            self.device,
            self.inode,
            self.offset,
            self.fingerprint,
            self.fingerprint_size,
            _hash(self.recent) if self.recent else "",
            len(self.recent),
        )

    def _remember(self, data: bytes, end: int) -> None:
        """The offset moved over ``data[:end]``: keep its last bytes as the recent ones."""
        self.recent = _last_bytes(self.recent, data, end)

    def _start_long(self) -> None:
        self.long, self.scanned, self.long_recent = LongLine(), self.offset, self.recent

    def read(self, path: str, budget: int, max_line: int, final: bool = False) -> list[Line]:
        """Complete lines from the offset on, at most ``budget``; ``final`` also takes the
        unterminated rest (the file will not be written to any more)."""
        lines: list[Line] = []
        while len(lines) < budget:
            if self.long is not None:
                line = self._read_long(path, final)
                if line is None:
                    break  # the long line goes on: wait for its newline
                lines.append(line)
                continue
            # One byte more than a line may have (and its "\r"): no newline in it means the
            # line is too long.
            data = os.pread(self.fd, max_line + 2, self.offset)
            if not data:
                break
            pieces = data.split(b"\n")
            rest = pieces.pop()
            start = self.offset
            for piece in pieces:
                if len(lines) >= budget:
                    break
                body = piece.removesuffix(b"\r")
                if len(body) > max_line:
                    self._start_long()
                    break
                lines.append(Line(path, self.name, self.offset, body))
                self.offset += len(piece) + 1
            self._remember(data, self.offset - start)
            if self.long is not None or pieces:
                continue  # the rest may continue past this read (or the budget is spent)
            if len(rest.removesuffix(b"\r")) > max_line:
                self._start_long()
                continue
            if final:
                lines.append(Line(path, self.name, self.offset, rest.removesuffix(b"\r")))
                self.offset += len(rest)
                self._remember(rest, len(rest))
                continue
            break  # a partial line: wait for its newline
        return lines

    def _read_long(self, path: str, final: bool) -> Line | None:
        """Read on through the long line; the line once its end was read, else None."""
        assert self.long is not None
        while True:
            data = os.pread(self.fd, _SCAN_CHUNK, self.scanned)
            newline = data.find(b"\n")
            if newline >= 0:
                self.long.add(data[:newline])
                end = self.scanned + newline + 1
                self.long_recent = _last_bytes(self.long_recent, data, newline + 1)
            elif data:
                self.long.add(data)
                self.scanned += len(data)
                self.long_recent = _last_bytes(self.long_recent, data, len(data))
                continue
            elif final:
                end = self.scanned  # the file is given up: its unterminated end is the line's
            else:
                return None
            line = Line(path, self.name, self.offset, b"", self.long)
            self.restart(end, self.long_recent)
            return line

    def close(self) -> None:
        os.close(self.fd)


def _last_bytes(before: bytes, data: bytes, end: int) -> bytes:
    """The last FINGERPRINT_SIZE bytes of ``before`` followed by ``data[:end]``."""
    return (before + data[max(0, end - FINGERPRINT_SIZE) : end])[-FINGERPRINT_SIZE:]


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
        for path in unique:
            problem = _not_regular(path)
            if problem is not None:
                raise NotARegularFileError(
                    f"{display_name(path)} {problem}: adclick tail reads regular files"
                )
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
                segment.seek(_end_of_last_line(segment))
            watch.current = segment
            return
        for checkpoint in (*saved.rotated, saved.current):
            if checkpoint is None:
                continue
            segment = self._find(watch, checkpoint, now)
            if segment is None:
                self._warn(
                    f"{display_name(watch.path)}: cannot find {display_name(checkpoint.name)} "
                    f"(inode {checkpoint.inode}) again; lines written to it after byte "
                    f"{checkpoint.offset} were not sent"
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
                    and entry.is_file(follow_symlinks=False)
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
        same = (segment.device, segment.inode) == (checkpoint.device, checkpoint.inode)
        if same == same_inode and segment.holds(checkpoint, segment.size()):
            segment.seek(checkpoint.offset)
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
                problem = _not_regular(watch.path) or "cannot be opened"
                self._warn(
                    f"{display_name(watch.path)} {problem}; not read, trying again at every poll"
                )
            watch.unreadable = watch.current is None

    def _check_truncation(self, watch: _Watch, current: _Segment, now: float) -> None:
        # Checked at every poll, not only when the size changed: the file may have been
        # truncated and written again to the same size since the last look.
        size = current.size()
        previous_size, current.last_size = current.last_size, size
        if current.holds(current.checkpoint(), size):
            current.grow_fingerprint(size)
            return
        copy = self._find_copy(watch, current.checkpoint(), now)
        if copy is not None:
            watch.rotated.append(copy)
        elif previous_size > current.offset:
            self._warn(
                f"{display_name(watch.path)}: truncated and no copy found; bytes "
                f"{current.offset}..{previous_size} of the old content were not sent"
            )
        current.restart(0)
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
