"""Dense integer codes for strings (ad ids, dimension values), so that counts are arrays."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

Codes = npt.NDArray[np.int32]


class Vocabulary:
    """Append-only: a code, once given, names the same string for the process's life.

    One thread adds (the window index's refresh); queries only read, which is safe
    because a code is published in ``names`` before it is used in any array.
    """

    def __init__(self) -> None:
        self._codes: dict[str, int] = {}
        self.names: list[str] = []

    def __len__(self) -> int:
        return len(self.names)

    def code(self, name: str) -> int | None:
        """The code of a known string, None for one never seen."""
        return self._codes.get(name)

    def encode(self, names: Sequence[str]) -> Codes:
        """Codes of ``names``, adding the new ones."""
        get = self._codes.get
        found = [get(name) for name in names]
        for i, code in enumerate(found):
            if code is None:
                found[i] = self._add(names[i])
        return np.array(found, dtype=np.int32)

    def _add(self, name: str) -> int:
        code = self._codes.get(name)
        if code is None:
            code = len(self.names)
            self.names.append(name)
            self._codes[name] = code
        return code
