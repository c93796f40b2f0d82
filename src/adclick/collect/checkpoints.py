"""Checkpoints of ``adclick tail``: how far each file was sent, kept in a locked state file.

- Each followed path has a checkpoint: the file's device and inode, the byte offset after
  the last line sent, and two fingerprints that tell the same file from a new one that
  reuses the inode or was truncated and written again past the offset: a hash of the
  file's first 64 bytes, and a hash of the 64 bytes just before the offset (as they were
  read). While a rotated file is still being read, its checkpoint is kept next to the
  current file's.
- File names are kept exactly, whatever their bytes. ``files`` maps each followed path
  to its checkpoints; a path that is not UTF-8 is keyed ``base64:<its bytes>`` (no
  absolute path begins so) and its entry names it readably in ``path``. A checkpoint's
  file name that is not UTF-8 is written readably with its bytes in ``name_base64``
  (see :mod:`adclick.collect.file_names`).
- A checkpoint saved before the second fingerprint existed has none
  (``recent_fingerprint``/``recent_size`` missing): the restart that reads it compares the
  first bytes alone, as the tail that wrote it did (there is nothing else to compare, and
  starting over would resend whole files); the next save has both.
- The state file is replaced atomically (temp file, fsync, rename, fsync of the
  directory): a crash leaves the old or the new one, never a mix.
- A lock next to it (``<state file>.lock``) keeps a second tail process from using the
  same state file.
"""

from __future__ import annotations

import base64
import fcntl
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from adclick.collect.file_names import display_name, name_fields, name_from_fields
from adclick.errors import ConfigurationError

STATE_VERSION = 1
# The key of a path that is not its own key: not UTF-8, or not absolute.
_BYTES_KEY = "base64:"


class StateFileError(ConfigurationError):
    """The tail state file cannot be used: unreadable, corrupt, or held by another tail."""


# Bytes at a file's start whose hash recognises it again (at most; fewer in a short file),
# and bytes before the offset whose hash says the file still holds what was read there.
FINGERPRINT_SIZE = 64


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """How far one file has been sent, and how to recognise that file again."""

    name: str  # where the file was last seen; informational, the inode is what counts
    device: int
    inode: int
    offset: int  # byte offset after the last line sent
    fingerprint: str  # hash of the file's first ``fingerprint_size`` bytes
    fingerprint_size: int
    # Hash of the ``recent_size`` bytes ending at ``offset``: a file truncated and written
    # again past the offset has other bytes there, even when it begins alike (a banner).
    # Empty with size 0 at offset 0, and in checkpoints saved before it existed.
    recent_fingerprint: str = ""
    recent_size: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The checkpoint as JSON-ready data."""
        return {
            **name_fields("name", self.name),
            "device": self.device,
            "inode": self.inode,
            "offset": self.offset,
            "fingerprint": self.fingerprint,
            "fingerprint_size": self.fingerprint_size,
            "recent_fingerprint": self.recent_fingerprint,
            "recent_size": self.recent_size,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Checkpoint:
        """The checkpoint from :meth:`to_dict`'s data; ValueError for values no tail
        wrote (a negative offset failed the first read with EINVAL)."""
        checkpoint = cls(
            name=name_from_fields(data, "name"),
            device=int(data["device"]),
            inode=int(data["inode"]),
            offset=int(data["offset"]),
            fingerprint=str(data["fingerprint"]),
            fingerprint_size=int(data["fingerprint_size"]),
            recent_fingerprint=str(data.get("recent_fingerprint", "")),
            recent_size=int(data.get("recent_size", 0)),
        )
        if (
            checkpoint.offset < 0
            or not 0 <= checkpoint.fingerprint_size <= FINGERPRINT_SIZE
            or not 0 <= checkpoint.recent_size <= min(checkpoint.offset, FINGERPRINT_SIZE)
        ):
            raise ValueError(
                f"checkpoint of {display_name(checkpoint.name)[:200]!r}: offset "
                f"{checkpoint.offset} and fingerprint sizes {checkpoint.fingerprint_size} and "
                f"{checkpoint.recent_size} are no tail's"
            )
        return checkpoint


@dataclass(frozen=True, slots=True)
class PathState:
    """The checkpoints of one followed path: its current file and rotated ones not done."""

    current: Checkpoint | None = None
    rotated: tuple[Checkpoint, ...] = ()


TailState = dict[str, PathState]


def _path_key(path: str) -> str:
    # An absolute UTF-8 path is its own key: what operators and scripts look up.
    fields = name_fields("path", path)
    if "path_base64" in fields or not path.startswith("/"):
        return _BYTES_KEY + base64.b64encode(os.fsencode(path)).decode("ascii")
    return path


def _path_from_key(key: str) -> str:
    if key.startswith(_BYTES_KEY):
        return name_from_fields({"path": key, "path_base64": key.removeprefix(_BYTES_KEY)}, "path")
    return key


def _state_to_json(state: Mapping[str, PathState]) -> bytes:
    files = {
        _path_key(path): {
            **({"path": display_name(path)} if _path_key(path) != path else {}),
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
    for key, entry in data["files"].items():
        current = entry.get("current")
        state[_path_from_key(key)] = PathState(
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
            raise StateFileError(
                f"state file {display_name(path)} is in use by another adclick tail"
            ) from None
        self._stored: TailState = {}

    def load(self) -> TailState:
        """The saved checkpoints; empty when there is no state file yet."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:  # a directory, no permission, an I/O error
            raise StateFileError(
                f"state file {display_name(self.path)} cannot be read ({exc.strerror}); "
                "fix or remove it"
            ) from None
        try:
            self._stored = _state_from_json(raw)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            # Starting over could resend or skip whole files: an operator must decide.
            raise StateFileError(
                f"state file {display_name(self.path)} is unreadable ({exc}); fix or remove it"
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
