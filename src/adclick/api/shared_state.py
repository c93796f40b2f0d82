"""The indexes' state (``QueryService.memory_state``) as the supervisor shares it with its
workers: what a worker checks the answers it keeps against (api/response_cache.py).

A worker reads it from a small file both map, in the supervisor's private directory
(api/index_server.py), at no cost: asked of the supervisor over the socket, it would
have cost a call before and after every request, more than many kept answers save.

One writer (the supervisor's refresh threads, in turn under a lock) and any number of
readers, without a lock between processes: a sequence number, odd while the writer is
between its two stores, lets a reader retry a read that overlapped a write (a seqlock),
so a reader never takes the window index's generation of one state with the hour
index's of another.
"""

from __future__ import annotations

import mmap
import threading
from pathlib import Path

_SIZE = 24  # three little-endian int64: sequence, window and hour index generations
_NONE = -1  # no state yet (the window index has not loaded)

MemoryState = tuple[int, int] | None


class SharedState:
    """The state file, mapped: ``publish`` in the supervisor, ``read`` in workers."""

    def __init__(self, path: Path, *, writable: bool) -> None:
        with path.open("r+b" if writable else "rb") as file:
            access = mmap.ACCESS_WRITE if writable else mmap.ACCESS_READ
            self._map = mmap.mmap(file.fileno(), _SIZE, access=access)
        self._lock = threading.Lock()

    @classmethod
    def create(cls, path: Path) -> SharedState:
        """A new state file at ``path`` (in a directory only the service may enter)."""
        path.write_bytes(bytes(_SIZE))
        shared = cls(path, writable=True)
        shared.publish(None)
        return shared

    def publish(self, state: MemoryState) -> None:
        window, hours = (_NONE, _NONE) if state is None else state
        with self._lock:
            # Odd while the values are written, even once they are: a reader that saw the
            # same even number before and after read the values of one state.
            sequence = self._sequence()
            self._map[0:8] = (sequence + 1).to_bytes(8, "little", signed=True)
            self._map[8:16] = window.to_bytes(8, "little", signed=True)
            self._map[16:24] = hours.to_bytes(8, "little", signed=True)
            self._map[0:8] = (sequence + 2).to_bytes(8, "little", signed=True)

    def read(self) -> MemoryState:
        while True:
            before = self._sequence()
            window, hours = self._values()
            if before % 2 == 0 and self._sequence() == before:
                return None if window == _NONE else (window, hours)

    def close(self) -> None:
        self._map.close()

    def _sequence(self) -> int:
        return int.from_bytes(self._map[0:8], "little", signed=True)

    def _values(self) -> tuple[int, int]:
        return (
            int.from_bytes(self._map[8:16], "little", signed=True),
            int.from_bytes(self._map[16:24], "little", signed=True),
        )
