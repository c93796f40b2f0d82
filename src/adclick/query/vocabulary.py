"""Dense integer codes for strings (ad ids, dimension values), so that counts are arrays."""

from __future__ import annotations

import threading

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

Codes = npt.NDArray[np.int32]


class Vocabulary:
    """Append-only: a code, once given, names the same string for the process's life.

    Whole Arrow string arrays are encoded in C++ (pyarrow.compute.index_in): loading a
    minute of 2 million ads maps hundreds of thousands of strings, and a Python dict
    lookup per string was most of the window index's load time.

    The window index's and the hour index's threads add, under a lock; queries only
    read, which is safe because a code is published in ``names`` before it is used in
    any array.
    """

    def __init__(self) -> None:
        self._adding = threading.Lock()
        self._codes: dict[str, int] = {}
        self.names: list[str] = []
        self._known = pa.array([], pa.string())  # names as Arrow, extended lazily

    def __len__(self) -> int:
        return len(self.names)

    def code(self, name: str) -> int | None:
        """The code of a known string, None for one never seen."""
        return self._codes.get(name)

    def encode(self, values: pa.Array | pa.ChunkedArray) -> Codes:
        """Codes of ``values``, adding the new ones."""
        if len(values) == 0:
            return np.empty(0, dtype=np.int32)
        with self._adding:
            found = pc.index_in(values, value_set=self._known_array())
            if found.null_count:
                for name in pc.unique(pc.filter(values, pc.is_null(found))).to_pylist():
                    self._add(name)
                found = pc.index_in(values, value_set=self._known_array())
        return np.asarray(found.to_numpy(zero_copy_only=False), dtype=np.int32)

    def _add(self, name: str) -> None:
        if name not in self._codes:
            self._codes[name] = len(self.names)
            self.names.append(name)

    def _known_array(self) -> pa.Array:
        if len(self._known) < len(self.names):
            added = pa.array(self.names[len(self._known) :], pa.string())
            self._known = pa.concat_arrays([self._known, added])
        return self._known
